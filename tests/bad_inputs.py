"""A catalogue of the files a public app gets: each with what a correct answer is (an image or a clear error)."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    data: bytes
    expect: str  # "ok" or a regex the error message must match
    size: tuple[int, int] | None = None  # expected (height, width) of the cartoon when ok


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _photo(width: int = 60, height: int = 40) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1).astype(np.uint8)
    return Image.fromarray(rgb)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with almost no data: decoders must refuse it before decoding."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(60, 40), "JPEG", exif=exif, quality=90)


def _animated_gif() -> bytes:
    frames = [_photo(), _photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _rgb16() -> bytes:
    ok, buffer = cv2.imencode(".png", (np.random.default_rng(0).random((40, 60, 3)) * 65535).astype(np.uint16))
    return buffer.tobytes()


def _palette_transparent() -> bytes:
    img = _photo().convert("P")
    return _encode(img, "PNG", transparency=0)


def catalogue() -> list[Case]:
    jpeg, png = _encode(_photo(), "JPEG"), _encode(_photo(), "PNG")
    cases = [
        Case("empty file", "empty.jpg", b"", "empty"),
        Case("truncated JPEG", "cut.jpg", jpeg[: len(jpeg) // 2], "damaged or truncated|not an image"),
        Case("truncated PNG", "cut.png", png[: len(png) // 2], "damaged or truncated|not an image"),
        Case("random bytes named .jpg", "noise.jpg", np.random.default_rng(1).bytes(4096), "not an image"),
        Case("text file", "notes.txt", b"just some words\n" * 20, "not an image"),
        Case("HTML", "page.html", b"<!doctype html><html><body><script>alert(1)</script></body></html>", "not an image"),
        Case("SVG", "drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', "not an image"),
        Case("PDF", "doc.pdf", b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF", "not an image"),
        Case("HEIC-named non-image", "iphone.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "not an image"),
        Case("decompression bomb 20000x20000", "bomb.png", _bomb_png(20000, 20000), "megapixels|too large"),
        Case("1x1 pixel", "dot.png", _encode(_photo(1, 1), "PNG"), "ok", (1, 1)),
        Case("1xN strip", "row.png", _encode(_photo(300, 1), "PNG"), "ok", (1, 300)),
        Case("Nx1 strip", "column.png", _encode(_photo(1, 300), "PNG"), "ok", (300, 1)),
        Case("16-bit grayscale PNG", "gray16.png", _encode(Image.fromarray((np.arange(2400).reshape(40, 60) * 27).astype(np.uint16)), "PNG"), "ok", (40, 60)),
        Case("16-bit RGB PNG", "rgb16.png", _rgb16(), "ok", (40, 60)),
        Case("grayscale", "gray.png", _encode(_photo().convert("L"), "PNG"), "ok", (40, 60)),
        Case("LA", "la.png", _encode(_photo().convert("LA"), "PNG"), "ok", (40, 60)),
        Case("palette with transparency", "palette.png", _palette_transparent(), "ok", (40, 60)),
        Case("RGBA", "rgba.png", _encode(_photo().convert("RGBA"), "PNG"), "ok", (40, 60)),
        Case("CMYK JPEG", "cmyk.jpg", _encode(_photo().convert("CMYK"), "JPEG"), "ok", (40, 60)),
        Case("animated GIF", "anim.gif", _animated_gif(), "ok", (40, 60)),
        Case("WebP", "webp.webp", _encode(_photo(), "WEBP"), "ok", (40, 60)),
        Case("BMP", "bmp.bmp", _encode(_photo(), "BMP"), "ok", (40, 60)),
        Case("TIFF", "tiff.tiff", _encode(_photo(), "TIFF"), "ok", (40, 60)),
        Case("JPEG named .png", "mislabelled.png", jpeg, "ok", (40, 60)),
    ]
    for orientation in range(1, 9):  # 5-8 swap width and height
        size = (40, 60) if orientation <= 4 else (60, 40)
        cases.append(Case(f"EXIF orientation {orientation}", f"exif{orientation}.jpg", _exif(orientation), "ok", size))
    return cases
