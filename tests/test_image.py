import io

import numpy as np
import pytest
import torch
from PIL import Image

from cartoon.image import ImageError, load_image, resize_to, scale_to_fit, to_tensor, to_uint8


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


# Transpose that undoes each EXIF orientation, and its inverse (to make the stored image).
UNDO = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90}
INVERSE = {**UNDO, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations_come_out_upright(photo, orientation):
    upright = Image.fromarray(photo[:, :80])  # not square, so rotations show in the shape
    stored = upright if orientation == 1 else upright.transpose(INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = load_image(encode(stored, "PNG", exif=exif))
    assert np.array_equal(out, photo[:, :80])


def test_modes_convert_to_rgb(photo):
    rgb = Image.fromarray(photo)
    gray = load_image(encode(rgb.convert("L"), "PNG"))
    assert gray.shape == photo.shape and np.array_equal(gray[..., 0], gray[..., 2])
    assert load_image(encode(rgb.convert("P"), "PNG")).shape == photo.shape
    cmyk = load_image(encode(rgb.convert("CMYK"), "JPEG", quality=95))
    assert np.abs(cmyk.astype(int) - photo).mean() < 12


def test_alpha_goes_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top opaque red, bottom transparent
    out = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.array_equal(out[0, 0], [255, 0, 0]) and np.array_equal(out[3, 0], [255, 255, 255])
    la = load_image(encode(Image.fromarray(rgba[..., [1, 3]], "LA"), "PNG"))
    assert np.array_equal(la[0, 0], [0, 0, 0]) and np.array_equal(la[3, 0], [255, 255, 255])


def test_palette_with_transparency():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    out = load_image(encode(img, "PNG", transparency=0))
    assert np.array_equal(out[0, 0], [200, 100, 0]) and np.array_equal(out[1, 1], [255, 255, 255])


def test_sixteen_bit_png_keeps_its_range():
    ramp = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    out = load_image(encode(Image.fromarray(ramp), "PNG"))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert np.abs(out[..., 0].astype(float) - ramp / 257.0).max() <= 1


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.array_equal(load_image(data)[0, 0], [255, 0, 0])


@pytest.mark.parametrize(
    "data,match",
    [(b"", "empty"), (b"hello, this is text", "not an image"), (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
     (b"%PDF-1.4\n%\xe2\xe3", "not an image"), (bytes(range(256)) * 4, "not an image")],
)
def test_non_images_get_a_clear_message(data, match):
    with pytest.raises(ImageError, match=match):
        load_image(data)


def test_truncated_files_get_a_clear_message(photo):
    for fmt in ("JPEG", "PNG"):
        data = encode(Image.fromarray(photo), fmt)
        with pytest.raises(ImageError, match="damaged or truncated"):
            load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    data = encode(Image.new("L", (20000, 20000)), "PNG")  # tiny file, 400 megapixels
    with pytest.raises(ImageError, match="megapixels|too large"):
        load_image(data)


def test_pixel_cap_is_configurable(photo):
    with pytest.raises(ImageError, match="limit is 0 megapixels"):
        load_image(photo, max_pixels=100)
    assert load_image(photo, max_pixels=None).shape == photo.shape


def test_arrays_of_all_kinds(photo):
    assert np.array_equal(load_image(photo), photo)
    assert np.array_equal(load_image(photo.astype(np.float32) / 255), photo)
    assert np.array_equal(load_image(photo.astype(np.uint16) * 257), photo)
    assert load_image(photo[..., 0]).shape == photo.shape
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="no pixels"):
        load_image(np.zeros((0, 4, 3), np.uint8))


def test_paths(tmp_path, photo):
    path = tmp_path / "a.png"
    Image.fromarray(photo).save(path)
    assert np.array_equal(load_image(path), photo)
    with pytest.raises(ImageError, match="No such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")


def test_tensor_round_trip_is_exact(photo):
    x = to_tensor(photo)
    assert x.shape == (1, 3, *photo.shape[:2]) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x)[0], photo)
    assert np.array_equal(to_uint8(torch.full((3, 2, 2), 7.0)), np.full((2, 2, 3), 255, np.uint8))


def test_tensor_conversions_are_batch_aware_and_follow_like(photo):
    batch = np.stack([photo, photo[::-1]])
    like = torch.zeros(2, 3, 4, 5, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x = to_tensor(batch, like=like)
    assert x.shape == (2, 3, *photo.shape[:2]) and x.dtype == torch.bfloat16
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert to_tensor(batch).is_contiguous() and to_tensor(batch).dtype == torch.float32
    assert np.array_equal(to_uint8(to_tensor(batch)), batch)  # a batch comes back as a batch, exactly
    gray = to_uint8(torch.zeros(2, 1, 3, 4))
    assert gray.shape == (2, 3, 4, 3) and (gray == 128).all()  # one channel is shown as gray RGB
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(batch.astype(np.float32))
    with pytest.raises(ValueError, match="C in"):
        to_uint8(torch.zeros(1, 2, 3, 4))


def test_scale_to_fit(photo):
    assert scale_to_fit(photo, short_side=200) is photo
    small = scale_to_fit(np.zeros((100, 300, 3), np.uint8), short_side=50)
    assert small.shape == (50, 150, 3)
    assert scale_to_fit(np.zeros((100, 300, 3), np.uint8), long_side=30).shape == (10, 30, 3)
    assert resize_to(small, 100, 300).shape == (100, 300, 3)
