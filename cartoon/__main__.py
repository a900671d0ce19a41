"""Command line: ``python -m cartoon INPUT... -o OUTDIR [--max-side N] [--views] [--device D] [--model M]``.

Cartoonizes image files into ``OUTDIR/<name>.png`` and video clips into ``OUTDIR/<name>.mp4`` (H.264 with the
clip's timing and sound, :mod:`cartoon.video`); folders are searched for both. With ``--views`` images also get
``<name>.surface.png``, ``<name>.structure.png`` and ``<name>.texture.png`` (at the network's resolution).
Unreadable files are reported and skipped; the exit code is 1 if any file failed, 2 for usage errors or when
no model can be loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cartoon.checkpoint import CheckpointError
from cartoon.image import ImageError, find_images, load_image, scale_to_fit
from cartoon.video import VIDEO_SUFFIXES, cartoonize_video
from cartoon.inference import DEFAULT_MAX_SIDE, Cartoonizer, parse_weights
from cartoon.representations import StructureParams, structure, surface, texture


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cartoon",
        description="Turn photos into cartoons (white-box cartoonization, Wang & Yu 2020).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="image or video files, or folders (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--max-side", type=int, default=DEFAULT_MAX_SIDE, help="scale the short side down to this before the network; 0 = full size"
    )
    parser.add_argument("--views", action="store_true", help="also write the surface, structure and texture views")
    parser.add_argument("--weights", default=None, metavar="S,ST,T",
                        help="surface, structure and texture weights as multiples of the recipe's (a loss-conditional "
                             "model only), e.g. 2,1,0.5")
    parser.add_argument("--no-stabilize", action="store_true",
                        help="videos: cartoonize every frame on its own (no optical-flow smoothing between frames)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    parser.add_argument(
        "--model", default=None, help="checkpoint folder or Hub repo id (default: $CARTOON_MODEL_REPO, then assets/model)"
    )
    parser.add_argument("--revision", default=None, help="Hub revision of --model")
    return parser


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Files given directly (whatever their suffix) plus image files found under given folders, in order."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            videos = [p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
            found += sorted(find_images(item) + videos)
        else:
            found.append(item)
    return found


def save_png(img: np.ndarray, path: Path) -> None:
    Image.fromarray(img).save(path, format="PNG")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = collect_inputs(args.inputs)
    if not files:
        print("error: no image or video files found in the given inputs", file=sys.stderr)
        return 2
    try:
        cartoonizer = Cartoonizer.from_pretrained(
            args.model, args.revision, device=args.device, max_side=args.max_side or None
        )
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Model: {cartoonizer.describe()}", file=sys.stderr)
    try:
        weights = None if args.weights is None else parse_weights(args.weights)
        cartoonizer.condition(weights)  # checks them against the model before any file is touched
    except ValueError as error:
        print(f"error: --weights {args.weights}: {error}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)

    failures = 0
    used_names: set[str] = set()
    for path in tqdm(files, desc="cartoonizing", unit="file", file=sys.stderr, disable=len(files) == 1):
        stem = _unique_stem(path, used_names)
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                write_video(cartoonizer, path, args.output / f"{stem}.mp4", args.max_side or None, not args.no_stabilize)
                continue
            img = load_image(path)
            save_png(cartoonizer(img, weights=weights), args.output / f"{stem}.png")
            if args.views:  # at the resolution the network sees
                small = scale_to_fit(img, short_side=cartoonizer.max_side)
                save_png(surface(small), args.output / f"{stem}.surface.png")
                save_png(structure(small, StructureParams()), args.output / f"{stem}.structure.png")
                save_png(texture(small), args.output / f"{stem}.texture.png")
        except (ImageError, OSError) as error:
            failures += 1
            tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
    done = len(files) - failures
    print(f"{done} of {len(files)} files written to {args.output}", file=sys.stderr)
    return 1 if failures else 0


def write_video(cartoonizer: Cartoonizer, source: Path, target: Path, max_side: int | None, stabilize: bool) -> None:
    """One clip, with a progress bar in frames (rate and time left)."""
    with tqdm(desc=source.name, unit="frame", file=sys.stderr, leave=False) as bar:
        def progress(done: int, expected: int) -> None:
            bar.total = expected
            bar.update(done - bar.n)

        result = cartoonize_video(source, target, cartoonizer.cartoonize_frames, max_side=max_side, stabilize=stabilize,
                                  progress=progress)
    tqdm.write(f"{target.name}: {result.frames} frames, {result.width}x{result.height}, "
               f"{result.frames_per_second:.1f} frames/s", file=sys.stderr)


def _unique_stem(path: Path, used: set[str]) -> str:
    """The file's stem, made unique within this run (two folders may hold the same name)."""
    stem, index = path.stem, 1
    while stem in used:
        index += 1
        stem = f"{path.stem}-{index}"
    used.add(stem)
    return stem


if __name__ == "__main__":
    sys.exit(main())
