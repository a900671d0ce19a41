import numpy as np
import pytest
import torch
from PIL import Image

from cartoon.image import ImageError, to_tensor, to_uint8
from cartoon.inference import Cartoonizer, pad_to_multiple
from cartoon.representations.surface import guided_filter
from tests.conftest import make_tiny_generator


@pytest.fixture
def cartoonizer() -> Cartoonizer:
    return Cartoonizer(make_tiny_generator(), device="cpu", precision="fp32")


def test_output_has_the_input_size(cartoonizer, wide_photo):
    for img in (wide_photo, wide_photo[:1, :1], wide_photo[:1], wide_photo[:, :3], wide_photo[:13, :29]):
        out = cartoonizer(np.ascontiguousarray(img))
        assert out.shape == img.shape and out.dtype == np.uint8


def test_pipeline_is_the_documented_one(cartoonizer, wide_photo):
    """Pad to a multiple of 8, G, guided post-filter (r=1, eps=5e-3) with the photo as guide, clip, crop."""
    x = to_tensor(wide_photo)
    padded, _ = pad_to_multiple(x)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    with torch.no_grad():
        expected = guided_filter(padded, cartoonizer.generator(padded), 1, 5e-3).clamp(-1, 1)
    expected = to_uint8(expected[..., : wide_photo.shape[0], : wide_photo.shape[1]])[0]
    assert np.array_equal(cartoonizer(wide_photo), expected)


def test_padding_keeps_every_pixel(wide_photo):
    x = to_tensor(wide_photo)
    padded, size = pad_to_multiple(x)
    assert size == wide_photo.shape[:2]
    assert torch.equal(padded[..., : size[0], : size[1]], x)


def test_max_side_scales_the_network_input(wide_photo, monkeypatch):
    seen = []
    generator = make_tiny_generator()
    original = generator.forward
    monkeypatch.setattr(generator, "forward", lambda x: seen.append(tuple(x.shape[-2:])) or original(x))
    cartoonizer = Cartoonizer(generator, device="cpu", max_side=32)
    assert cartoonizer(wide_photo).shape == wide_photo.shape
    height, width = wide_photo.shape[:2]
    assert min(seen[-1]) == 32 and max(seen[-1]) == -(-round(32 * width / height) // 8) * 8
    Cartoonizer(generator, device="cpu", max_side=None)(wide_photo)
    assert seen[-1] == (-(-height // 8) * 8, -(-width // 8) * 8)


def test_deterministic_and_accepts_paths_and_pil(cartoonizer, wide_photo, tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(wide_photo).save(path)
    a = cartoonizer(wide_photo)
    assert np.array_equal(a, cartoonizer(path))
    assert np.array_equal(a, cartoonizer(Image.fromarray(wide_photo)))


def test_rgba_and_grayscale_inputs(cartoonizer, wide_photo):
    rgba = np.dstack([wide_photo, np.full(wide_photo.shape[:2], 255, np.uint8)])
    assert np.array_equal(cartoonizer(rgba), cartoonizer(wide_photo))
    assert cartoonizer(wide_photo[..., 0]).shape == wide_photo.shape


def test_bad_input_raises_image_error(cartoonizer):
    with pytest.raises(ImageError):
        cartoonizer(b"not an image")


def test_from_pretrained_local_folder(tiny_checkpoint, wide_photo):
    cartoonizer = Cartoonizer.from_pretrained(str(tiny_checkpoint), device="cpu")
    assert "local checkpoint" in cartoonizer.describe() and "CPU" in cartoonizer.describe()
    assert cartoonizer(wide_photo).shape == wide_photo.shape


def test_rejects_tiny_max_side():
    with pytest.raises(ValueError, match="max_side"):
        Cartoonizer(make_tiny_generator(), max_side=4)


class PointwiseGenerator(torch.nn.Module):
    """A generator without spatial context: tiling must then reproduce the untiled output exactly (up to rounding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(1.7 * x.flip(1)) * 0.9


@pytest.fixture
def small_tiles(monkeypatch):
    import cartoon.inference as inference

    monkeypatch.setattr(inference, "TILE", 48)
    monkeypatch.setattr(inference, "TILE_OVERLAP", 16)


def test_tiles_blend_without_seams(small_tiles, wide_photo):
    photo = np.ascontiguousarray(wide_photo[:64, :96])  # multiples of 8: the untiled run needs no padding either
    tiled = Cartoonizer(PointwiseGenerator(), device="cpu", max_side=None)
    untiled = to_uint8(tiled.cartoonize_tensor(to_tensor(photo)))[0]
    out = tiled.cartoonize_array(photo)  # 2 x 3 tiles of 48 px
    assert out.shape == photo.shape
    assert np.abs(out.astype(int) - untiled.astype(int)).max() <= 1


def test_tiled_real_generator_stays_close(small_tiles, wide_photo):
    cartoonizer = Cartoonizer(make_tiny_generator(), device="cpu", max_side=None)
    untiled = to_uint8(cartoonizer.cartoonize_tensor(to_tensor(wide_photo)))[0]
    diff = np.abs(cartoonizer.cartoonize_array(wide_photo).astype(int) - untiled.astype(int))
    assert diff.mean() < 1.0 and diff.max() <= 16


def test_reduced_precision_path(wide_photo):
    fp32 = Cartoonizer(make_tiny_generator(), device="cpu", precision="fp32")(wide_photo)
    bf16 = Cartoonizer(make_tiny_generator(), device="cpu", precision="bf16")(wide_photo)
    assert bf16.shape == fp32.shape and np.abs(bf16.astype(int) - fp32.astype(int)).mean() < 2
    with pytest.raises(ValueError, match="precision"):
        Cartoonizer(make_tiny_generator(), precision="int4")
