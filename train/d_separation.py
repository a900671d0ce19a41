"""How well a run's discriminators tell unseen cartoons from the generator's output (for ``--diffaugment``).

    python -m train.d_separation runs/a runs/b --cartoons held-out-cartoons/ --photos data/held_out

For each run's newest checkpoint: the surface and texture discriminators score random crops of cartoons the
run never trained on (real) and the same run's generator output on held-out photos (fake), through the
representations they are trained on (guided filter; colour shift with the mean weights). Printed per
discriminator: the mean real and fake scores (LSGAN: real -> 1, fake -> 0), and the share of (real, fake)
pairs ordered correctly (an AUC: 0.5 is chance). A discriminator that memorised its few training cartoons
separates unseen ones worse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cartoon.checkpoint import load_generator
from cartoon.image import to_tensor
from cartoon.models import PatchDiscriminator
from cartoon.representations.surface import SURFACE_EPS, SURFACE_RADIUS, guided_filter
from cartoon.representations.texture import MEAN_WEIGHTS, color_shift
from train.checkpoints import load_checkpoint, resolve_checkpoint
from train.data import list_images
from train.evaluate import random_crops
from train.losses import training_output


def auc(real: np.ndarray, fake: np.ndarray) -> float:
    """Share of (real, fake) pairs with the real one scored higher (ties count half)."""
    greater = (real[:, None] > fake[None, :]).mean()
    ties = (real[:, None] == fake[None, :]).mean()
    return float(greater + 0.5 * ties)


@torch.no_grad()
def separation(run: Path, real: torch.Tensor, photos: torch.Tensor) -> dict[str, tuple[float, float, float]]:
    folder = resolve_checkpoint(run)
    tensors, _ = load_checkpoint(folder)
    generator = load_generator(folder / "generator")
    fake = training_output(photos, generator(photos)).clamp(-1, 1)
    result = {}
    for name, channels in (("surface", 3), ("texture", 1)):
        net = PatchDiscriminator(in_channels=channels)
        prefix = f"d_{name}/"
        net.load_state_dict({k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)})
        net.eval()
        if name == "surface":
            view = lambda x: guided_filter(x, x, SURFACE_RADIUS, SURFACE_EPS)  # noqa: E731
        else:
            view = lambda x: color_shift(x, weights=MEAN_WEIGHTS)[0]  # noqa: E731
        real_scores = net(view(real)).mean(dim=(1, 2, 3)).numpy()
        fake_scores = net(view(fake)).mean(dim=(1, 2, 3)).numpy()
        result[name] = (float(real_scores.mean()), float(fake_scores.mean()), auc(real_scores, fake_scores))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cartoons", type=Path, required=True, help="cartoons the runs never trained on")
    parser.add_argument("--photos", type=Path, required=True, help="photos the runs never trained on")
    parser.add_argument("--crops", type=int, default=8, help="random 128-px crops per image")
    args = parser.parse_args(argv)
    real = to_tensor(random_crops(list_images(args.cartoons), args.crops, 360, seed=1))
    photos = to_tensor(random_crops(list_images(args.photos), args.crops, 360, seed=2))
    print("| run | D | mean score, unseen cartoons | mean score, generated | AUC (real above fake) |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        for name, (real_mean, fake_mean, area) in separation(run, real, photos).items():
            print(f"| {run.name} | {name} | {real_mean:.3f} | {fake_mean:.3f} | {area:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
