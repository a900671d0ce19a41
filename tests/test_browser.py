"""A tour of the whole page in a real headless Chromium (Debian's), as a person would take it.

Every source of a photo (file upload, example, webcam, clipboard), every button and every control is used once.
After each action: no error badge or toast anywhere, the views that depend on the action show new pixels, and
the views that do not depend on it are untouched. A screenshot of every step goes to ``runs/screenshots/``.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cartoon.explorer import CONTROL_NAMES
from tests.app_server import running_app

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
SCREENSHOT_DIR = Path(os.environ.get("CARTOON_SCREENSHOT_DIR", ROOT / "runs" / "screenshots"))
VIEWS = ("surface", "structure", "texture", "cartoon", "mix")
ALL_OUTPUTS = (*VIEWS, "before-after")
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    if os.environ.get("CARTOON_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

# Each control, the fraction of its track to click, and the views it must change. The weights stay above zero
# so that the mix keeps showing every representation for the steps after them.
SLIDER_MOVES: list[tuple[str, float, tuple[str, ...]]] = [
    ("surface_weight", 0.8, ("mix",)),
    ("structure_weight", 0.3, ("mix",)),
    ("texture_weight", 0.9, ("mix",)),
    ("radius", 0.05, ("surface", "mix")),
    ("eps", 0.02, ("surface", "mix")),
    ("scale", 0.15, ("structure", "mix")),
    ("sigma", 0.9, ("structure", "mix")),
    ("min_size", 0.5, ("structure", "mix")),
    ("merge_to", 0.05, ("structure", "mix")),
    ("n_segments", 0.6, ()),  # SLIC segments: no effect while the algorithm is Felzenszwalb
    ("red", 0.95, ("texture", "mix")),
    ("green", 0.05, ("texture", "mix")),
    ("blue", 0.9, ("texture", "mix")),
]
assert {name for name, *_ in SLIDER_MOVES} | {"algorithm"} == set(CONTROL_NAMES)


@pytest.fixture(scope="module")
def page():
    with pytest.MonkeyPatch.context() as monkeypatch, running_app(monkeypatch) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True,
                                      permissions=["camera", "clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#status")).to_contain_text("Model:", timeout=TIMEOUT_MS)
        yield page
        browser.close()


class Tour:
    """Acts on the page and checks what changed after each action."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.step = 0
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def sources(self) -> dict[str, str]:
        """The image URLs each output shows now (the before/after slider: both, joined)."""
        return {name: "|".join(self.page.locator(f"#{name} img").evaluate_all("els => els.map(e => e.src)"))
                for name in ALL_OUTPUTS}

    def pixels(self, name: str) -> np.ndarray:
        """The pixels of the image an output shows, read from the browser's own decoded copy (a canvas): what the
        person sees, with no second download that a busy server could cut short."""
        data_url = self.page.locator(f"#{name} img").first.evaluate(
            "img => { const c = document.createElement('canvas'); c.width = img.naturalWidth;"
            " c.height = img.naturalHeight; c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }")
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))

    def act(self, label: str, action: Callable[[], None], changes: Iterable[str], keeps: Iterable[str] = ()) -> None:
        """Do ``action``; wait until every output in ``changes`` shows a new image with different pixels; check
        that the outputs in ``keeps`` still show theirs; no error anywhere; screenshot."""
        changes, keeps = tuple(changes), tuple(keeps)
        before = self.sources()
        old_pixels = {name: self.pixels(name) for name in changes if name in VIEWS and before[name]}
        action()
        for name in changes:
            self.page.wait_for_function(
                "([sel, old]) => { const imgs = [...document.querySelectorAll(sel + ' img')];"
                " const now = imgs.map(e => e.src).join('|'); return imgs.length > 0 && now !== old"
                " && imgs.every(e => e.complete && e.naturalWidth > 0); }",
                arg=[f"#{name}", before[name]], timeout=TIMEOUT_MS,
            )
        self.assert_no_error(label)
        after = self.sources()
        for name, old in old_pixels.items():
            new = self.pixels(name)
            assert new.shape != old.shape or np.abs(new.astype(int) - old.astype(int)).mean() > 0.01, f"{label}: {name} did not change"
        for name in keeps:
            assert after[name] == before[name], f"{label}: {name} changed but should not have"
        self.screenshot(label)

    def assert_no_error(self, label: str) -> None:
        badges = self.page.locator("[data-testid='status-tracker'] .error")
        toasts = self.page.locator("[data-testid='toast-body']")
        assert badges.count() == 0, f"{label}: an error badge is shown"
        assert toasts.count() == 0, f"{label}: a toast is shown: {toasts.first.inner_text()}"

    def screenshot(self, label: str) -> Path:
        self.step += 1
        path = SCREENSHOT_DIR / f"tour-{self.step:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def click_track(self, name: str, fraction: float) -> None:
        """Click a slider's track at ``fraction`` of its width: moves the thumb there and releases it."""
        track = self.page.locator(f"#control-{name} input[type=range]")
        track.scroll_into_view_if_needed()
        box = track.bounding_box()
        self.page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)

    def value(self, name: str) -> float:
        return float(self.page.locator(f"#control-{name} input[type=number]").input_value())


