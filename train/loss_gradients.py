"""Which loss pushes what into the generator's output: a per-loss gradient report for one checkpoint.

    python -m train.loss_gradients runs/a/checkpoints/checkpoint-0000750 [--photos data/photos] [--crops 16]

The checkpoint's own options (weights, representations, augmentation) rebuild its trainer with its
discriminators; on random crops of the photos, each weighted G loss is differentiated with respect to G's raw
output ``G(x)``. Printed per loss: its value, the gradient's norm, how that gradient's energy splits between
grey and colour and between low frequencies (4x4 block means) and high, and, for grey and colour apart, the
cosine between a descent step (minus the gradient) and the output's own high frequencies: positive means a step
on that loss alone grows the detail or noise the output already has, negative that it removes it.
Colour is each pixel minus its channel mean (the grey axis removed), grey the channel mean.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cartoon.image import load_image, scale_to_fit, to_tensor
from cartoon.representations.texture import color_shift
from train.checkpoints import resolve_checkpoint
from train.data import list_images
from train.losses import training_output
from train.options import SAVED_BEFORE, parse

BLOCK = 4
"""Low frequencies: what survives averaging over BLOCK x BLOCK blocks."""


def grey_and_colour(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 3, H, W)`` -> its channel mean ``(B, 1, H, W)`` and the rest ``(B, 3, H, W)`` (the two sum to ``x``)."""
    grey = x.mean(dim=1, keepdim=True)
    return grey, x - grey


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """``x`` minus its BLOCK x BLOCK block means (H, W multiples of BLOCK)."""
    return x - F.interpolate(F.avg_pool2d(x, BLOCK), scale_factor=BLOCK, mode="nearest")


def training_crops(paths: list[Path], count: int, options: argparse.Namespace, seed: int) -> np.ndarray:
    """Up to ``count`` random ``patch_size`` crops, one per photo (photos smaller than that are skipped), at the
    scale training sees (short side ``max_image_side``): ``(N, P, P, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    size, crops = options.patch_size, []
    for index in rng.permutation(len(paths)):
        img = scale_to_fit(load_image(paths[index]), short_side=options.max_image_side)
        if min(img.shape[:2]) < size:
            continue
        if len(crops) == count:
            break
        top, left = (int(rng.integers(0, extent - size + 1)) for extent in img.shape[:2])
        crops.append(img[top : top + size, left : left + size])
    return np.stack(crops)


def trainer_for(checkpoint: Path, photos: Path | None):
    """The checkpoint's trainer on the CPU in fp32, its G and discriminators restored."""
    from train.trainer import Trainer

    state = json.loads((checkpoint / "state.json").read_text())
    saved = state["options"]
    if saved.get("command") != "adversarial":
        raise SystemExit(f"{checkpoint} is a {saved.get('command')} checkpoint: the report needs the adversarial losses")
    args = parse(["adversarial", "--photos", str(photos or saved["photos"]), "--cartoons", str(saved["cartoons"])])
    keep = {"photos", "cartoons", "run_dir", "resume", "init", "init_discriminators", "device", "bf16", "superpixel_workers",
            "threads"}  # the initial weights are replaced by the checkpoint's own
    for key, value in {**SAVED_BEFORE, **saved}.items():
        if key not in keep and hasattr(args, key):
            setattr(args, key, Path(value) if key == "vgg_weights" and value else value)
    args.device, args.bf16, args.superpixel_workers, args.run_dir = "cpu", "off", 0, checkpoint / "unused"
    trainer = Trainer(args)
    trainer.resume(checkpoint)
    return trainer, args


def report(trainer, photo: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per weighted G loss on ``photo`` ``(B, 3, H, W)`` in [-1, 1]: value, gradient norm, energy shares and
    cosines (see the module's docstring)."""
    raw = trainer.generator(photo).detach().requires_grad_(True)
    output = training_output(photo, raw)
    gray_fake, _ = color_shift(output, output.detach(), generator=trainer.shift_rng)
    vgg_output, vgg_photo = trainer.perceptual(output), trainer.perceptual(photo).detach()
    structure = trainer.superpixels.submit(output.detach())

    def structure_features() -> torch.Tensor:
        return trainer.perceptual(trainer._smoothed_structure(photo, output.detach(), structure.result())).detach()

    losses = trainer._generator_losses(photo, output, trainer._surface(output), gray_fake, (vgg_output, vgg_photo),
                                       vgg_output, structure_features)
    own_grey, own_colour = (high_pass(part) for part in grey_and_colour(raw.detach()))
    rows = {}
    for name, loss in losses.items():
        weight = trainer.weights[name.removeprefix("g_")]
        if not weight:
            continue
        (gradient,) = torch.autograd.grad(weight * loss, raw, retain_graph=True)
        grey, colour = grey_and_colour(gradient)
        grey_high, colour_high = high_pass(grey), high_pass(colour)
        parts = {"grey low": (grey - grey_high).pow(2).sum() * 3, "grey high": grey_high.pow(2).sum() * 3,
                 "colour low": (colour - colour_high).pow(2).sum(), "colour high": colour_high.pow(2).sum()}
        total = float(sum(parts.values()))
        rows[name] = {"weighted loss": float(weight * loss.detach()), "gradient norm": float(gradient.norm()),
                      **{f"{key} share": float(value) / max(total, 1e-30) for key, value in parts.items()},
                      "grey cos": float(F.cosine_similarity(-grey_high.flatten(), own_grey.flatten(), dim=0)),
                      "colour cos": float(F.cosine_similarity(-colour_high.flatten(), own_colour.flatten(), dim=0))}
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.loss_gradients", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="an adversarial checkpoint folder, or a run (its newest)")
    parser.add_argument("--photos", type=Path, default=None, help="photo folder (default: the run's)")
    parser.add_argument("--crops", type=int, default=16, help="random crops, one per photo (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    checkpoint = resolve_checkpoint(args.checkpoint)
    trainer, options = trainer_for(checkpoint, args.photos)
    photo = to_tensor(training_crops(list_images(options.photos), args.crops, options, args.seed))
    rows = report(trainer, photo)
    columns = list(next(iter(rows.values())))
    print(f"{checkpoint}: {photo.shape[0]} crops of {options.patch_size} px; gradients with respect to G(x)")
    print("| loss | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{value:.3g}" if "norm" in key or "loss" in key else f"{value:+.3f}"
                                          for key, value in row.items()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
