"""The generator shipped in ``assets/model``: present, small, the offline default, and it cartoonizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from cartoon.checkpoint import BUNDLED_DIR, resolve_generator
from cartoon.image import load_image, scale_to_fit
from cartoon.inference import Cartoonizer
from train.evaluate import colour_cast, flat_fraction

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.fixture(scope="module")
def shipped() -> Cartoonizer:
    model, source = resolve_generator()  # conftest forces the Hub offline
    assert source.kind == "bundled"
    return Cartoonizer(model, device="cpu", precision="fp32")


def test_shipped_files_are_complete_and_small():
    names = sorted(p.name for p in BUNDLED_DIR.iterdir())
    assert names == ["README.md", "config.json", "model.safetensors"]
    assert (BUNDLED_DIR / "model.safetensors").stat().st_size <= 6 * 2**20
    config = json.loads((BUNDLED_DIR / "config.json").read_text())
    assert config["channels"] == 32 and config["num_blocks"] == 4  # the paper's generator
    card = (BUNDLED_DIR / "README.md").read_text()
    assert "Training data" in card and "wesnoth" in card.lower() and "started from" in card


@pytest.mark.parametrize("name", ["temple.jpg", "grace-hopper.jpg"])  # both held out of training
def test_shipped_model_flattens_without_losing_the_photo(shipped, name):
    photo = scale_to_fit(load_image(EXAMPLES / name), long_side=256)
    cartoon = shipped(photo)
    assert cartoon.shape == photo.shape and cartoon.dtype == np.uint8
    difference = np.abs(cartoon.astype(int) - photo.astype(int))
    assert difference.mean() > 4, "the model returns (nearly) the photo unchanged"
    assert difference.mean() < 30, "the model loses the photo's content"
    cast = colour_cast(photo, cartoon)
    assert cast < 8, f"colour cast of {cast:.1f} levels (largest channel-mean shift)"
    # Cartoon surfaces are flatter: more nearly-constant pixels than in the photo.
    assert flat_fraction(cartoon) > flat_fraction(photo)


def test_the_shipped_model_is_conditioned_and_follows_its_weights(shipped):
    """The bundled model is loss-conditional: the weight sliders steer it (structure flattens, texture details)."""
    assert json.loads((BUNDLED_DIR / "config.json").read_text())["condition_dim"] == 3
    assert "loss-conditional" in (BUNDLED_DIR / "README.md").read_text()
    assert shipped.conditioned
    photo = scale_to_fit(load_image(EXAMPLES / "temple.jpg"), long_side=192)
    default = shipped(photo)
    assert np.array_equal(default, shipped(photo, weights=(1, 1, 1)))
    flat, detailed = shipped(photo, weights=(1, 4, 0.25)), shipped(photo, weights=(1, 0.25, 4))
    assert flat_fraction(flat) > flat_fraction(detailed)  # the trained effect of the structure and texture weights


def test_the_app_on_the_bundled_model_takes_the_weights():
    from gradio_client import Client, handle_file

    from tests.app_server import app_process, free_port

    port = free_port()
    with app_process(port, args=("--port", str(port))):
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert "bundled model" in client.predict(api_name="/model_status")
        photo = handle_file(str(EXAMPLES / "coffee.jpg"))
        default = client.predict(photo, api_name="/cartoonize")
        steered = client.predict(photo, surface_weight=1, structure_weight=4, texture_weight=1, api_name="/cartoonize")
        with Image.open(default) as a, Image.open(steered) as b:
            assert a.size == b.size and np.abs(np.asarray(a, int) - np.asarray(b, int)).mean() > 1
        with pytest.raises(Exception, match=r"\[1/16, 16\]"):
            client.predict(photo, structure_weight=100, api_name="/cartoonize")
