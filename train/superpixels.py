"""Structure targets for training: ``structure(G(x))`` of the generator's detached output, two ways.

* :class:`SuperpixelPool` (the host path): scikit-image SLIC or Felzenszwalb per image
  (:func:`cartoon.representations.structure`) in worker processes, each limited to one thread, so the targets
  are computed while the main process runs the rest of the step; ``result()`` joins them. The faster path on
  a CPU (``benchmarks/train_step.py``).
* :class:`DeviceStructure` (the device path): batched SLIC and adaptive colour in torch on the training
  device (:mod:`cartoon.representations.structure_torch`); with CUDA the target is a few kernels queued
  behind the generator, no host round trip.

Both record the seconds the step spent waiting for its targets (``waited_s``), which the benchmark reports.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import torch

from cartoon.image import to_tensor, to_uint8
from cartoon.representations.structure import StructureParams, structure
from cartoon.representations.surface import SURFACE_RADIUS, guided_filter
from cartoon.representations.structure_torch import structure_batch_device

STRUCTURE_PATHS = ("auto", "host", "device")


def resolve_structure_path(choice: str, device: torch.device, literal: bool, algorithm: str) -> str:
    """``"host"`` or ``"device"``: ``auto`` is the device path on CUDA and the host pool on the CPU (where the pool
    measures faster); the literal step and Felzenszwalb targets always use the host path."""
    if choice not in STRUCTURE_PATHS:
        raise ValueError(f"structure path must be one of {STRUCTURE_PATHS}, got {choice!r}")
    if literal or algorithm != "slic":
        if choice == "device":
            raise ValueError("--structure-on device needs SLIC targets (--structure slic) and the fast step")
        return "host"
    if choice == "auto":
        return "device" if device.type == "cuda" else "host"
    return choice


def smooth_structure_target(guide: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Edge-aware smoothing of a structure target (``--structure-smoothing``; not in the paper).

    ``guided_filter(guide, target, r=5, eps)``: where the guide is smooth (its local variance well below
    ``eps``) the target becomes its local mean, so the steps between neighbouring superpixels of similar colour
    (which G otherwise copies as facets) fade; where the guide has an edge, the target keeps its step. The guide
    is the photo (``--structure-smoothing-guide photo``: the target's edges are the photo's, sharp) or G's output
    (where G has blurred an edge, the target keeps the blur and G is never asked to sharpen it).

    Args:
        guide: ``(B, 3, H, W)`` in ``[-1, 1]``: the photo, or G's (filtered) output.
        target: its superpixel image ``(B, 3, H, W)`` in ``[-1, 1]``.
        eps: the guided filter's regulariser in squared ``[-1, 1]`` units; 0 returns ``target`` unchanged.

    Returns:
        ``(B, 3, H, W)`` float in ``[-1, 1]``, no gradient.
    """
    if not eps:
        return target
    with torch.no_grad():
        return guided_filter(guide.detach().float(), target.float(), SURFACE_RADIUS, eps).clamp(-1, 1)


def _init_worker() -> None:
    """One thread per worker for torch, OpenMP and OpenCV: the workers run side by side, not on top of each other."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)


def _structure_one(img: np.ndarray, params: StructureParams) -> np.ndarray:
    return structure(img, params)


class PendingStructure:
    """A batch of structure targets being computed; ``result()`` waits for it."""

    def __init__(self, owner: "SuperpixelPool", futures: list[Future] | None, images: np.ndarray | None,
                 like: torch.Tensor) -> None:
        self._owner, self._futures, self._images, self._like = owner, futures, images, like

    def result(self) -> torch.Tensor:
        start = time.perf_counter()
        images = self._images if self._futures is None else np.stack([f.result() for f in self._futures])
        self._owner.waited_s += time.perf_counter() - start
        return to_tensor(images, like=self._like)


class SuperpixelPool:
    """``submit(x)`` starts structure targets for a batch; with ``workers=0`` they are computed inline."""

    def __init__(self, params: StructureParams, workers: int = 2) -> None:
        self.params = params
        self.workers = workers
        self.waited_s = 0.0
        self._pool = None
        if workers > 0:
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)

    def submit(self, x: torch.Tensor) -> PendingStructure:
        images = to_uint8(x)
        if self._pool is None:
            start = time.perf_counter()
            done = np.stack([structure(img, self.params) for img in images])
            self.waited_s += time.perf_counter() - start
            return PendingStructure(self, None, done, x)
        return PendingStructure(self, [self._pool.submit(_structure_one, img, self.params) for img in images], None, x)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class _Ready:
    def __init__(self, value: torch.Tensor) -> None:
        self._value = value

    def result(self) -> torch.Tensor:
        return self._value


class DeviceStructure:
    """The same interface as :class:`SuperpixelPool`, computing SLIC targets on the output's own device.

    ``waited_s`` counts the host time spent queueing (and, with ``synchronize=True``, running) them: on CUDA the
    kernels otherwise run asynchronously behind the generator.
    """

    def __init__(self, params: StructureParams, synchronize: bool = False) -> None:
        self.params = params
        self.synchronize = synchronize
        self.waited_s = 0.0

    def submit(self, x: torch.Tensor) -> _Ready:
        if self.synchronize and x.is_cuda:
            torch.cuda.synchronize(x.device)  # so that the time below is the targets' alone
        start = time.perf_counter()
        out = structure_batch_device(x.detach(), self.params)
        if self.synchronize and out.is_cuda:
            torch.cuda.synchronize(out.device)
        self.waited_s += time.perf_counter() - start
        return _Ready(out)

    def close(self) -> None:
        pass
