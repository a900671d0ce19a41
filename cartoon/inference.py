"""The cartoonization pipeline: any image in, an RGB uint8 cartoon of the same size out.

Steps (the authors' ``test_code/cartoonize.py``, with two fixes for users): decode and orient the input;
downscale so the short side is at most ``max_side``; pad (reflect) to a multiple of 8 instead of cropping
pixels off; ``G(x)``; guided post-filter ``guided_filter(x, G(x), r=1, eps=5e-3)``; clip; crop the padding off;
scale back to the input size.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from cartoon.checkpoint import ModelSource, resolve_generator
from cartoon.device import cpu_supports_bf16, default_device
from cartoon.image import MAX_PIXELS, ImageInput, load_image, resize_to, scale_to_fit, to_tensor, to_uint8
from cartoon.models.generator import UNetGenerator
from cartoon.representations.surface import guided_filter

log = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 720
PAD_MULTIPLE = 8
TILE = 1024
"""Network inputs with more pixels than TILE x TILE (a 720x1280 frame has fewer) run tile by tile: bounded memory."""
TILE_OVERLAP = 64
"""Pixels shared by neighbouring tiles, cross-faded linearly (the generator's context reaches ~50 px)."""
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
POST_FILTER_RADIUS = 1
POST_FILTER_EPS = 5e-3


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``(B, C, H, W)`` at the bottom/right to multiples of ``multiple``; returns the original (H, W)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        # Reflection needs the pad to be smaller than the side; replicate covers tiny images.
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (height, width)


WEIGHT_RANGE = (1 / 16, 16.0)
"""Representation weights a conditioned model accepts, as multiples of the recipe's (it was trained on [1/4, 4])."""


def check_weights(weights: tuple[float, ...] | list[float]) -> tuple[float, float, float]:
    """Representation weights ``(surface, structure, texture)`` as three floats in :data:`WEIGHT_RANGE`.

    Raises:
        ValueError: not three numbers, or one outside [1/16, 16].
    """
    values = tuple(float(w) for w in weights)
    low, high = WEIGHT_RANGE
    if len(values) != 3 or not all(np.isfinite(v) and low <= v <= high for v in values):
        raise ValueError(f"representation weights must be three numbers in [1/{1 / low:g}, {high:g}], got {weights!r}")
    return values


def parse_weights(text: str) -> tuple[float, float, float]:
    """``"S,ST,T"`` -> the representation weights ``(surface, structure, texture)`` as multiples of the recipe's
    (the CLI's and the evaluation's ``--weights``), checked by :func:`check_weights`.

    Raises:
        ValueError: not three comma-separated numbers, or one out of range.
    """
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ValueError(f"expected three comma-separated numbers S,ST,T, got {text!r}")
    return check_weights(values)


class Cartoonizer:
    """A generator plus the pre- and post-processing around it.

    Args:
        generator: a :class:`UNetGenerator` (moved to ``device`` and set to eval mode).
        device: where to run (default: CUDA when available, else CPU).
        max_side: the short side is scaled down to at most this many pixels before the network
            (``None``: full size). The output is scaled back to the input's size.
        source: where the generator came from (for status lines).
        precision: ``"auto"`` (default): fp16 autocast on CUDA, bf16 autocast on CPUs with native bf16
            (avx512_bf16/AMX; about 2x faster, cartoons within 1/255 of fp32: benchmarks/generator.py), else fp32;
            or ``"fp32"``, ``"bf16"``, ``"fp16"`` explicitly.

    Example:
        >>> cartoonizer = Cartoonizer(UNetGenerator(channels=4, num_blocks=1))
        >>> cartoonizer(np.zeros((10, 13, 3), np.uint8)).shape
        (10, 13, 3)
    """

    def __init__(
        self,
        generator: UNetGenerator,
        device: torch.device | str | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        source: ModelSource | None = None,
        precision: str = "auto",
    ) -> None:
        if max_side is not None and max_side < PAD_MULTIPLE:
            raise ValueError(f"max_side must be >= {PAD_MULTIPLE} or None, got {max_side}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device) if device is not None else default_device()
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "bf16" if cpu_supports_bf16() else "fp32"
        self.precision = precision
        # channels_last: ~25% faster convolutions on the CPU (benchmarks/generator.py), same results.
        self.generator = generator.to(self.device).eval().to(memory_format=torch.channels_last)
        self.max_side = max_side
        self.source = source or ModelSource("local", "in-memory generator")

    @classmethod
    def from_pretrained(
        cls,
        repo_id: str | None = None,
        revision: str | None = None,
        device: torch.device | str | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
    ) -> "Cartoonizer":
        """Load the app's model: a local checkpoint folder, or Hub repo -> Hub cache -> ``assets/model``."""
        device = torch.device(device) if device is not None else default_device()
        generator, source = resolve_generator(repo_id, revision, map_location=device)
        return cls(generator, device, max_side, source)

    def describe(self) -> str:
        """One line for users: which model, on which device, in which precision."""
        where = "CUDA" if self.device.type == "cuda" else "CPU"
        return f"{self.source.describe()} on {where} ({self.precision})"

    @property
    def conditioned(self) -> bool:
        """Whether the generator takes loss weights (a loss-conditional model; see :meth:`condition`)."""
        return bool(getattr(self.generator, "conditioned", False))

    def condition(self, weights: tuple[float, float, float] | None, batch: int = 1) -> torch.Tensor | None:
        """The generator's condition for representation weights ``(surface, structure, texture)`` as multiples of
        the recipe's (1, 1, 1: the recipe); ``None`` for the recipe's weights or an unconditioned model.

        Raises:
            ValueError: weights on an unconditioned model (other than all 1), or outside [1/16, 16].
        """
        if weights is None:
            return None
        values = check_weights(weights)
        if not self.conditioned:
            if any(abs(v - 1) > 1e-9 for v in values):
                raise ValueError("this model was trained with fixed weights: only 1, 1, 1 is possible")
            return None
        return torch.log(torch.tensor(values, device=self.device)).expand(batch, -1)

    @torch.inference_mode()
    def cartoonize_tensor(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 3, H, W)`` in ``[-1, 1]`` (any H, W) -> cartoon ``(B, 3, H, W)`` in ``[-1, 1]``; ``condition``
        for a conditioned model (:meth:`condition`)."""
        x = x.to(self.device)
        padded, (height, width) = pad_to_multiple(x)
        reduced = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if condition is not None and condition.shape[0] != x.shape[0]:
            condition = condition[:1].expand(x.shape[0], -1)
        with torch.autocast(self.device.type, dtype=reduced or torch.float32, enabled=reduced is not None):
            inputs = padded.contiguous(memory_format=torch.channels_last)
            out = self.generator(inputs) if condition is None else self.generator(inputs, condition)
        out = guided_filter(padded, out.float(), POST_FILTER_RADIUS, POST_FILTER_EPS)
        return out[..., :height, :width].clamp(-1.0, 1.0)

    def cartoonize_array(self, img: np.ndarray, condition: torch.Tensor | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 at the network's resolution -> cartoon of the same size; tiled when large."""
        if img.shape[0] * img.shape[1] <= TILE * TILE:
            return to_uint8(self.cartoonize_tensor(to_tensor(img), condition))[0]
        return self._cartoonize_tiled(img, condition)

    def cartoonize_frames(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 frames of one size, at the network's resolution -> their cartoons, in one batch.
        The frames travel to the device as uint8; padding, the generator and the post-filter run there."""
        return to_uint8(self.cartoonize_tensor(to_tensor(frames, device=self.device)))

    def _cartoonize_tiled(self, img: np.ndarray, condition: torch.Tensor | None = None) -> np.ndarray:
        """Overlapping TILE x TILE windows, cross-faded over TILE_OVERLAP pixels: memory stays bounded and the
        seams are invisible (each tile gives the overlap ~50 px of context on both sides of its fade)."""
        height, width = img.shape[:2]
        total = np.zeros((height, width, 3), np.float32)
        weight = np.zeros((height, width, 1), np.float32)
        for top in _tile_starts(height):
            for left in _tile_starts(width):
                bottom, right = min(top + TILE, height), min(left + TILE, width)
                tile = to_uint8(self.cartoonize_tensor(to_tensor(img[top:bottom, left:right]), condition))[0]
                ramp = _fade(top, bottom, height)[:, None, None] * _fade(left, right, width)[None, :, None]
                total[top:bottom, left:right] += tile * ramp
                weight[top:bottom, left:right] += ramp
        return np.clip(np.rint(total / weight), 0, 255).astype(np.uint8)

    def __call__(self, image: ImageInput, max_pixels: int | None = MAX_PIXELS,
                 weights: tuple[float, float, float] | None = None) -> np.ndarray:
        """Cartoonize one image.

        Args:
            image: a path, bytes, PIL image or array (see :func:`cartoon.image.load_image`).
            max_pixels: refuse larger inputs (``None``: no cap).
            weights: ``(surface, structure, texture)`` as multiples of the recipe's, for a conditioned model.

        Returns:
            ``(H, W, 3)`` uint8 RGB of the input's (upright) size.

        Raises:
            cartoon.image.ImageError: for unreadable or oversized input.
        """
        condition = self.condition(weights)
        img = load_image(image, max_pixels=max_pixels)
        small = scale_to_fit(img, short_side=self.max_side)
        return resize_to(self.cartoonize_array(small, condition), *img.shape[:2])


def _tile_starts(size: int) -> list[int]:
    """Window starts along one axis: TILE-long windows, neighbours overlapping by at least TILE_OVERLAP."""
    if size <= TILE:
        return [0]
    count = -(-(size - TILE_OVERLAP) // (TILE - TILE_OVERLAP))
    stride = (size - TILE) / (count - 1)
    return [round(i * stride) for i in range(count)]


def _fade(start: int, end: int, size: int) -> np.ndarray:
    """Per-pixel blend weight of a window along one axis: linear ramps over TILE_OVERLAP, except at image borders."""
    position = np.arange(start, end, dtype=np.float32)
    ramp = np.ones(end - start, np.float32)
    if start > 0:
        ramp = np.minimum(ramp, (position - start + 0.5) / TILE_OVERLAP)
    if end < size:
        ramp = np.minimum(ramp, (end - position - 0.5) / TILE_OVERLAP)
    return np.clip(ramp, 1e-3, 1.0)