def _clipboard_png(page: Page, path: Path) -> None:
    """Put an image on the page's clipboard, as copying a picture in another app would."""
    data = list(path.read_bytes())
    page.evaluate(
        "async (bytes) => { const blob = new Blob([new Uint8Array(bytes)], {type: 'image/png'});"
        " await navigator.clipboard.write([new ClipboardItem({'image/png': blob})]); }",
        data,
    )


def test_a_tour_of_every_control(page, tmp_path):
    tour = Tour(page)
    photo = page.locator("#photo")

    # 1. A photo from disk: every view fills in, the cartoon preview too.
    tour.act("upload", lambda: photo.locator("input[type=file]").set_input_files(str(EXAMPLES / "flower.jpg")),
             changes=ALL_OUTPUTS)

    # 2. Every slider once; only its own view and the mix change.
    for name, fraction, changes in SLIDER_MOVES:
        default = tour.value(name)
        others = [view for view in ("surface", "structure", "texture", "cartoon") if view not in changes]
        if changes:
            tour.act(f"slider-{name}", lambda: tour.click_track(name, fraction), changes, keeps=others)
        else:
            tour.click_track(name, fraction)
            page.wait_for_timeout(500)  # nothing should change: give a wrong update the time to show
            tour.assert_no_error(name)
            tour.screenshot(f"slider-{name}")
        assert tour.value(name) != default, f"{name}: the click did not move the slider"

    # 3. The algorithm radio, then the SLIC slider that only matters now.
    tour.act("algorithm-slic", lambda: page.locator("#control-algorithm").get_by_text("SLIC").click(),
             changes=("structure", "mix"), keeps=("surface", "texture", "cartoon"))
    tour.act("slider-n_segments-slic", lambda: tour.click_track("n_segments", 0.1), changes=("structure", "mix"),
             keeps=("surface", "texture", "cartoon"))

    # 4. A slider's reset button puts the default back and the view follows.
    tour.act("reset-radius", lambda: page.locator("#control-radius button[aria-label*='eset']").click(),
             changes=("surface", "mix"), keeps=("structure", "texture", "cartoon"))
    assert tour.value("radius") == 5

    # 5. Reseed: new colour-shift weights and seed, a new texture.
    red = tour.value("red")
    tour.act("reseed", lambda: page.locator("#reseed").click(), changes=("texture", "mix"),
             keeps=("surface", "structure", "cartoon"))
    assert tour.value("red") != red
    expect(page.locator("#seed input")).to_have_value("1")

    # 6. Full-size render: the cartoon at full size and the before/after pair, no error (the bug of issue 13).
    tour.act("render", lambda: page.locator("#render").click(), changes=("cartoon", "before-after"),
             keeps=("surface", "structure", "texture", "mix"))
    with Image.open(EXAMPLES / "flower.jpg") as img:
        full = (min(img.height, round(img.height * 720 / min(img.size))), min(img.width, round(img.width * 720 / min(img.size))))
    assert tour.pixels("cartoon").shape[:2] == full
    expect(page.locator("#before-after img")).to_have_count(2)

    # 7. The view buttons: download the cartoon, show the mix full screen and leave again.
    with page.expect_download() as download:
        page.locator("#cartoon button[aria-label='Download'], #cartoon a[download] button").first.click()
    saved = tmp_path / "cartoon.png"
    download.value.save_as(saved)
    assert np.asarray(Image.open(saved)).shape[:2] == full
    small = page.locator("#mix img").bounding_box()
    page.locator("#mix button[aria-label='Fullscreen']").click()
    expect(page.locator("#mix button[aria-label='Exit fullscreen mode']")).to_be_visible()
    assert page.locator("#mix img").bounding_box()["width"] > 2 * small["width"]
    tour.screenshot("fullscreen-mix")
    page.locator("#mix button[aria-label='Exit fullscreen mode']").click()
    expect(page.locator("#mix button[aria-label='Fullscreen']")).to_be_visible()
    assert page.locator("#mix img").bounding_box()["width"] == pytest.approx(small["width"], abs=2)
    tour.assert_no_error("fullscreen")

    # 8. The explanations open.
    about = page.locator("#about-structure")
    expect(about.get_by_text("adaptive colour")).not_to_be_visible()
    about.get_by_text("What is this?").click()
    expect(about.get_by_text("adaptive colour")).to_be_visible()
    tour.screenshot("what-is-this")

    # 9. An example photo replaces the upload everywhere.
    tour.act("example", lambda: page.locator("img[src*='coffee']").first.click(), changes=ALL_OUTPUTS)

    # 10. The webcam (Chromium's fake camera) and the clipboard are photo sources too.
    def capture() -> None:
        photo.get_by_label("Capture from camera").click()
        photo.get_by_text("Click to Access Webcam").click()
        page.wait_for_function("() => { const v = document.querySelector('#photo video');"
                               " return v && v.readyState >= 2 && v.currentTime > 0.5; }", timeout=TIMEOUT_MS)
        photo.get_by_label("capture photo", exact=True).click()

    tour.act("webcam", capture, changes=ALL_OUTPUTS)
    assert tour.pixels("surface").std() > 5, "the webcam frame came through blank"

    def paste() -> None:
        cat = tmp_path / "cat.png"
        Image.open(EXAMPLES / "chelsea-the-cat.jpg").save(cat)
        _clipboard_png(page, cat)
        photo.get_by_label("Paste from clipboard").click()

    tour.act("clipboard", paste, changes=ALL_OUTPUTS)


