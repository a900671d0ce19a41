"""Explorer latency: the three views of a 512-px photo, cold and per slider, fast path vs reference.

    python benchmarks/explorer.py [--repeat 5] [--json runs/bench/explorer.json]

"new photo" = all three views of a photo not seen before (over the example photos); each slider row recomputes
what that slider invalidates, with everything else cached. Times: median (quartiles) in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.timing import Timing, add_json_option, write_json  # noqa: E402
from cartoon.explorer import EXPLORER_STRUCTURE_DOWNSAMPLE, Explorer, SurfaceParams  # noqa: E402
from cartoon.image import load_image, scale_to_fit  # noqa: E402
from cartoon.representations import MEAN_WEIGHTS, ShiftWeights, StructureParams  # noqa: E402


def ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def run(downsample: int, photos: list, repeat: int) -> dict[str, Timing]:
    structure = StructureParams(downsample=downsample)
    surface, shift, weights = SurfaceParams(), MEAN_WEIGHTS, (1.0, 1.0, 1.0)
    rows: dict[str, list[float]] = {}

    def record(name: str, fn) -> None:
        rows.setdefault(name, []).append(ms(fn))

    for _ in range(repeat):
        for img in photos:
            explorer = Explorer()
            key = explorer.add(img)
            record("new photo: 3 views + mix", lambda: (explorer.views(key, surface, structure, shift),
                                                        explorer.mix(key, weights, surface, structure, shift)))
            record("surface slider (radius)", lambda: explorer.mix(key, weights, replace(surface, radius=4), structure, shift))
            record("texture slider / reseed", lambda: explorer.mix(key, weights, surface, structure, ShiftWeights(0.3, 0.6, 0.1)))
            record("weight slider (mix only)", lambda: explorer.mix(key, (1.0, 2.0, 0.5), surface, structure, shift))
            record("structure: merge-to slider", lambda: explorer.mix(key, weights, surface, replace(structure, merge_to=150), shift))
            record("structure: scale slider", lambda: explorer.mix(key, weights, surface, replace(structure, scale=6), shift))
    return {name: Timing.of([v / 1e3 for v in values]) for name, values in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    add_json_option(parser)
    args = parser.parse_args()
    photos = [scale_to_fit(load_image(p), long_side=512) for p in sorted((ROOT / "assets" / "examples").glob("*.jpg"))]
    cold_explorer = Explorer()
    cold = ms(lambda: cold_explorer.views(cold_explorer.add(photos[0]), SurfaceParams(), StructureParams(), MEAN_WEIGHTS))
    fast, reference = run(EXPLORER_STRUCTURE_DOWNSAMPLE, photos, args.repeat), run(1, photos, args.repeat)
    print(f"# explorer, 512-px photos ({len(photos)} examples x {args.repeat}), {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}; first call ever: {cold:.0f} ms")
    print("| event | fast path (app) ms | reference (full-res Felzenszwalb) ms |\n|---|---|---|")
    for name in fast:
        print(f"| {name} | {fast[name].ms()} | {reference[name].ms()} |")
    write_json(args.json, "explorer", [{"event": name, "fast_s": fast[name], "reference_s": reference[name]} for name in fast],
               first_call_ms=cold)


if __name__ == "__main__":
    main()
