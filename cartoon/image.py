"""The image contract's edges: decode anything to ``(H, W, 3)`` uint8 RGB, and convert to and from tensors.

Everything a user can hand us goes through :func:`load_image`: paths, bytes, PIL images and NumPy arrays of
any common mode (grayscale, palette, alpha, CMYK, 16-bit, float). EXIF orientation is applied and alpha is
composited over white. Failures raise :class:`ImageError`, whose message is written for a person.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
"""File suffixes taken as images when a folder is searched (a file named directly is tried whatever its suffix)."""

MAX_PIXELS = 40_000_000
"""Default cap on decoded pixels (a 24 MP photo passes; decompression bombs do not)."""

_WHITE = 255.0


class ImageError(ValueError):
    """An input that is not a usable image; ``str(error)`` is meant to be shown to the user."""


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, by :data:`IMAGE_SUFFIXES`, any case), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def check_image(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Check the edge contract: ``(H, W, 3)`` uint8 RGB with H, W >= 1. Returns ``img`` unchanged."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array (H, W, 3) uint8 RGB, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
        raise ValueError(f"{name}: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    return img


def check_tensor_image(x: torch.Tensor, channels: tuple[int, ...] | None = (3,), name: str = "x") -> torch.Tensor:
    """Check the inner contract: a float tensor ``(B, C, H, W)`` with C in ``channels`` (None: any). Returns ``x``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or (channels is not None and x.shape[1] not in channels):
        wanted = "" if channels is None else f" with C in {channels}"
        raise ValueError(f"{name}: expected shape (B, C, H, W){wanted}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor in [-1, 1], got {x.dtype}")
    return x


