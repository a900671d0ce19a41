"""Large inputs: a 24-megapixel photo at full size (peak RSS), and a sheet that shows the tiles leave no seam.

    python benchmarks/large_input.py [--model assets/model] [--out runs/large_input]

The 24 MP run happens in a child process so that its peak RSS (ru_maxrss) is its own. The seam check
cartoonizes a 2048x1536 photo tiled (1024-px tiles, 64-px cross-fades) and untiled, and writes
``seams.png``: both outputs around a tile boundary and their difference amplified 10x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.timing import add_json_option, write_json  # noqa: E402

EXAMPLE = ROOT / "assets" / "examples" / "temple.jpg"


def load_cartoonizer(model: Path, max_side):
    from cartoon.checkpoint import load_generator
    from cartoon.inference import Cartoonizer
    from cartoon.models import UNetGenerator

    generator = load_generator(model) if (model / "model.safetensors").exists() else UNetGenerator()
    return Cartoonizer(generator, device="cpu", max_side=max_side)


def child(model: Path, out: Path) -> None:
    import cv2

    from cartoon.image import load_image

    photo = cv2.resize(load_image(EXAMPLE), (6000, 4000), interpolation=cv2.INTER_CUBIC)  # 24 MP
    cartoonizer = load_cartoonizer(model, None)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    cartoon = cartoonizer(photo, max_pixels=None)
    seconds = time.perf_counter() - start
    Image.fromarray(cartoon[::8, ::8]).save(out / "24mp-preview.png")
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mb": baseline, "shape": list(cartoon.shape)}))


def seam_sheet(model: Path, out: Path) -> float:
    import cv2

    import cartoon.inference as inference
    from cartoon.image import load_image, to_tensor, to_uint8

    photo = cv2.resize(load_image(EXAMPLE), (2048, 1536), interpolation=cv2.INTER_CUBIC)
    cartoonizer = load_cartoonizer(model, None)
    tiled = cartoonizer.cartoonize_array(photo)
    untiled = to_uint8(cartoonizer.cartoonize_tensor(to_tensor(photo)))[0]
    boundary = inference._tile_starts(2048)[1]  # the second column of tiles starts here
    window = (slice(300, 556), slice(boundary - 128, boundary + 128 + inference.TILE_OVERLAP))
    diff = np.abs(tiled.astype(int) - untiled.astype(int))
    amplified = np.clip(diff[window] * 10, 0, 255).astype(np.uint8)
    sheet = np.concatenate([untiled[window], tiled[window], amplified], axis=1)
    Image.fromarray(sheet).save(out / "seams.png")
    return float(diff.max()), float(diff.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "assets" / "model")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "large_input")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.model, args.out)
        return
    result = subprocess.run([sys.executable, __file__, "--child", "--model", str(args.model), "--out", str(args.out)],
                            capture_output=True, text=True, check=True)
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    worst, mean = seam_sheet(args.model, args.out)
    print(f"# 24 MP ({stats['shape'][1]}x{stats['shape'][0]}) full-size cartoon, tiled: {stats['seconds']:.0f} s, "
          f"peak RSS {stats['peak_rss_mb']:.0f} MB (process before the call: {stats['rss_before_mb']:.0f} MB)")
    print(f"# seams: tiled vs untiled 2048x1536, max abs diff {worst:.0f}/255, mean {mean:.3f}/255; "
          f"sheet {args.out / 'seams.png'} (untiled | tiled | diff x10)")
    write_json(args.json, "large_input", [{"case": "24 MP tiled", **stats}, {"case": "seams 2048x1536", "max_diff": worst,
                                                                            "mean_diff": mean}])


if __name__ == "__main__":
    main()
