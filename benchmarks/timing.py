"""Timing and reporting shared by the benchmark scripts: medians with their spread, a Markdown table on stdout,
and the same rows as JSON (``--json PATH``) so that runs can be compared with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``runs`` timed calls: median, quartiles and extremes."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float]) -> "Timing":
        if len(seconds) < 2:
            value = seconds[0]
            return cls(value, value, value, value, value, len(seconds))
        q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
        return cls(statistics.median(seconds), q1, q3, min(seconds), max(seconds), len(seconds))

    def ms(self) -> str:
        """``median (q1-q3)`` in milliseconds, for a table cell."""
        return f"{self.median * 1e3:.1f} ({self.q1 * 1e3:.1f}-{self.q3 * 1e3:.1f})"

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 1, sync: bool = False) -> Timing:
    """Time ``fn()`` ``repeat`` times after ``warmup`` untimed calls (``sync``: wait for CUDA after each)."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return Timing.of(seconds)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_json(path: Path | None, benchmark: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    """Write ``{"benchmark", "machine", "rows", ...}`` to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    record = {"benchmark": benchmark, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "rows": rows, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=lambda o: o.as_dict() if isinstance(o, Timing) else str(o)) + "\n")
    print(f"# results: {path}")
