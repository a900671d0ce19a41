"""Shared fixtures. Tests never touch the network: the Hub is forced offline before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Each test process (pytest-xdist worker) gets its own Gradio cache: Gradio names cached outputs by content, so
# two servers in two processes rendering the same picture would rewrite one file while the other serves it.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="gradio-tests-")
atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)
os.environ.pop("CARTOON_MODEL_REPO", None)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402

from cartoon.checkpoint import save_generator  # noqa: E402
from cartoon.image import scale_to_fit  # noqa: E402
from cartoon.models import UNetGenerator  # noqa: E402

collect_ignore_glob = ["fixtures/*"]  # data, and the script that wrote it with TensorFlow (not installed here)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo (scikit-image's astronaut), 96x96 uint8 RGB."""
    return scale_to_fit(data.astronaut(), long_side=96)


@pytest.fixture(scope="session")
def wide_photo() -> np.ndarray:
    """A real non-square photo (scikit-image's coffee), 75x100 uint8 RGB: sizes not multiples of 8."""
    return scale_to_fit(data.coffee(), long_side=100)


def make_tiny_generator(seed: int = 0) -> UNetGenerator:
    """A small randomly initialised generator for tests (not a model: never shipped)."""
    torch.manual_seed(seed)
    return UNetGenerator(channels=4, num_blocks=1).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder (config.json + model.safetensors) of a tiny random generator."""
    directory = tmp_path_factory.mktemp("tiny-generator")
    save_generator(make_tiny_generator(), directory)
    return directory
