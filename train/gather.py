"""Build the training folders from Debian packages and the repo's example photos, reproducibly.

    python -m train.gather --out data/                # downloads ~0.7 GB of .deb files into data/.debs

Nothing is installed: each package is fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into
``data/.extracted``. The selection below is explicit (lists and globs) plus three filters (short side >= 256 px,
at least 75 % opaque, not near-empty), and ``data/SOURCES.md`` records what was taken, from where, under which
licence. Output folders hold RGB JPEGs with the short side at most 720 px:

* ``photos/``    nature photos (mate-backgrounds, lomiri-wallpapers-16.04) and sample photos (assets/examples,
                 scikit-image's motorcycle) - the generator's inputs;
* ``held_out/``  photos never trained on, for the sample sheet and the quality report (two faces among them);
* ``cartoons/``  painted scenes: Wesnoth story art (core + campaigns), SuperTux backgrounds, Hedgewars skies,
                 scratch's drawn backgrounds and drawn people, Ren'Py's anime scenes and characters;
* ``photo_faces/``, ``cartoon_faces/``  upper bodies of people (``--photo-faces``/``--cartoon-faces``).

People, faces and anime come from :mod:`train.gather_people` (cut-outs composited onto backgrounds of their
own kind). ``data/sheets/<folder>.png`` is a contact sheet of each folder, to look at before training.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cartoon.image import IMAGE_SUFFIXES, ImageError, load_image, scale_to_fit
from train.gather_people import RENPY_GAMES, renpy_doc_items, renpy_items, scratch_items, wesnoth_portrait_items

ROOT = Path(__file__).resolve().parent.parent
WESNOTH_CAMPAIGNS = ["httt", "did", "ei", "l", "nr", "sof", "sotbe", "thot", "trow", "tsg", "low", "dm", "dw", "utbs"]


@dataclass(frozen=True)
class Source:
    package: str
    globs: tuple[str, ...]
    kind: str  # "photos" or "cartoons"
    licence: str
    exclude: tuple[str, ...] = ()


SOURCES = [
    Source("mate-backgrounds", ("usr/share/backgrounds/mate/nature/*.jpg",), "photos", "GPL-2+ (mate-backgrounds)"),
    Source("lomiri-wallpapers-16.04", ("usr/share/backgrounds/*.jpg",), "photos", "CC BY 4.0 / CC BY-SA 4.0 (per file)",
           exclude=("*analogpattern*", "*umang*", "*greentock*")),  # abstract art and a rendered clock, not photos
    Source("wesnoth-1.16-data", ("usr/share/games/wesnoth/1.16/data/core/images/story/*",), "cartoons", "GPL-2+ (Wesnoth art)"),
    *[Source(f"wesnoth-1.16-{c}", ("usr/share/games/wesnoth/1.16/data/campaigns/*/images/story/*",), "cartoons",
             "GPL-2+ (Wesnoth art)") for c in WESNOTH_CAMPAIGNS],
    Source("supertux-data", ("usr/share/games/supertux2/images/background/**/*",), "cartoons",
           "GPL-2+ / CC BY-SA (SuperTux art)", exclude=("blue-*", "rolling-*", "forest_para*")),  # tiling textures
    Source("hedgewars-data", ("usr/share/games/hedgewars/Data/Themes/*/Sky*.png",
                              "usr/share/games/hedgewars/Data/Themes/*/horizont*.png"), "cartoons",
           "GPL-2 / CC BY-SA (Hedgewars art)"),
]
EXAMPLE_PHOTOS = "assets/examples/*.jpg"
HELD_OUT = {"astronaut.jpg", "grace-hopper.jpg", "coffee.jpg", "temple.jpg", "life_by_Aitzol_Berasategi.jpg", "Garden.jpg"}
PACKAGE_SUFFIXES = IMAGE_SUFFIXES - {".gif", ".bmp", ".tif", ".tiff"}
"""The formats taken from packages: those the filters and the counts in data/SOURCES.md were made with."""
MIN_SIDE, MAX_SIDE, MIN_OPAQUE, MIN_DETAIL, MIN_BRIGHTNESS, MAX_BRIGHTNESS = 300, 720, 0.75, 2.0, 45, 235
# Hedgewars skies and horizons that are tiles or flat textures rather than scenes (seen on a contact sheet).
NOT_SCENES = {"hedgewars-data": ("Bath", "Blox", "Compost")}


def fetch(package: str, debs: Path, extracted: Path) -> Path:
    """``apt-get download`` + ``dpkg -x`` (cached); returns the unpacked root."""
    target = extracted / package
    if target.is_dir():
        return target
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    tmp = target.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True)
    tmp.rename(target)
    return target


def reason_to_skip(path: Path) -> str | None:
    """Why an image is not a usable scene (None if it is)."""
    try:
        with Image.open(path) as img:
            if min(img.size) < MIN_SIDE:
                return "small"
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                alpha = np.asarray(img.convert("RGBA"))[..., 3]
                if (alpha > 200).mean() < MIN_OPAQUE:
                    return "transparent"
    except OSError:
        return "unreadable"
    gray = scale_to_fit(load_image(path), short_side=256).mean(axis=2)
    detail = np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean()
    if detail < MIN_DETAIL:
        return "near-empty"
    if not MIN_BRIGHTNESS <= gray.mean() <= MAX_BRIGHTNESS:
        return "too dark or too bright"
    return None


def save_rgb(path: Path, out: Path) -> None:
    img = scale_to_fit(load_image(path), short_side=MAX_SIDE)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(out, quality=95)


FOLDERS = ("photos", "held_out", "cartoons", "photo_faces", "cartoon_faces")
PEOPLE_LICENCES = {"scratch backgrounds": "CC BY-SA 3.0 (scratch Media/*)", "scratch people": "CC BY-SA 3.0 (scratch Media/*)",
                   "renpy-demo": "Expat (the package's copyright file, Files: *)",
                   "renpy-thequestion": "Expat (the package's copyright file, Files: *)",
                   "renpy-doc": "Expat (the package's copyright file, Files: *)",
                   "wesnoth-1.16-data portraits": "GPL-2+ (Wesnoth art)"}
PEOPLE_PACKAGES = {"scratch backgrounds": "scratch", "scratch people": "scratch", "renpy-demo": "renpy-demo",
                   "renpy-thequestion": "renpy-thequestion", "renpy-doc": "renpy-doc",
                   "wesnoth-1.16-data portraits": "wesnoth-1.16-data"}


def gather(out: Path) -> dict[str, Counter]:
    debs, extracted = out / ".debs", out / ".extracted"
    for kind in FOLDERS:
        shutil.rmtree(out / kind, ignore_errors=True)
    stats: dict[str, Counter] = {}
    rows = []
    candidates: list[tuple[str, Path, str, str]] = []  # (label, path, kind, licence)
    for source in SOURCES:
        root = fetch(source.package, debs, extracted)
        for pattern in source.globs:
            for path in sorted(root.glob(pattern)):
                if path.is_file() and path.suffix.lower() in PACKAGE_SUFFIXES and "/l10n/" not in str(path) \
                        and not any(fnmatch.fnmatch(path.name, ex) for ex in source.exclude):
                    candidates.append((source.package, path, source.kind, source.licence))
    for path in sorted(ROOT.glob(EXAMPLE_PHOTOS)):
        candidates.append(("assets/examples", path, "photos", "see assets/examples/CREDITS.md"))
    from skimage import data as skdata

    motorcycle = Path(skdata.__file__).parent / "motorcycle_left.png"
    candidates.append(("scikit-image", motorcycle, "photos", "Middlebury stereo data set (free for research)"))

    for label, path, kind, licence in candidates:
        counter = stats.setdefault(label, Counter())
        reason = "not a scene" if path.parent.name in NOT_SCENES.get(label, ()) else reason_to_skip(path)
        if reason:
            counter[f"skipped {reason}"] += 1
            continue
        folder = "held_out" if kind == "photos" and path.name in HELD_OUT else kind
        name = f"{label.replace('/', '_')}--{path.parent.name}--{path.stem}.jpg"
        try:
            save_rgb(path, out / folder / name)
        except ImageError:
            counter["skipped unreadable"] += 1
            continue
        counter[folder] += 1
        rows.append((folder, label, licence))

    painted = sorted((out / "cartoons").glob("wesnoth-1.16-data--*.jpg"))
    people = [scratch_items(fetch("scratch", debs, extracted)),
              renpy_items({package: fetch(package, debs, extracted) for package in RENPY_GAMES}),
              renpy_doc_items(fetch("renpy-doc", debs, extracted)),
              wesnoth_portrait_items(fetch("wesnoth-1.16-data", debs, extracted), painted)]
    for items in people:
        for item in items:
            counter = stats.setdefault(item.source, Counter())
            img = scale_to_fit(item.image, short_side=MAX_SIDE)
            (out / item.folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(out / item.folder / f"{item.name}.jpg", quality=95)
            counter[item.folder] += 1
            rows.append((item.folder, item.source, PEOPLE_LICENCES[item.source]))
    versions = {label: package_version(debs, PEOPLE_PACKAGES.get(label, label)) for label in stats}
    write_sources(out, stats, rows, versions)
    for folder in FOLDERS:
        contact_sheet(sorted((out / folder).glob("*.jpg")), out / "sheets" / f"{folder}.png")
    return stats


def package_version(debs: Path, package: str) -> str:
    """The version in a downloaded package's file name (``name_version_arch.deb``), or ``-``."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1].name.split("_")[1].replace("%3a", ":") if found else "-"


