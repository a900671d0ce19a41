"""What a run writes for people to read: the header line, scalar logs (``metrics.jsonl``, TensorBoard) and
sample grids (``samples/step-N.png``). Only the main process writes; the others get a silent log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cartoon.image import to_uint8
from cartoon.representations.structure import structure_batch
from cartoon.representations.surface import SURFACE_EPS, SURFACE_RADIUS, guided_filter
from cartoon.representations.texture import MEAN_WEIGHTS, color_shift
from train.losses import training_output


@torch.no_grad()
def sample_grid(generator: torch.nn.Module, photos: torch.Tensor) -> np.ndarray:
    """One row per photo: photo | surface | structure | texture | output, the last four of the output.

    Args:
        generator: put in eval mode for the call, then back in train mode.
        photos: ``(N, 3, P, P)`` in ``[-1, 1]`` on the generator's device.

    Returns:
        ``(N * P, 5 * P, 3)`` uint8 RGB.
    """
    generator.eval()
    try:
        output = training_output(photos, generator(photos)).clamp(-1, 1)
    finally:
        generator.train()
    (gray,) = color_shift(output, weights=MEAN_WEIGHTS)
    columns = [photos.float(), guided_filter(output, output, SURFACE_RADIUS, SURFACE_EPS), structure_batch(output), gray, output]
    rows = np.concatenate([to_uint8(column) for column in columns], axis=2)  # (N, P, 5P, 3)
    return np.concatenate(list(rows), axis=0)


class RunLog:
    """The run's logs. ``enabled=False`` (not the main process) makes every call a no-op."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def header(self, counts: dict[str, int], description: str) -> None:
        if self.enabled:
            print(f"run {self.run_dir}: {counts}, {description}", flush=True)

    def scalars(self, step: int, elapsed_s: float, steps_per_s: float, metrics: dict[str, float], bar: Any = None) -> None:
        """Append one record to ``metrics.jsonl`` (and TensorBoard); show the first losses on the progress bar."""
        if not self.enabled:
            return
        record = {"step": step, "time_s": round(elapsed_s, 2), "steps_per_s": round(steps_per_s, 4), **metrics}
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"loss/{name}", value, step)
            self.writer.add_scalar("speed/steps_per_s", steps_per_s, step)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(metrics.items())[:4]})

    def samples(self, step: int, generator: torch.nn.Module, photos: torch.Tensor) -> Path | None:
        """Write ``samples/step-<step>.png`` (and the TensorBoard image); returns its path."""
        if not self.enabled:
            return None
        grid = sample_grid(generator, photos)
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step-{step:07d}.png"
        Image.fromarray(grid).save(path)
        if self.writer is not None:
            self.writer.add_image("samples", grid, step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
