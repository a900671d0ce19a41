"""Device helpers shared by inference and training: which device to use, and whether bf16 pays off here."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``/``None``: this process's GPU (``cuda:<local_rank>``) when CUDA is available, else the CPU;
    anything else is passed to ``torch.device``."""
    if name is None or name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (avx512_bf16 or AMX), where bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@functools.cache
def device_constant(values: tuple, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.tensor(values)`` on ``device``, made once per (values, device, dtype) and reused.

    Building a small constant on a GPU inside a step (``torch.tensor(..., device="cuda")`` or ``.to("cuda")`` of a
    host tensor) is a blocking copy: the host waits for the device's queue to drain, every time. Callers must not
    modify the returned tensor in place. ``values`` may be nested tuples (a matrix).
    """
    return torch.tensor(values, dtype=dtype, device=device)
