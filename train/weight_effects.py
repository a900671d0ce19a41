"""What the weight sliders do to a loss-conditional model's cartoons, measured (issue 17).

    python -m train weight-effects --model runs/conditional --held-out data/held_out --out runs/weight-effects

Each weight in turn takes five values (1/4x to 4x the recipe's) with the other two at 1x, on every held-out
photo; the table gives, averaged over the photos, the measure the paper's ablation says that weight moves:

* structure -> the flat fraction of the cartoon (:func:`train.evaluate.flat_fraction`): flatter regions;
* texture -> the gradient energy of the cartoon's texture representation (grey by the mean colour shift):
  stronger lines and detail;
* surface -> the high-frequency energy of the cartoon's surface representation (what a 3x3 Laplacian keeps
  of the guided-filtered cartoon): smoother, cleaner areas as it falls. Outlines dominate that energy, and the
  cartoon set's surface views carry more of it than the photos' (sharper, darker edges), so a second row takes
  the same energy over the smooth areas only (:func:`surface_fine_texture`), where the cartoons carry less.

It also writes ``grid.png``: the first held-out photo's cartoon across structure (rows) x texture (columns) at
1/4x, 1x and 4x, ``curves.png`` (each measure against its weight, relative to 1x) and ``effects.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from cartoon.image import load_image, scale_to_fit
from cartoon.inference import Cartoonizer
from cartoon.representations import surface, texture
from train.checkpoints import generator_folder
from train.data import list_images
from train.evaluate import flat_fraction

VALUES = (0.25, 0.5, 1.0, 2.0, 4.0)
NAMES = ("surface", "structure", "texture")


def texture_energy(cartoon: np.ndarray) -> float:
    """Mean squared gradient (grey levels) of the texture representation."""
    grey = texture(cartoon)[..., 0].astype(np.float32)
    return float((np.diff(grey, axis=0)[:, :-1] ** 2 + np.diff(grey, axis=1)[:-1, :] ** 2).mean())


def surface_laplacian(cartoon: np.ndarray) -> np.ndarray:
    """3x3 Laplacian (grey levels, float32 HxW) of the grey surface representation: what both surface measures read."""
    grey = surface(cartoon).mean(axis=2).astype(np.float32)
    return cv2.Laplacian(grey, cv2.CV_32F, ksize=1)


def surface_high_frequency(cartoon: np.ndarray) -> float:
    """Mean squared 3x3 Laplacian of the surface representation (grey levels)."""
    return float((surface_laplacian(cartoon) ** 2).mean())


FINE_TEXTURE_LEVELS = 8.0


def surface_fine_texture(cartoon: np.ndarray) -> float:
    """Mean squared 3x3 Laplacian of the surface representation over its smooth areas: the pixels whose
    Laplacian stays under :data:`FINE_TEXTURE_LEVELS` grey levels (brush strokes, grain, hatching; not outlines)."""
    laplacian = surface_laplacian(cartoon)
    smooth = laplacian[np.abs(laplacian) < FINE_TEXTURE_LEVELS]
    return float((smooth**2).mean()) if smooth.size else 0.0


# (table row, the weight it sweeps, measure name, measure); the table's and effects.json's rows in this order
ROWS = (("surface", "surface", "surface high-frequency energy", surface_high_frequency),
        ("surface (smooth areas)", "surface", f"smooth-area energy (|Laplacian| < {FINE_TEXTURE_LEVELS:g})",
         surface_fine_texture),
        ("structure", "structure", "flat fraction", flat_fraction),
        ("texture", "texture", "texture gradient energy", texture_energy))


def weights_for(name: str, value: float) -> tuple[float, float, float]:
    return tuple(value if n == name else 1.0 for n in NAMES)  # type: ignore[return-value]


def grid(cartoonizer: Cartoonizer, photo: np.ndarray, out: Path, values: tuple[float, ...] = (0.25, 1.0, 4.0)) -> None:
    """Rows: structure weight; columns: texture weight; surface at 1x. Labelled."""
    tiles = [[cartoonizer(photo, weights=(1.0, row, column)) for column in values] for row in values]
    height, width = tiles[0][0].shape[:2]
    sheet = Image.new("RGB", (40 + width * len(values), 24 + height * len(values)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, column in enumerate(values):
        draw.text((40 + j * width + 4, 6), f"texture {column:g}x", fill="black")
    for i, row in enumerate(values):
        draw.text((2, 24 + i * height + height // 2), f"st {row:g}x", fill="black")
        for j in range(len(values)):
            sheet.paste(Image.fromarray(tiles[i][j]), (40 + j * width, 24 + i * height))
    sheet.save(out)


def curves(table: dict[str, dict], out: Path, size: tuple[int, int] = (300, 220)) -> None:
    """One panel per table row: its measure against its weight (log axis, 1/4x..4x), relative to the 1x value."""
    width, height = size
    left, right, top, bottom = 46, 12, 36, 34
    sheet = Image.new("RGB", (width * len(table), height), "white")
    draw = ImageDraw.Draw(sheet)
    for panel, entry in enumerate(table.values()):
        x0 = panel * width
        values = [entry["values"][str(v)] for v in VALUES]
        relative = [v / values[VALUES.index(1.0)] for v in values]
        low, high = min(min(relative), 0.9), max(max(relative), 1.1)
        plot_w, plot_h = width - left - right, height - top - bottom

        def point(index: int, value: float) -> tuple[float, float]:
            return (x0 + left + plot_w * index / (len(VALUES) - 1),
                    top + plot_h * (1 - (value - low) / (high - low)))

        draw.text((x0 + left, 4), f"{entry['weight']} weight ->", fill="black")
        draw.text((x0 + left, 17), entry["measure"], fill="black")
        draw.rectangle((x0 + left, top, x0 + left + plot_w, top + plot_h), outline=(160, 160, 160))
        for tick in (low, 1.0, high):
            draw.text((x0 + 4, point(0, tick)[1] - 6), f"{tick:.2f}", fill=(90, 90, 90))
            draw.line((x0 + left, point(0, tick)[1], x0 + left + plot_w, point(0, tick)[1]), fill=(225, 225, 225))
        for index, weight in enumerate(VALUES):
            draw.text((point(index, low)[0] - 10, top + plot_h + 8), f"{weight:g}x", fill=(90, 90, 90))
        points = [point(i, v) for i, v in enumerate(relative)]
        draw.line(points, fill=(200, 60, 30), width=3)
        for x, y in points:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(200, 60, 30))
    sheet.save(out)


def run(args: argparse.Namespace) -> int:
    cartoonizer = Cartoonizer.from_pretrained(str(generator_folder(args.model)), device=args.device, max_side=None)
    if not cartoonizer.conditioned:
        print(f"error: {args.model} is not a loss-conditional model (train it with --conditional)")
        return 2
    photos = [scale_to_fit(load_image(p), short_side=args.side) for p in list_images(args.held_out)]
    args.out.mkdir(parents=True, exist_ok=True)
    table = {}
    print("| weight | measure | " + " | ".join(f"{v:g}x" for v in VALUES) + " | rises with the weight |")
    print("|---|---|" + "---|" * len(VALUES) + "---|")
    sweeps: dict[str, list[list[np.ndarray]]] = {}  # weight -> per value, the photos' cartoons (made once)
    for key, name, label, measure in ROWS:
        if name not in sweeps:
            sweeps[name] = [[cartoonizer(photo, weights=weights_for(name, value)) for photo in photos] for value in VALUES]
        row = [float(np.mean([measure(cartoon) for cartoon in cartoons])) for cartoons in sweeps[name]]
        table[key] = {"weight": name, "measure": label, "values": dict(zip(map(str, VALUES), row))}
        rising = all(b >= a for a, b in zip(row, row[1:]))
        falling = all(b <= a for a, b in zip(row, row[1:]))
        trend = "yes (monotone)" if rising else "no: falls (monotone)" if falling else "not monotone"
        print(f"| {key} | {label} | " + " | ".join(f"{v:.4g}" for v in row) + f" | {trend} |", flush=True)
    (args.out / "effects.json").write_text(json.dumps(table, indent=2) + "\n")
    curves(table, args.out / "curves.png")
    grid(cartoonizer, photos[0], args.out / "grid.png")
    print(f"grid: {args.out / 'grid.png'} (rows: structure weight, columns: texture weight); "
          f"curves: {args.out / 'curves.png'} (each measure relative to its value at 1x)")
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="a conditional export, run folder or checkpoint")
    parser.add_argument("--held-out", type=Path, default=Path("data/held_out"))
    parser.add_argument("--side", type=int, default=256, help="short side the photos are processed at")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/weight-effects"))
