"""People, faces and anime for the training data (issue 15), from Debian packages, reproducibly.

Sources, each seen on a contact sheet before its lists below were written:

* ``scratch`` (1.4): ``Media/Backgrounds`` (480x360: photos of rooms, streets, nature, sports, and drawn
  scenes, told apart by the explicit list :data:`SCRATCH_DRAWN`) and ``Media/Costumes/People`` (cut-outs with
  transparency: photographed people, and drawn people by the prefixes in :data:`SCRATCH_DRAWN_PEOPLE`).
* ``renpy-demo``, ``renpy-thequestion``: anime character sprites (Eileen, Lucy, Sylvie: several expressions),
  anime backgrounds and concert scenes, and five photos (``bg cave``, ``panorama``, ``washington``,
  ``whitehouse``, the demo's menu background); the_question's menu background (a campus), its app-icon art
  (a park; Sylvie's bust, cut out and on trees). The GUI pieces are not taken. Every sprite with a transparent
  surround appears twice: in full on one scene, and as a visual-novel close-up (cut at the waist) on another.
* ``renpy-doc``: two screenshots of the documentation's sample game (Eileen on a school rooftop, by
  Mugenjohncel), cropped to what has no interface on it (:data:`RENPY_DOC_CROPS`).
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
RENPY_EXTRA = {"renpy-demo": {"photos": {"menu-road": "usr/share/games/renpy/demo/game/gui/main_menu.jpg"}},
               "renpy-thequestion": {
                   "cartoons": {"menu-campus": "usr/share/games/renpy/the_question/game/gui/main_menu.png",
                                "icon-park": "usr/share/games/renpy/the_question/android-icon_background.png"},
                   "cartoon_faces": {"icon-sylvie": "usr/share/games/renpy/the_question/ios-icon.png"},
                   "sprites": {"icon-sylvie-bust": "usr/share/games/renpy/the_question/android-icon_foreground.png"}}}
"""Ren'Py art outside the games' image folders: whole images by output folder, and one more cut-out."""
RENPY_CLOSE_UP = (1.5, 1.9)
"""A close-up's figure height as a share of the scene's: the head near the top, cut at the waist or hips."""
RENPY_DOC_IMAGES = "usr/share/doc/renpy/html/_images"
RENPY_DOC_CROPS = {"overlay_main_menu.jpg": (0.23, 0.0, 1.0, 0.82), "intermediate_dialogue.jpg": (0.0, 0.0, 1.0, 0.70)}
"""renpy-doc screenshots and the box (fractions of width and height) free of menus, text boxes and titles (the
others repeat these two, or have a menu over the picture)."""
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
    extra = {package: {folder: {name: path for name, path in files.items() if (roots[package] / path).is_file()}
                       for folder, files in RENPY_EXTRA.get(package, {}).items()}
             for package in roots}  # what this version of the package has
    scenes = [images[name][1] for name in RENPY_ANIME_SCENES if name in images]
    scenes += [roots[package] / path for package, kinds in extra.items() for path in kinds.get("cartoons", {}).values()]
    for name in RENPY_PHOTOS:
        if name in images:
            package, path = images[name]
            yield Item("photos", f"{package}--{name.replace(' ', '-')}", package, np.asarray(rgba(path).convert("RGB")))
    for name in RENPY_ANIME_SCENES:
        if name in images:
            package, path = images[name]
            yield Item("cartoons", f"{package}--{name.replace(' ', '-')}", package, np.asarray(rgba(path).convert("RGB")))
    for package, kinds in extra.items():
        for folder in ("photos", "cartoons", "cartoon_faces"):
            for name, path in kinds.get(folder, {}).items():
                image = rgba(roots[package] / path).convert("RGB")
                yield Item(folder, f"{package}--{name}", package, np.asarray(image))
    sprites = [(stem, package, path) for stem, (package, path) in sorted(images.items())
               if stem.startswith(RENPY_SPRITES)]
    sprites += [(name, package, roots[package] / path)
                for package, kinds in extra.items() for name, path in kinds.get("sprites", {}).items()]
    for stem, package, path in sprites:
        rng = seeded(path.name)
        figure = rgba(path)
        label = f"{package}--{stem.replace(' ', '-')}"
        scene = rgba(scenes[int(rng.integers(len(scenes)))])
        yield Item("cartoons", label, package, np.asarray(composite(figure, scene, rng, (0.7, 0.95))))
        yield Item("cartoon_faces", label, package, np.asarray(upper_body(figure, rgba(scenes[int(rng.integers(len(scenes)))]), rng)))
        if (np.asarray(figure)[..., 3] > 128).mean() > 0.9:
            continue  # an opaque card (the logo on its blue square), not a figure: no close-up
        close_up = composite(figure, rgba(scenes[int(rng.integers(len(scenes)))]), rng, RENPY_CLOSE_UP)
        yield Item("cartoons", f"{label}-close", package, np.asarray(close_up))


def renpy_doc_items(root: Path) -> Iterator[Item]:
    """The documentation's sample-game screenshots, cropped to their interface-free part."""
    for name, (left, top, right, bottom) in RENPY_DOC_CROPS.items():
        image = rgba(root / RENPY_DOC_IMAGES / name).convert("RGB")
        width, height = image.size
        box = (round(left * width), round(top * height), round(right * width), round(bottom * height))
        yield Item("cartoons", f"renpy-doc--{Path(name).stem}", "renpy-doc", np.asarray(image.crop(box)))


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
