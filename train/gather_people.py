"""People, faces and anime for the training data (issue 15), from Debian packages, reproducibly.

Sources, each seen on a contact sheet before its lists below were written:

* ``scratch`` (1.4): ``Media/Backgrounds`` (480x360: photos of rooms, streets, nature, sports, and drawn
  scenes, told apart by the explicit list :data:`SCRATCH_DRAWN`) and ``Media/Costumes/People`` (cut-outs with
  transparency: photographed people, and drawn people by the prefixes in :data:`SCRATCH_DRAWN_PEOPLE`).
* ``renpy-demo``, ``renpy-thequestion``: anime character sprites (Eileen, Lucy, Sylvie: several expressions),
  anime backgrounds and concert scenes, and four photos (``bg cave``, ``panorama``, ``washington``,
  ``whitehouse``); the GUI pieces are not taken.
* ``wesnoth-1.16-data``: painted portraits (humans, elves, dwarves, orcs, merfolk) with transparency.

Cut-outs are never flattened onto black or white: a figure is composited onto a background of its own kind
(photographed people onto scratch's photos, drawn people onto its drawings, anime sprites onto the anime
backgrounds, portraits onto a painted Wesnoth scene), scaled and placed by a generator seeded with the file's
name. The face folders hold the upper bodies of the same figures, cropped around the top of the figure's
opaque area on its background.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SCRATCH = "usr/share/scratch/Media"
SCRATCH_DRAWN = {"bedroom1", "bedroom2", "party-room", "room1", "room2", "room3", "spotlight-stage", "desert",
                 "underwater", "woods-and-bench", "woods", "night-city-with-street", "night-city", "school1",
                 "school2", "train-tracks3", "basketball-court2"}
"""scratch backgrounds that are drawings (the rest are photographs)."""
SCRATCH_SKIP = {"stars"}  # near-empty
SCRATCH_DRAWN_PEOPLE = ("baby", "ballerina", "boy", "breakdancer-", "diver", "girl", "lee-fan", "prince", "royalperson",
                        "roundman", "singer", "square", "woman")
"""scratch people whose names start so are drawings (every other one is a photographed person)."""
RENPY_GAMES = {"renpy-demo": "usr/share/games/renpy/demo/game/images",
               "renpy-thequestion": "usr/share/games/renpy/the_question/game/images"}
RENPY_PHOTOS = ("bg cave", "bg panorama", "bg washington", "bg whitehouse")
RENPY_ANIME_SCENES = ("bg club", "bg lecturehall", "bg meadow", "bg uni", "concert1", "concert2", "concert3")
RENPY_SPRITES = ("eileen ", "lucy ", "sylvie ", "logo base", "logo solid")
WESNOTH_PORTRAITS = "usr/share/games/wesnoth/1.16/data/core/images/portraits"
WESNOTH_PEOPLE = ("humans", "elves", "dwarves", "orcs", "merfolk")


@dataclass(frozen=True)
class Item:
    """One output image: where it goes, its name, the source it counts for, and the image."""

    folder: str  # photos, cartoons, photo_faces, cartoon_faces
    name: str
    source: str
    image: np.ndarray


def seeded(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "little"))


def rgba(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.seek(0)
        return img.convert("RGBA")


def opaque_box(figure: Image.Image) -> tuple[int, int, int, int] | None:
    alpha = np.asarray(figure)[..., 3]
    rows, cols = np.flatnonzero((alpha > 128).any(axis=1)), np.flatnonzero((alpha > 128).any(axis=0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def composite(figure: Image.Image, background: Image.Image, rng: np.random.Generator,
              height_share: tuple[float, float] = (0.55, 0.85)) -> Image.Image:
    """The figure (its opaque part) standing on the background: scaled to a share of its height, placed at a
    random x with its feet near the bottom. Returns RGB at the background's size."""
    box = opaque_box(figure)
    figure = figure.crop(box) if box else figure
    scene = background.convert("RGBA")
    height = int(scene.height * rng.uniform(*height_share))
    width = max(1, round(figure.width * height / figure.height))
    if width > scene.width * 0.9:
        width = int(scene.width * 0.9)
        height = max(1, round(figure.height * width / figure.width))
    figure = figure.resize((width, height), Image.Resampling.LANCZOS)
    left = int(rng.uniform(0, max(1, scene.width - width)))
    top = int(min(scene.height - height, scene.height * rng.uniform(0.9, 1.0) - height))
    scene.alpha_composite(figure, (left, max(0, top)))
    return scene.convert("RGB")


