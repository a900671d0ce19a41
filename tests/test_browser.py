"""A real headless Chromium (Debian's) drives the page: click an example, wait for every view, move a slider."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.app_server import running_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_DIR = Path(os.environ.get("CARTOON_SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "runs" / "screenshots"))
VIEWS = ["#surface", "#structure", "#texture", "#cartoon", "#mix"]

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    if os.environ.get("CARTOON_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def page():
    with pytest.MonkeyPatch.context() as monkeypatch, running_app(monkeypatch) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        yield page
        browser.close()


def image_src(page: Page, selector: str) -> str:
    return page.locator(f"{selector} img").first.get_attribute("src") or ""


def pixels(page: Page, src: str) -> np.ndarray:
    body = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def test_example_click_fills_every_view_and_slider_updates_mix(page):
    expect(page.locator("#status")).to_contain_text("Model:", timeout=30_000)
    page.get_by_role("button", name="coffee.jpg").or_(page.locator("img[src*='coffee']")).first.click()
    for selector in VIEWS:
        expect(page.locator(f"{selector} img").first).to_be_visible(timeout=60_000)
    expect(page.locator("#before-after img")).to_have_count(2, timeout=60_000)

    before = image_src(page, "#mix")
    mix_before = pixels(page, before)
    slider = page.locator("#w-texture input[type=range]")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)  # texture weight to the maximum
    page.wait_for_function(
        "([sel, old]) => { const img = document.querySelector(sel + ' img'); return img && img.src !== old; }",
        arg=["#mix", before], timeout=30_000,
    )
    mix_after = pixels(page, image_src(page, "#mix"))
    assert mix_after.shape == mix_before.shape
    assert np.abs(mix_after.astype(int) - mix_before.astype(int)).mean() > 1.0

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "explorer.png"), full_page=True)
    assert (SCREENSHOT_DIR / "explorer.png").stat().st_size > 10_000


def test_bad_upload_shows_a_message(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    expect(page.get_by_text("not an image").first).to_be_visible(timeout=30_000)
