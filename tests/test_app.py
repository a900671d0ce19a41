"""The app through its public API, as a client sees it (gradio_client against a server on loopback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from cartoon.explorer import CONTROL_NAMES, DEFAULT_VALUES
from tests.app_server import running_app

EXAMPLE = app.EXAMPLES_DIR / "coffee.jpg"


@pytest.fixture(scope="module")
def client() -> Client:
    with pytest.MonkeyPatch.context() as monkeypatch, running_app(monkeypatch) as url:
        yield Client(url, verbose=False)


def representations(client: Client, path: Path, **changes) -> list[np.ndarray]:
    files = client.predict(handle_file(str(path)), **changes, api_name="/representations")  # the rest: the API's defaults
    return [png(f) for f in files]


def png(path: str) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def test_named_endpoints_only(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/representations", "/cartoonize", "/cartoonize_video", "/model_status"}


def test_representations_api_names_every_control_with_the_library_default(client):
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/representations"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == ["photo", *CONTROL_NAMES]
    assert not parameters[0]["parameter_has_default"]
    assert {p["parameter_name"]: p["parameter_default"] for p in parameters[1:]} == DEFAULT_VALUES


def values(**changes) -> list:
    """The controls' values in page order: the defaults with ``changes``."""
    return [{**DEFAULT_VALUES, **changes}[name] for name in CONTROL_NAMES]


def test_representations_are_pngs_at_preview_size(client):
    surface, structure, texture, mix = representations(client, EXAMPLE)
    with Image.open(EXAMPLE) as img:
        width, height = img.size
    expected = (round(height * 512 / max(width, height)), round(width * 512 / max(width, height)), 3)
    for view in (surface, structure, texture, mix):
        assert view.shape == expected
    assert np.array_equal(texture[..., 0], texture[..., 1])  # one channel, shown as gray
    assert len(np.unique(structure.reshape(-1, 3), axis=0)) <= 200


def test_weights_change_the_mix(client):
    *_, balanced = representations(client, EXAMPLE)
    surface, _, texture, only_surface = representations(client, EXAMPLE, structure_weight=0, texture_weight=0)
    *_, only_texture = representations(client, EXAMPLE, surface_weight=0, structure_weight=0)
    assert np.array_equal(only_surface, surface) and np.array_equal(only_texture, texture)
    assert not np.array_equal(balanced, only_surface)


def test_parameters_change_their_view(client):
    surface_a, structure_a, texture_a, _ = representations(client, EXAMPLE)
    surface_b, structure_b, texture_b, _ = representations(client, EXAMPLE, radius=1, algorithm="slic", red=0.399)
    assert not np.array_equal(surface_a, surface_b)
    assert not np.array_equal(structure_a, structure_b)
    assert not np.array_equal(texture_a, texture_b)


def test_cartoonize_returns_a_png_of_the_photo_size(client):
    cartoon = png(client.predict(handle_file(str(EXAMPLE)), api_name="/cartoonize"))
    with Image.open(EXAMPLE) as img:
        assert cartoon.shape == (img.height, img.width, 3)  # short side 400 <= 720: full size


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"plain text", "not an image"), (b"\xff\xd8\xff\xe0trunc", "not an image|damaged")])
def test_bad_files_come_back_as_errors_and_the_server_lives_on(client, tmp_path, content, match):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(Exception, match=match):
        client.predict(handle_file(str(bad)), api_name="/cartoonize")
    assert representations(client, EXAMPLE)[0].ndim == 3


@pytest.mark.parametrize("changes,match", [({"radius": -1}, "radius"), ({"eps": 0}, "eps"), ({"algorithm": "watershed"}, "segmentation"),
                                           ({"red": 0, "green": 0, "blue": 0}, "colour-shift"), ({"surface_weight": -1}, "surface_weight")])
def test_bad_parameters_come_back_as_errors(client, changes, match):
    with pytest.raises(Exception, match=match):
        representations(client, EXAMPLE, **changes)


