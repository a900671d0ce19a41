"""``python -m train recipe``: a model end to end within a time budget — pretrain, adversarial, export, evaluate.

    python -m train recipe --minutes 9 --device cuda --photos data/photos --cartoons data/cartoons \\
        --vgg-weights weights/vgg16_features.safetensors --run-dir runs/recipe

The budget is wall-clock minutes for the whole recipe: a reserve for export and evaluation is set aside, the
rest is split between the stages (``--pretrain-share``). Each stage is an ordinary run folder under
``--run-dir`` (``pretrain/``, ``adversarial/``) trained with ``--max-minutes`` and ``--resume latest``, so
running the same command again after a stop or a crash continues where the checkpoints are and skips what is
done (a stage whose checkpoints already hold its share of the time). Then ``export/`` (the model folder, its
card naming the device, steps, patch, batch, time and data) and ``evaluation/`` (quality table and comparison
sheet, when the held-out, cartoon and photo folders and the VGG weights are there). ``recipe.json`` records the
options and what each stage did.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import torch

from train import checkpoints

STAGES = ("pretrain", "adversarial")
RECIPE_ADVERSARIAL = ["--structure", "slic", "--segments", "200", "--w-structure", "600", "--w-surface", "2.0",
                      "--w-texture", "2.0", "--w-colour", "40", "--w-chroma", "4", "--structure-smoothing", "0.03",
                      "--diffaugment", "translation,cutout"]
"""The settings of v3's last stage at the recipe's 256² patches (v3 used SLIC 50 on 128² patches: regions as large
in pixels). v4, shipped since, continued it at 128² with --w-structure 1200 --w-texture 4 and, on face steps
(--face-every 3), --face-structure-factor 0.1667. README, "The shipped model": at structure weight 300 a GPU run
of 5.7 minutes stayed close to the photo; without --w-chroma every continuation grew colour noise; the smoothing
(guided by the photo) removes v2's facets. --adversarial-args adds to them."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget for the whole recipe")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/recipe"), help="folder of the recipe's stages")
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--cartoons", type=Path, required=True)
    parser.add_argument("--photo-faces", type=Path, default=None)
    parser.add_argument("--cartoon-faces", type=Path, default=None)
    parser.add_argument("--held-out", type=int, default=0, help="photos kept out of training (see train options)")
    parser.add_argument("--held-out-dir", type=Path, default=Path("data/held_out"), help="photos for the evaluation")
    parser.add_argument("--vgg-weights", type=Path, default=None)
    parser.add_argument("--perceptual", default="auto", choices=["auto", "vgg19", "vgg16", "tiny"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pretrain-share", type=float, default=0.15, help="share of the training time for pretraining")
    parser.add_argument("--reserve-minutes", type=float, default=None,
                        help="kept for export and evaluation (default: 15%% of the budget, at most 1.5 minutes)")
    parser.add_argument("--pretrain-args", default="", help="more options for the pretrain stage (one string)")
    parser.add_argument("--adversarial-args", default="", help="more options for the adversarial stage (one string)")
    parser.add_argument("--data-note", default="", help="where the data came from, for the model card")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the quality table and the sheet")


def _spent_seconds(run_dir: Path) -> float:
    """Training time already in a stage's newest checkpoint (0 when it has none)."""
    latest = checkpoints.latest_checkpoint(run_dir)
    if latest is None:
        return 0.0
    return float(json.loads((latest / "state.json").read_text()).get("elapsed_s", 0.0))


def _device_name(device: str) -> str:
    if device in ("auto", "cuda") or device.startswith("cuda"):
        if torch.cuda.is_available():
            return f"CUDA ({torch.cuda.get_device_name()})"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run(args: argparse.Namespace) -> int:
    from train.__main__ import main as train_main

    started = time.monotonic()
    budget = 60 * args.minutes
    reserve = 60 * args.reserve_minutes if args.reserve_minutes is not None else min(90.0, 0.15 * budget)
    training = max(budget - reserve, 0.0)
    shares = {"pretrain": args.pretrain_share * training, "adversarial": (1 - args.pretrain_share) * training}
    args.run_dir.mkdir(parents=True, exist_ok=True)
    record_path = args.run_dir / "recipe.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"sessions": []}
    record["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())}
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": _device_name(args.device), "stages": {}}
    record["sessions"].append(session)

    def save_record() -> None:
        record_path.write_text(json.dumps(record, indent=2) + "\n")

    common = ["--photos", str(args.photos), "--device", args.device, "--patch-size", str(args.patch_size),
              "--batch-size", str(args.batch_size), "--held-out", str(args.held_out), "--steps", "100000000",
              "--resume", "latest", "--save-every", "500", "--sample-every", "500"]
    if args.photo_faces is not None:  # both stages see photo faces; cartoon faces are the adversarial stage's
        common += ["--photo-faces", str(args.photo_faces)]
    stage_options = {
        "pretrain": ["pretrain", *common, *shlex.split(args.pretrain_args)],
        "adversarial": ["adversarial", *common, "--cartoons", str(args.cartoons), "--perceptual", args.perceptual,
                        "--init", str(args.run_dir / "pretrain"), *RECIPE_ADVERSARIAL,
                        *(["--vgg-weights", str(args.vgg_weights)] if args.vgg_weights else []),
                        *(["--cartoon-faces", str(args.cartoon_faces)] if args.cartoon_faces else []),
                        *shlex.split(args.adversarial_args)],
    }
    for stage in STAGES:
        folder = args.run_dir / stage
        remaining = shares[stage] - _spent_seconds(folder)
        left_in_budget = budget - reserve - (time.monotonic() - started)
        minutes = min(remaining, left_in_budget) / 60
        if minutes * 60 < 5 and checkpoints.latest_checkpoint(folder) is not None:
            session["stages"][stage] = "done before"
            print(f"recipe: {stage} already has its {shares[stage] / 60:.1f} minutes", flush=True)
            continue
        minutes = max(minutes, 0.02)  # a stage without any checkpoint gets at least a few steps
        print(f"recipe: {stage} for {minutes:.1f} minutes -> {folder}", flush=True)
        code = train_main([*stage_options[stage], "--run-dir", str(folder), "--max-minutes", f"{minutes:.3f}"])
        session["stages"][stage] = {"minutes": round(minutes, 2), "exit": code,
                                    "checkpoint": str(checkpoints.latest_checkpoint(folder))}
        save_record()
        if code != 0:
            print(f"recipe: {stage} stopped with exit code {code}; run the same command again to resume", flush=True)
            return code

    latest = checkpoints.resolve_checkpoint(args.run_dir / "adversarial")
    state = json.loads((latest / "state.json").read_text())
    notes = (f"Trained by `python -m train recipe --minutes {args.minutes:g}` on {session['device']}: "
             f"pretrain {_spent_seconds(args.run_dir / 'pretrain') / 60:.1f} min, adversarial "
             f"{state.get('elapsed_s', 0) / 60:.1f} min to step {state['step']:,}, batch {args.batch_size} x "
             f"{args.patch_size}^2.")
    export_code = train_main(["export", str(args.run_dir / "adversarial"), "-o", str(args.run_dir / "export"),
                              "--data-note", args.data_note or f"photos {args.photos}, cartoons {args.cartoons}",
                              "--notes", notes])
    session["export"] = {"exit": export_code, "folder": str(args.run_dir / "export"), "notes": notes}
    save_record()
    if export_code != 0:
        return export_code
    needed = [args.held_out_dir, args.cartoons, args.photos]
    vgg = args.vgg_weights or Path("weights/vgg16_features.safetensors")
    if args.no_evaluate or not all(Path(p).is_dir() for p in needed) or not vgg.is_file():
        print("recipe: evaluation skipped (--no-evaluate, or held-out/cartoon/photo folders or VGG16 weights missing)")
        session["evaluation"] = "skipped"
    else:
        code = train_main(["evaluate", "--model", str(args.run_dir / "export"), "--pretrain", str(args.run_dir / "pretrain"),
                           "--held-out", str(args.held_out_dir), "--cartoons", str(args.cartoons), "--photos",
                           str(args.photos), "--vgg-weights", str(vgg), "--out", str(args.run_dir / "evaluation")])
        session["evaluation"] = {"exit": code, "folder": str(args.run_dir / "evaluation")}
    session["minutes"] = round((time.monotonic() - started) / 60, 2)
    save_record()
    print(f"recipe: done in {session['minutes']:.1f} minutes; model in {args.run_dir / 'export'}")
    return 0