def load_image(source: ImageInput, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` into the edge contract.

    Args:
        source: a file path, encoded bytes, a PIL image, or an array ``(H, W)``, ``(H, W, 1|3|4)`` of uint8,
            uint16 (full 16-bit range), bool, or float in ``[0, 1]``.
        max_pixels: refuse images with more pixels than this (``None``: no cap).

    Returns:
        ``(H, W, 3)`` uint8 RGB, upright (EXIF orientation applied), alpha composited over white.

    Raises:
        ImageError: with a message for a person (not an image, corrupt, too large, empty ...).
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, max_pixels)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("The file is empty (0 bytes).")
        return _decode(io.BytesIO(bytes(source)), "the uploaded data", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No such file: {path.name}")
        if path.stat().st_size == 0:
            raise ImageError(f"{path.name} is empty (0 bytes).")
        with open(path, "rb") as handle:
            return _decode(handle, path.name, max_pixels)
    raise ImageError(f"Cannot read an image from a {type(source).__name__}.")


def _decode(stream: io.IOBase, label: str, max_pixels: int | None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                _check_pixels(img.size, max_pixels)
                img.seek(0)  # first frame of animations
                return _pil_to_rgb(img, max_pixels)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label} is too large to decode safely.") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image this app can read (try JPEG, PNG or WebP).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{label} looks damaged or truncated and cannot be decoded ({error}).") from None


def _check_pixels(size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"The image has no pixels ({width}x{height}).")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"The image is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"the limit is {max_pixels / 1e6:.0f} megapixels."
        )


def _pil_to_rgb(img: Image.Image, max_pixels: int | None) -> np.ndarray:
    _check_pixels(img.size, max_pixels)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _array_to_rgb(np.asarray(img), max_pixels, sixteen_bit=img.mode.startswith("I;16"))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        return _array_to_rgb(np.asarray(img), max_pixels)
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy


def _array_to_rgb(arr: np.ndarray, max_pixels: int | None, sixteen_bit: bool = False) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        pass
    elif arr.ndim == 2:
        arr = arr[:, :, None]
    else:
        raise ImageError(f"Expected an image array (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}.")
    _check_pixels((arr.shape[1], arr.shape[0]), max_pixels)
    scaled = _to_unit_range(arr, sixteen_bit)
    if scaled.shape[2] == 4:
        alpha = scaled[:, :, 3:4]
        scaled = scaled[:, :, :3] * alpha + (1.0 - alpha)
    elif scaled.shape[2] == 1:
        scaled = np.repeat(scaled, 3, axis=2)
    return np.ascontiguousarray(np.clip(np.rint(scaled * _WHITE), 0, 255).astype(np.uint8))


def _to_unit_range(arr: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """Any supported dtype to float32 in [0, 1]."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint16 or sixteen_bit:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.integer):  # PIL mode "I": 32-bit ints, usually 16-bit data
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr.astype(np.float32) / top, 0.0, 1.0)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("The image contains NaN or infinite values.")
        return np.clip(arr.astype(np.float32), 0.0, 1.0)
    raise ImageError(f"Unsupported pixel type {arr.dtype}.")


def to_tensor(
    images: np.ndarray | torch.Tensor, device: torch.device | str | None = None, like: torch.Tensor | None = None
) -> torch.Tensor:
    """uint8 RGB -> float tensor in ``[-1, 1]`` (``x / 127.5 - 1``): the one way into the inner contract.

    Args:
        images: ``(H, W, 3)`` (one image) or ``(B, H, W, 3)`` (a batch), uint8 RGB: a NumPy array, or a uint8
            torch tensor (already on a device: the conversion happens there).
        device: where the tensor goes (default: where ``images`` are, or ``like``'s device).
        like: take dtype, device and memory format (channels_last or not) from this tensor.

    Returns:
        ``(1, 3, H, W)`` for one image, ``(B, 3, H, W)`` for a batch; float32 unless ``like`` says otherwise.

    Example:
        >>> to_tensor(np.zeros((4, 5, 3), np.uint8)).shape
        torch.Size([1, 3, 4, 5])
    """
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3 or images.numel() == 0:
            raise ValueError(f"images: expected (H, W, 3) or (B, H, W, 3) uint8 RGB, got {tuple(images.shape)} {images.dtype}")
        x = images if images.ndim == 4 else images[None]
    else:
        if isinstance(images, np.ndarray) and images.ndim == 4:
            if images.dtype != np.uint8 or images.shape[3] != 3 or min(images.shape[:3]) < 1:
                raise ValueError(f"images: expected (B, H, W, 3) uint8 RGB, got {images.shape} {images.dtype}")
        else:
            images = check_image(images)[None]
        array = np.ascontiguousarray(images)
        if not array.flags.writeable:  # torch.from_numpy wants writable memory
            array = array.copy()
        x = torch.from_numpy(array)
    target = device if device is not None else (like.device if like is not None else None)
    x = x.to(device=target).permute(0, 3, 1, 2)
    x = x.to(like.dtype if like is not None and like.is_floating_point() else torch.float32).div_(127.5).sub_(1.0)
    if like is not None and _is_channels_last(like):
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Float in ``[-1, 1]`` -> uint8 levels (clipped, rounded half to even), same shape, on x's device: the
    quantisation of :func:`to_uint8`, for code that keeps the levels on the device."""
    # clamp makes a new tensor, so the in-place steps after it leave x alone (and allocate nothing more).
    return x.detach().float().clamp(-1.0, 1.0).add_(1.0).mul_(127.5).round_().to(torch.uint8)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float tensor in ``[-1, 1]`` -> uint8 RGB (clipped, rounded): the one way out of the inner contract.

    Args:
        x: ``(C, H, W)`` or ``(B, C, H, W)`` with C = 3 (RGB) or 1 (gray, repeated to three channels).

    Returns:
        ``(H, W, 3)`` for a 3-D input, ``(B, H, W, 3)`` for a batch (a batch of one stays a batch).

    Example:
        >>> to_uint8(torch.zeros(2, 3, 4, 5)).shape
        (2, 4, 5, 3)
    """
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ValueError(f"expected (C, H, W) or (B, C, H, W) with C in (1, 3), got {tuple(x.shape)}")
    x = quantize(x)
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    # Channels last on x's device, then one contiguous copy to the host (a GPU transposes almost for free; on this CPU
    # torch's transpose of a 720p frame takes 2.9 ms where NumPy's took 4.7).
    return x.movedim(-3, -1).contiguous().cpu().numpy()


def to_float(img: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8 -> float32 in ``[-1, 1]`` (NumPy twin of :func:`to_tensor`)."""
    return img.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def from_float(x: np.ndarray) -> np.ndarray:
    """float in ``[-1, 1]`` -> uint8 (clipped, rounded; NumPy twin of :func:`to_uint8`)."""
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def scale_to_fit(img: np.ndarray, short_side: int | None = None, long_side: int | None = None) -> np.ndarray:
    """Downscale (never upscale) so the short side <= ``short_side`` and the long side <= ``long_side``.

    Uses area interpolation; returns ``img`` itself when it already fits.
    """
    height, width = img.shape[:2]
    factor = 1.0
    if short_side is not None:
        factor = min(factor, short_side / min(height, width))
    if long_side is not None:
        factor = min(factor, long_side / max(height, width))
    if factor >= 1.0:
        return img
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def resize_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to exactly ``(height, width)`` (area when shrinking, cubic when enlarging)."""
    if img.shape[:2] == (height, width):
        return img
    shrinking = height * width < img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
