"""Structure targets for training, computed in worker processes so they overlap with the network.

The structure loss needs ``structure(G(x))``: superpixels of the generator's (detached) output, filled with
their adaptive colour (:func:`cartoon.representations.structure`). That is NumPy/scikit-image work; here it
runs in a process pool while the main process computes the rest of the step, and ``result()`` joins it.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import torch

from cartoon.representations.structure import StructureParams, structure


def _init_worker() -> None:
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _structure_one(img: np.ndarray, params: StructureParams) -> np.ndarray:
    return structure(img, params)


def to_uint8_batch(x: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, H, W, 3)`` uint8."""
    x = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8_batch(images: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 -> ``(B, 3, H, W)`` in ``[-1, 1]`` with the dtype, device and layout of ``like``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(device=like.device, dtype=like.dtype).div(127.5).sub(1)
    channels_last = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class PendingStructure:
    """A batch of structure targets being computed; ``result()`` waits for it."""

    def __init__(self, futures: list[Future] | None, images: np.ndarray | None, like: torch.Tensor) -> None:
        self._futures, self._images, self._like = futures, images, like

    def result(self) -> torch.Tensor:
        images = self._images if self._futures is None else np.stack([f.result() for f in self._futures])
        return from_uint8_batch(images, self._like)


class SuperpixelPool:
    """``submit(x)`` starts structure targets for a batch; with ``workers=0`` they are computed inline."""

    def __init__(self, params: StructureParams, workers: int = 2) -> None:
        self.params = params
        self.workers = workers
        self._pool = None
        if workers > 0:
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)

    def submit(self, x: torch.Tensor) -> PendingStructure:
        images = to_uint8_batch(x)
        if self._pool is None:
            return PendingStructure(None, np.stack([structure(img, self.params) for img in images]), x)
        return PendingStructure([self._pool.submit(_structure_one, img, self.params) for img in images], None, x)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