def test_image_modes_through_the_api(client, tmp_path):
    rgba = Image.open(EXAMPLE).convert("RGBA")
    for mode, img in {"rgba": rgba, "gray": rgba.convert("L"), "palette": rgba.convert("P")}.items():
        path = tmp_path / f"{mode}.png"
        img.save(path)
        assert png(client.predict(handle_file(str(path)), api_name="/cartoonize")).shape == (rgba.height, rgba.width, 3)


def test_photo_path_refuses_files_outside_the_app(tmp_path):
    with pytest.raises(app.ImageError, match="not an upload"):
        app.photo_path({"path": "/etc/passwd"})
    with pytest.raises(app.ImageError, match="not an upload"):
        app.photo_path({"path": str(app.EXAMPLES_DIR / ".." / ".." / "app.py")})
    assert app.photo_path({"path": str(EXAMPLE)}) == EXAMPLE.resolve()
    with pytest.raises(app.ImageError, match="Upload a photo"):
        app.photo_path(None)


def test_views_are_cached_per_image_and_parameter(monkeypatch):
    calls = []
    import cartoon.explorer as explorer

    original = explorer.Segmentation.of
    monkeypatch.setattr(explorer.Segmentation, "of", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(app, "EXPLORER", explorer.Explorer())
    payload = {"path": str(app.EXAMPLES_DIR / "flower.jpg")}
    key = app.on_photo(payload, *values())[0]
    assert len(calls) == 1
    app.view_updater("texture")(payload, key, *values(red=0.3, green=0.6, blue=0.1))
    app.view_updater("mix")(payload, key, *values(surface_weight=0.5, structure_weight=2, texture_weight=0))
    assert len(calls) == 1  # texture and weights moved: no new segmentation
    app.view_updater("structure")(payload, key, *values(merge_to=50))
    assert len(calls) == 1  # "merge to" moved: merged again, not segmented again
    app.view_updater("structure")(payload, key, *values(scale=20))
    assert len(calls) == 2


def test_explorer_cache_is_bounded_in_bytes():
    from cartoon.explorer import LRUCache

    cache = LRUCache(capacity=100, max_bytes=3_000)
    for index in range(10):
        cache.get_or_compute(index, lambda: np.zeros(1_000, np.uint8))
    assert cache.bytes <= 3_000 and 9 in cache and 0 not in cache


def conditioned_tiny_generator():
    """A tiny loss-conditional generator whose FiLM layers respond (random last layer instead of zeros)."""
    import torch

    from cartoon.models import UNetGenerator

    torch.manual_seed(1)
    generator = UNetGenerator(channels=4, num_blocks=1, condition_dim=3).eval()
    torch.nn.init.normal_(generator.conditioning.mlp[-1].weight, std=0.5)
    return generator


def test_a_conditioned_model_follows_the_weights_and_a_plain_one_refuses_them(tmp_path):
    from cartoon.inference import Cartoonizer

    with pytest.MonkeyPatch.context() as monkeypatch:
        conditioned = Cartoonizer(conditioned_tiny_generator(), device="cpu")
        monkeypatch.setattr(app, "get_cartoonizer", lambda *_: conditioned)
        payload = {"path": str(EXAMPLE)}
        default, steered = app.cartoonize(payload), app.cartoonize(payload, 4, 0.25, 1)
        assert default.shape == steered.shape and np.abs(default.astype(int) - steered.astype(int)).mean() > 0.5
        assert np.array_equal(default, app.cartoonize(payload, 1, 1, 1))
        assert "steer the generator" in app.weights_note()
        key = app.register(payload)
        moved = app.restyle(payload, key, 2, 1, 1)[0]
        assert not np.array_equal(moved, app.cartoon_preview(payload, key)[0])  # a weight slider re-renders
        plain = Cartoonizer(make_tiny(), device="cpu")
        monkeypatch.setattr(app, "get_cartoonizer", lambda *_: plain)
        with pytest.raises(app.gr.Error, match="fixed weights"):
            app.cartoonize(payload, 2, 1, 1)
        assert "do not change its cartoon" in app.weights_note()
        assert all(isinstance(v, type(app.gr.skip())) for v in app.restyle(payload, key, 2, 1, 1))  # nothing to redo


def make_tiny():
    from tests.conftest import make_tiny_generator

    return make_tiny_generator()