def test_bad_upload_shows_a_message(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    page.locator("#photo").get_by_label("Upload file").click()
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    expect(page.get_by_text("not an image").first).to_be_visible(timeout=30_000)


def test_the_video_tab_cartoonizes_a_clip_that_plays(page, tmp_path):
    from tests.test_video import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=24, size=(96, 64))
    page.reload()  # a fresh page: the error the previous test provoked on purpose is gone
    expect(page.locator("#status")).to_contain_text("Model:", timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Video").click()
    expect(page.get_by_text("Clips up to")).to_be_visible()
    page.locator("#video-in input[type=file]").set_input_files(str(clip))
    expect(page.locator("#video-in video")).to_have_count(1, timeout=TIMEOUT_MS)
    page.locator("#video-render").click()
    player = page.locator("#video-out video")
    expect(player).to_have_count(1, timeout=TIMEOUT_MS)
    # The cartoon loads and plays in the browser: H.264 in MP4, the clip's length.
    page.wait_for_function("() => { const v = document.querySelector('#video-out video'); return v && v.readyState >= 1; }",
                           timeout=TIMEOUT_MS)
    duration = player.evaluate("v => v.duration")
    assert duration == pytest.approx(1.0, abs=0.1)
    player.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#video-out video').currentTime > 0.2", timeout=TIMEOUT_MS)
    assert page.locator("[data-testid='status-tracker'] .error").count() == 0
    assert page.locator("[data-testid='toast-body']").count() == 0
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "video-tab.png"), full_page=True)


def test_weight_sliders_re_render_a_conditioned_models_cartoon(page, monkeypatch):
    """With a loss-conditional model loaded, releasing a weight slider changes the cartoon (not only the mix)."""
    import app
    from cartoon.inference import Cartoonizer
    from tests.test_app import conditioned_tiny_generator

    cartoonizer = Cartoonizer(conditioned_tiny_generator(), device="cpu")
    monkeypatch.setattr(app, "get_cartoonizer", lambda *_: cartoonizer)  # the same server, now with that model
    page.reload()
    page.get_by_role("tab", name="Photo").click()
    expect(page.locator("#weights-note")).to_contain_text("steer the generator", timeout=TIMEOUT_MS)
    tour = Tour(page)
    tour.act("conditioned-upload", lambda: page.locator("#photo input[type=file]").set_input_files(
        str(EXAMPLES / "flower.jpg")), changes=ALL_OUTPUTS)
    for name, fraction in (("surface_weight", 0.95), ("texture_weight", 0.1)):
        tour.act(f"conditioned-{name}", lambda: tour.click_track(name, fraction), changes=("mix", "cartoon"),
                 keeps=("surface", "structure", "texture"))


def test_the_bundled_models_sliders_steer_its_cartoon(page):
    """With the bundled model (an app process of its own, no stand-in): the page says the sliders steer it, and the
    structure weight changes its cartoon. A second tab of the tour's browser."""
    from tests.app_server import app_process, free_port

    port = free_port()
    with app_process(port, args=("--port", str(port))):
        page = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#status")).to_contain_text("bundled model", timeout=TIMEOUT_MS)
        tour = Tour(page)
        tour.act("bundled-upload", lambda: page.locator("#photo input[type=file]").set_input_files(
            str(EXAMPLES / "temple.jpg")), changes=ALL_OUTPUTS)
        expect(page.locator("#weights-note")).to_contain_text("steer the generator", timeout=TIMEOUT_MS)
        tour.act("bundled-structure-weight", lambda: tour.click_track("structure_weight", 0.95),
                 changes=("mix", "cartoon"), keeps=("surface", "structure", "texture"))
        page.close()