def contact_sheet(paths: list[Path], out: Path, tile: int = 128, columns: int = 16) -> None:
    """Thumbnails of every image of a folder with its name below, to look at before training."""
    from PIL import ImageDraw

    if not paths:
        return
    rows = -(-len(paths) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 12)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, path in enumerate(paths):
        with Image.open(path) as img:
            img.thumbnail((tile, tile))
            x, y = (index % columns) * tile, (index // columns) * (tile + 12)
            sheet.paste(img, (x + (tile - img.width) // 2, y + (tile - img.height) // 2))
        draw.text((x + 2, y + tile), path.stem.split("--")[-1][:20], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def write_sources(out: Path, stats: dict[str, Counter], rows: list[tuple[str, str, str]],
                  versions: dict[str, str] | None = None) -> None:
    licences = {label: licence for _, label, licence in rows}
    versions = versions or {}
    lines = ["# Training data: sources, counts and licences", "",
             "Built by `python -m train.gather` from Debian packages (apt-get download + dpkg -x) and sample photos.",
             "People and portraits are cut-outs composited onto backgrounds of their own kind (train/gather_people.py).",
             "", "| source | version | photos | held out | cartoons | photo faces | cartoon faces | skipped | licence |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, counter in stats.items():
        skipped = ", ".join(f"{k.removeprefix('skipped ')} {v}" for k, v in sorted(counter.items()) if k.startswith("skipped"))
        lines.append(f"| {label} | {versions.get(label, '-')} | {counter['photos']} | {counter['held_out']} | "
                     f"{counter['cartoons']} | {counter['photo_faces']} | {counter['cartoon_faces']} | {skipped or '-'} | "
                     f"{licences.get(label, '-')} |")
    totals = Counter(folder for folder, _, _ in rows)
    lines += ["", f"Totals: {totals['photos']} photos, {totals['held_out']} held out, {totals['cartoons']} cartoons, "
                  f"{totals['photo_faces']} photo faces, {totals['cartoon_faces']} cartoon faces.", ""]
    (out / "SOURCES.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    gather(args.out)
    print((args.out / "SOURCES.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
