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

from cartoon.image import to_tensor, to_uint8
from cartoon.representations.structure import StructureParams, structure


def _init_worker() -> None:
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _structure_one(img: np.ndarray, params: StructureParams) -> np.ndarray:
    return structure(img, params)


class PendingStructure:
    """A batch of structure targets being computed; ``result()`` waits for it."""

    def __init__(self, futures: list[Future] | None, images: np.ndarray | None, like: torch.Tensor) -> None:
        self._futures, self._images, self._like = futures, images, like

    def result(self) -> torch.Tensor:
        images = self._images if self._futures is None else np.stack([f.result() for f in self._futures])
        return to_tensor(images, like=self._like)


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
        images = to_uint8(x)
        if self._pool is None:
            return PendingStructure(None, np.stack([structure(img, self.params) for img in images]), x)
        return PendingStructure([self._pool.submit(_structure_one, img, self.params) for img in images], None, x)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
