"""Training-step speed: the authors' literal step vs the fast path, at 128x128 batch 8, in one run.

    python benchmarks/train_step.py [--steps 8] [--warmup 2] [--vgg-weights weights/vgg16_features.safetensors]

Prints a table of steps/s. Uses VGG16 conv4_3 (random weights if the extracted file is missing: the speed is
the same) and scikit-image's sample photos as data. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from skimage import data as samples  # noqa: E402

from benchmarks.timing import Timing, add_json_option, write_json  # noqa: E402
from cartoon.representations import structure  # noqa: E402
from train.data import load_training_data  # noqa: E402
from train.options import parse  # noqa: E402
from train.perceptual import VGG16_CONV4_3  # noqa: E402
from train.trainer import Trainer  # noqa: E402

VARIANTS = {
    "literal port (fp32, NCHW, G x3, superpixels inline, VGG per loss)": ["--literal"],
    "fast, fp32 (one G pass, shared VGG, 2 superpixel workers, channels_last)": ["--bf16", "off"],
    "fast, bf16 autocast": ["--bf16", "on"],
    "fast, bf16, superpixels inline": ["--bf16", "on", "--superpixel-workers", "0"],
}


def make_data(root: Path) -> None:
    photos = [samples.astronaut(), samples.coffee(), samples.chelsea(), samples.rocket()]
    for kind in ("photos", "cartoons"):
        (root / kind).mkdir(parents=True)
        for index, img in enumerate(photos):
            Image.fromarray(img if kind == "photos" else structure(img)).save(root / kind / f"{index}.png")


def time_variant(root: Path, weights: Path, extra: list[str], steps: int, warmup: int) -> Timing:
    """Seconds per step, each step timed on its own after ``warmup`` untimed steps."""
    args = parse(["adversarial", "--photos", str(root / "photos"), "--cartoons", str(root / "cartoons"),
                  "--patch-size", "128", "--batch-size", "8", "--perceptual", "vgg16", "--vgg-weights", str(weights),
                  "--run-dir", str(root / "run"), "--no-tensorboard", *extra])
    trainer = Trainer(args)
    data = load_training_data(args)
    try:
        seconds = []
        for index in range(warmup + steps):
            start = time.perf_counter()
            trainer.step(data.batch(index, 8, 128, trainer.data_rng))
            seconds.append(time.perf_counter() - start)
        return Timing.of(seconds[warmup:])
    finally:
        trainer.superpixels.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vgg-weights", type=Path, default=Path("weights/vgg16_features.safetensors"))
    add_json_option(parser)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root)
        weights = args.vgg_weights
        if not weights.exists():
            from torchvision.models import vgg16

            weights = root / "vgg16-random.safetensors"
            save_file(vgg16(weights=None).features[:VGG16_CONV4_3].state_dict(), str(weights))
        print(f"# train step, 128x128 x batch 8 | {platform.processor() or platform.machine()} | "
              f"torch {torch.__version__} | {torch.get_num_threads()} threads | {os.cpu_count()} CPUs")
        print("| variant | steps/s (median) | s/step: median (quartiles) | vs literal |\n|---|---|---|---|")
        baseline = None
        for name, extra in VARIANTS.items():
            timing = time_variant(root, weights, extra, args.steps, args.warmup)
            baseline = baseline or timing.median
            print(f"| {name} | {1 / timing.median:.3f} | {timing.median:.2f} ({timing.q1:.2f}-{timing.q3:.2f}) | "
                  f"{baseline / timing.median:.2f}x |", flush=True)
            rows.append({"variant": name, "seconds_per_step": timing})
    write_json(args.json, "train_step", rows, patch=128, batch=8)


if __name__ == "__main__":
    main()