def upper_body(figure: Image.Image, background: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A square crop around the head and shoulders of a figure (the top of its opaque area), on a background."""
    box = opaque_box(figure)
    figure = figure.crop(box) if box else figure
    side = min(figure.width, figure.height) if figure.height < figure.width else max(figure.width, int(figure.height * 0.45))
    side = min(side, figure.height)
    left = max(0, (figure.width - side) // 2)
    bust = figure.crop((left, 0, left + side, side))
    scale = max(1.0, 256 / side)  # small cut-outs are enlarged to a training patch
    bust = bust.resize((round(bust.width * scale), round(bust.height * scale)), Image.Resampling.LANCZOS)
    scene = background.convert("RGB").resize((bust.width, bust.height), Image.Resampling.LANCZOS).convert("RGBA")
    offset = (int(rng.integers(0, 1 + max(0, scene.width - bust.width))), 0)
    scene.alpha_composite(bust, offset)
    return scene.convert("RGB")


def scratch_items(root: Path) -> Iterator[Item]:
    backgrounds = [p for p in sorted((root / SCRATCH / "Backgrounds").glob("*/*"))
                   if p.suffix.lower() in (".jpg", ".gif", ".png") and p.stem not in SCRATCH_SKIP]
    drawn = [p for p in backgrounds if p.stem in SCRATCH_DRAWN]
    photos = [p for p in backgrounds if p.stem not in SCRATCH_DRAWN]
    for path in photos:
        yield Item("photos", f"scratch--{path.stem}", "scratch backgrounds", np.asarray(rgba(path).convert("RGB")))
    for path in drawn:
        yield Item("cartoons", f"scratch--{path.stem}", "scratch backgrounds", np.asarray(rgba(path).convert("RGB")))
    people = [p for p in sorted((root / SCRATCH / "Costumes" / "People").glob("*"))
              if p.suffix.lower() in (".gif", ".png")]
    for path in people:
        is_drawn = path.stem.startswith(SCRATCH_DRAWN_PEOPLE)
        pool = drawn if is_drawn else photos
        rng = seeded(path.name)
        figure = rgba(path)
        background = rgba(pool[int(rng.integers(len(pool)))])
        kind = "cartoons" if is_drawn else "photos"
        yield Item(kind, f"scratch-people--{path.stem}", "scratch people", np.asarray(composite(figure, background, rng)))
        face_background = rgba(pool[int(rng.integers(len(pool)))])
        yield Item("cartoon_faces" if is_drawn else "photo_faces", f"scratch-people--{path.stem}", "scratch people",
                   np.asarray(upper_body(figure, face_background, rng)))


def renpy_items(roots: dict[str, Path]) -> Iterator[Item]:
    images = {}
    for package, root in roots.items():
        for path in sorted((root / RENPY_GAMES[package]).glob("*")):
            images[path.stem] = (package, path)
    scenes = [images[name][1] for name in RENPY_ANIME_SCENES if name in images]
    for name in RENPY_PHOTOS:
        if name in images:
            package, path = images[name]
            yield Item("photos", f"{package}--{name.replace(' ', '-')}", package, np.asarray(rgba(path).convert("RGB")))
    for name in RENPY_ANIME_SCENES:
        if name in images:
            package, path = images[name]
            yield Item("cartoons", f"{package}--{name.replace(' ', '-')}", package, np.asarray(rgba(path).convert("RGB")))
    for stem, (package, path) in sorted(images.items()):
        if not stem.startswith(RENPY_SPRITES):
            continue
        rng = seeded(path.name)
        figure = rgba(path)
        label = f"{package}--{stem.replace(' ', '-')}"
        scene = rgba(scenes[int(rng.integers(len(scenes)))])
        yield Item("cartoons", label, package, np.asarray(composite(figure, scene, rng, (0.7, 0.95))))
        yield Item("cartoon_faces", label, package, np.asarray(upper_body(figure, rgba(scenes[int(rng.integers(len(scenes)))]), rng)))


def wesnoth_portrait_items(root: Path, painted_scenes: list[Path]) -> Iterator[Item]:
    for group in WESNOTH_PEOPLE:
        for path in sorted((root / WESNOTH_PORTRAITS / group).glob("*")):
            if path.suffix.lower() not in (".png", ".webp"):
                continue
            rng = seeded(path.name)
            figure = rgba(path)
            if opaque_box(figure) is None:
                continue
            scene = rgba(painted_scenes[int(rng.integers(len(painted_scenes)))])
            yield Item("cartoon_faces", f"wesnoth-portrait--{group}--{path.stem}", "wesnoth-1.16-data portraits",
                       np.asarray(upper_body(figure, scene, rng)))
