"""The cartoonization pipeline: any image in, an RGB uint8 cartoon of the same size out.

Steps (the authors' ``test_code/cartoonize.py``, with two fixes for users): decode and orient the input;
downscale so the short side is at most ``max_side``; pad (reflect) to a multiple of 8 instead of cropping
pixels off; ``G(x)``; guided post-filter ``guided_filter(x, G(x), r=1, eps=5e-3)``; clip; crop the padding off;
scale back to the input size.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

from cartoon.checkpoint import ModelSource, resolve_generator
from cartoon.image import MAX_PIXELS, ImageInput, load_image, resize_to, scale_to_fit, to_tensor, to_uint8
from cartoon.models.generator import UNetGenerator
from cartoon.representations.surface import guided_filter

log = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 720
PAD_MULTIPLE = 8
POST_FILTER_RADIUS = 1
POST_FILTER_EPS = 5e-3


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``(B, C, H, W)`` at the bottom/right to multiples of ``multiple``; returns the original (H, W)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        # Reflection needs the pad to be smaller than the side; replicate covers tiny images.
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (height, width)


class Cartoonizer:
    """A generator plus the pre- and post-processing around it.

    Args:
        generator: a :class:`UNetGenerator` (moved to ``device`` and set to eval mode).
        device: where to run (default: CUDA when available, else CPU).
        max_side: the short side is scaled down to at most this many pixels before the network
            (``None``: full size). The output is scaled back to the input's size.
        source: where the generator came from (for status lines).

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
    ) -> None:
        if max_side is not None and max_side < PAD_MULTIPLE:
            raise ValueError(f"max_side must be >= {PAD_MULTIPLE} or None, got {max_side}")
        self.device = torch.device(device) if device is not None else default_device()
        self.generator = generator.to(self.device).eval()
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
        """Load the app's model (a local folder, or Hub repo -> Hub cache -> ``assets/model``)."""
        device = torch.device(device) if device is not None else default_device()
        if repo_id is not None and os.path.isdir(repo_id):
            from cartoon.checkpoint import load_generator

            return cls(load_generator(repo_id, map_location=device), device, max_side, ModelSource("local", repo_id))
        generator, source = resolve_generator(repo_id, revision, map_location=device)
        return cls(generator, device, max_side, source)

    def describe(self) -> str:
        """One line for users: which model, on which device."""
        where = "CUDA" if self.device.type == "cuda" else "CPU"
        return f"{self.source.describe()} on {where}"

    @torch.inference_mode()
    def cartoonize_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in ``[-1, 1]`` (any H, W) -> cartoon ``(B, 3, H, W)`` in ``[-1, 1]``."""
        x = x.to(self.device)
        padded, (height, width) = pad_to_multiple(x)
        out = self.generator(padded)
        out = guided_filter(padded, out, POST_FILTER_RADIUS, POST_FILTER_EPS)
        return out[..., :height, :width].clamp(-1.0, 1.0)

    def __call__(self, image: ImageInput, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
        """Cartoonize one image.

        Args:
            image: a path, bytes, PIL image or array (see :func:`cartoon.image.load_image`).
            max_pixels: refuse larger inputs (``None``: no cap).

        Returns:
            ``(H, W, 3)`` uint8 RGB of the input's (upright) size.

        Raises:
            cartoon.image.ImageError: for unreadable or oversized input.
        """
        img = load_image(image, max_pixels=max_pixels)
        small = scale_to_fit(img, short_side=self.max_side)
        out = to_uint8(self.cartoonize_tensor(to_tensor(small)))
        return resize_to(out, *img.shape[:2])
