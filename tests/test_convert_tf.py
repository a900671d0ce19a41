"""The TensorFlow checkpoint converter, on a checkpoint TensorFlow itself wrote (tests/fixtures/make_tf_checkpoint.py):
the converted generator computes what TensorFlow's graph computed, and broken files say what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradio_client import Client, handle_file

from cartoon.__main__ import main as cartoon_cli
from cartoon.checkpoint import load_generator
from cartoon.convert_tf import ConversionError, crc32c, main, read_checkpoint, slim_names, to_generator
from tests.app_server import app_process, free_port

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tf_generator"
PREFIX = FIXTURE / "model-33999"
EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "examples" / "coffee.jpg"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "authors"
    assert main([str(PREFIX), "-o", str(out)]) == 0
    return out


def broken_copy(tmp_path: Path, suffix: str, change) -> Path:
    """A copy of the fixture with one of its two files changed by ``change(bytes) -> bytes``."""
    folder = tmp_path / "broken"
    shutil.copytree(FIXTURE, folder)
    path = folder / f"model-33999{suffix}"
    path.write_bytes(change(path.read_bytes()))
    return folder / "model-33999"


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283 and crc32c(b"") == 0


def test_the_converted_generator_reproduces_tensorflows_output(converted):
    generator = load_generator(converted)
    assert generator.config == {"channels": 4, "num_blocks": 4}
    x = torch.from_numpy(np.load(FIXTURE / "input.npy"))
    expected = np.load(FIXTURE / "output.npy")
    with torch.no_grad():
        got = generator(x).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(expected).mean() > 0.05  # the reference is not trivially zero


def test_every_tensor_is_read_and_mapped_by_the_authors_names():
    tensors = read_checkpoint(PREFIX)
    assert len(tensors) == 36 and tensors["generator/Conv/weights"].shape == (7, 7, 3, 4)
    assert {f"{scope}/{kind}" for scope in slim_names(4).values() for kind in ("weights", "biases")} == set(tensors)


def test_the_card_states_origin_and_licence(converted):
    card = (converted / "README.md").read_text()
    assert "SystemErrorWang/White-box-Cartoonization" in card and "CC BY-NC-SA 4.0" in card
    assert "license: cc-by-nc-sa-4.0" in card


def test_the_converted_folder_cartoonizes_through_the_cli_and_the_app(converted, tmp_path):
    assert cartoon_cli([str(EXAMPLE), "-o", str(tmp_path / "out"), "--model", str(converted), "--device", "cpu"]) == 0
    with Image.open(EXAMPLE) as photo:
        size = (photo.height, photo.width, 3)
    assert np.asarray(Image.open(tmp_path / "out" / "coffee.png")).shape == size

    port = free_port()
    with app_process(port, {"CARTOON_MODEL_REPO": None}, ("--port", str(port), "--model", str(converted))):
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        cartoon = np.asarray(Image.open(client.predict(handle_file(str(EXAMPLE)), api_name="/cartoonize")))
    assert cartoon.shape == size
    reference = np.asarray(Image.open(tmp_path / "out" / "coffee.png"))
    assert np.abs(cartoon.astype(int) - reference.astype(int)).max() <= 2  # the same model in the app and the CLI


@pytest.mark.parametrize(
    "suffix,change,message",
    [(".index", lambda d: d[:30], "shorter than a table footer"),
     (".index", lambda d: d[: len(d) - 10], "wrong magic number"),
     (".index", lambda d: d[:-1] + b"\x00", "wrong magic number"),
     (".index", lambda d: flip(d, 40), "fails its checksum"),
     (".data-00000-of-00001", lambda d: d[: len(d) // 2], "truncated"),
     (".data-00000-of-00001", lambda d: flip(d, 1000), "fails its checksum")],
    ids=["index too short", "index cut", "wrong magic", "index block damaged", "data cut", "data damaged"],
)
def test_broken_files_are_refused_clearly_and_nothing_is_written(tmp_path, capsys, suffix, change, message):
    prefix = broken_copy(tmp_path, suffix, change)
    out = tmp_path / "out"
    assert main([str(prefix), "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".index", ".data-00000-of-00001"])
def test_a_missing_file_is_named(tmp_path, suffix):
    prefix = broken_copy(tmp_path, suffix, lambda d: d)
    prefix.with_name(prefix.name + suffix).unlink()
    with pytest.raises(ConversionError, match=f"model-33999{suffix}: missing"):
        read_checkpoint(prefix)


def test_a_missing_tensor_and_a_wrong_shape_are_named():
    tensors = read_checkpoint(PREFIX)
    without = {k: v for k, v in tensors.items() if k != "generator/block_2/conv1/biases"}
    with pytest.raises(ConversionError, match="block_2/conv1/biases is missing"):
        to_generator(without)
    wrong = {**tensors, "generator/Conv_5/weights": np.zeros((3, 3, 16, 9), np.float32)}
    with pytest.raises(ConversionError, match="Conv_5/weights has shape .* does not fit"):
        to_generator(wrong)
    with pytest.raises(ConversionError, match="not the authors' generator"):
        to_generator({"discriminator/Conv/weights": np.zeros((3, 3, 3, 4), np.float32)})
