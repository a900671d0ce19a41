"""Tiny generated training data and a helper that runs ``python -m train`` in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _blobs(rng: np.random.Generator, size: int, flat: bool) -> np.ndarray:
    """A synthetic image: smooth colour gradients with noise (photo) or flat colour blocks (cartoon)."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * x + rng.uniform(0, 6)), np.cos(5 * y + rng.uniform(0, 6)), np.sin(4 * (x + y))], -1)
    img = (img + 1) * 127.5
    if flat:
        img = np.round(img / 64) * 64
    else:
        img = img + rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for kind, flat in (("photos", False), ("cartoons", True)):
        (root / kind).mkdir()
        for index in range(5):
            Image.fromarray(_blobs(rng, 48, flat)).save(root / kind / f"{kind}-{index}.png")
    return root


def tiny_args(data: Path, run_dir: Path, command: str = "adversarial", steps: int = 4, **extra: object) -> list[str]:
    """Options for a tiny, quick run (patch 32, batch 2, a 4-channel generator, tiny perceptual net)."""
    args = [command, "--photos", str(data / "photos"), "--run-dir", str(run_dir), "--steps", str(steps),
            "--batch-size", "2", "--patch-size", "32", "--channels", "4", "--num-blocks", "1", "--log-every", "1",
            "--save-every", "2", "--sample-every", "2", "--superpixel-workers", "0", "--no-tensorboard", "--threads", "1"]
    if command == "adversarial":
        args += ["--cartoons", str(data / "cartoons"), "--perceptual", "tiny"]
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def run_module(args: list[str], timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, **popen)
