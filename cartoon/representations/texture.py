"""Texture representation: random colour shift to one channel (Wang & Yu 2020, §3.4).

``gray = (w_r R + w_g G + w_b B) / (w_r + w_g + w_b)`` with weights drawn uniformly from ranges centred on the
usual luma weights. Removing colour and jittering the channel mix makes the texture discriminator judge
high-frequency detail and lines, not colour or brightness. The authors state the ranges in BGR order
(their images come from OpenCV); they are stored here in RGB order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from cartoon.image import check_image, check_tensor_image, from_float, to_float


class ShiftWeights(NamedTuple):
    """Channel weights of the colour shift, in RGB order."""

    red: float
    green: float
    blue: float


WEIGHT_RANGES = ShiftWeights(red=(0.199, 0.399), green=(0.487, 0.687), blue=(0.014, 0.214))
"""Uniform ranges per channel, RGB order (authors, BGR: b [0.014, 0.214], g [0.487, 0.687], r [0.199, 0.399])."""

MEAN_WEIGHTS = ShiftWeights(*(float(np.mean(bounds)) for bounds in WEIGHT_RANGES))
"""Centres of the ranges: (0.299, 0.587, 0.114), the ITU-R BT.601 luma weights."""


def sample_weights(generator: torch.Generator | None = None) -> ShiftWeights:
    """Draw one set of channel weights uniformly from :data:`WEIGHT_RANGES`.

    Args:
        generator: source of randomness (``None``: torch's default generator). Seed it for reproducibility.
    """
    u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    return ShiftWeights(*(low + (high - low) * t for (low, high), t in zip(WEIGHT_RANGES, u)))


def weights_from_seed(seed: int) -> ShiftWeights:
    """Reproducible weights for a seed (what the app's reseed button uses)."""
    return sample_weights(torch.Generator().manual_seed(int(seed)))


def check_shift_weights(weights: ShiftWeights | tuple[float, float, float]) -> ShiftWeights:
    """The weights as :class:`ShiftWeights` of floats; ``ValueError`` unless all are finite, >= 0, and one > 0."""
    weights = ShiftWeights(*(float(w) for w in weights))
    if not all(np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"colour-shift weights (red, green, blue) must be finite, >= 0 and not all zero, got {tuple(weights)}")
    return weights


def color_shift(
    *images: torch.Tensor,
    weights: ShiftWeights | tuple[float, float, float] | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, ...]:
    """Colour-shift each image to one channel, all with the same weights (the authors draw once per batch).

    Args:
        *images: ``(B, 3, H, W)`` RGB tensors in ``[-1, 1]`` (e.g. the generated and the cartoon batch).
        weights: RGB channel weights; ``None`` draws them with ``generator`` from :data:`WEIGHT_RANGES`. A ``(3,)``
            tensor on the images' device is normalised there, unchecked (drawn beforehand: the trainer's step reads
            no host value, so that it can be captured as a CUDA graph).
        generator: randomness for the draw; randomness is always an argument, the global RNG is never seeded.

    Returns:
        One ``(B, 1, H, W)`` tensor in ``[-1, 1]`` per input, differentiable.

    Example:
        >>> (gray,) = color_shift(torch.zeros(2, 3, 8, 8), weights=MEAN_WEIGHTS)
        >>> gray.shape, gray.dtype
        (torch.Size([2, 1, 8, 8]), torch.float32)
    """
    if isinstance(weights, torch.Tensor):
        normalised = weights / weights.sum()
    else:
        w = check_shift_weights(sample_weights(generator) if weights is None else weights)
        normalised = torch.tensor([w.red, w.green, w.blue], dtype=torch.float64) / sum(w)
    outputs = []
    for x in images:
        check_tensor_image(x)
        kernel = normalised.to(x.device, x.dtype, non_blocking=True)  # a blocking copy would wait for the device
        outputs.append((x * kernel.view(1, 3, 1, 1)).sum(dim=1, keepdim=True))
    return tuple(outputs)


def texture(img: np.ndarray, weights: ShiftWeights | tuple[float, float, float] = MEAN_WEIGHTS) -> np.ndarray:
    """The texture representation of a photo for display.

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        weights: RGB channel weights (see :func:`weights_from_seed` for a random draw).

    Returns:
        ``(H, W, 3)`` uint8 with three equal channels (the one-channel map, kept in the RGB contract).

    Example:
        >>> texture(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """
    check_image(img)
    w = check_shift_weights(weights)
    kernel = np.asarray(w, dtype=np.float32) / np.float32(sum(w))
    gray = from_float(to_float(img) @ kernel)
    return np.repeat(gray[:, :, None], 3, axis=2)
