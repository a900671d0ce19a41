"""Differentiable augmentation for the discriminators (Zhao et al., NeurIPS 2020, "Differentiable Augmentation
for Data-Efficient GAN Training"), for small training sets.

The same random transforms are applied to every input of a discriminator, real and generated, in the D step
and in G's adversarial terms: D never sees an unaugmented image, so it cannot memorise the few real ones, and
because every transform is differentiable G still gets gradients through it. Each sample draws its own
parameters from the same distributions, whichever batch it is in.

Transforms (``policy``, comma-separated), on ``(B, C, H, W)`` in ``[-1, 1]``, any C:

* ``color``: brightness ``+ U(-0.5, 0.5)``; saturation ``mean + (x - mean) * U(0, 2)`` (over channels; nothing for
  one channel); contrast ``mean + (x - mean) * U(0.5, 1.5)`` (over the image).
* ``translation``: shift by up to 1/8 of each side, zeros shifted in.
* ``cutout``: one square of half the side set to zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``""``, ``"none"`` or None -> ``()``."""
    if not policy or policy == "none":
        return ()
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {POLICIES} (comma-separated) or 'none'")
    return names


def _uniform(x: torch.Tensor, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per sample, shaped ``(B, 1, 1, 1)``, on x's device."""
    u = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=generator.device if generator else x.device)
    return (low + (high - low) * u).to(device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    x = x + _uniform(x, -0.5, 0.5, generator)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = mean + (x - mean) * _uniform(x, 0.0, 2.0, generator)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * _uniform(x, 0.5, 1.5, generator)


def translation(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each sample by up to ``ratio`` of its size (integer pixels), zeros shifted in; differentiable in x."""
    batch, _, height, width = x.shape
    shift_h, shift_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = generator.device if generator is not None else x.device
    dy = torch.randint(-shift_h, shift_h + 1, (batch, 1, 1), generator=generator, device=device).to(x.device)
    dx = torch.randint(-shift_w, shift_w + 1, (batch, 1, 1), generator=generator, device=device).to(x.device)
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    source_rows = (rows - dy).clamp(-1, height)  # -1 and height land in the zero padding
    source_cols = (cols - dx).clamp(-1, width)
    padded = F.pad(x, (1, 1, 1, 1))
    index = ((source_rows + 1) * (width + 2) + (source_cols + 1)).view(batch, 1, -1).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, index).view_as(x)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the side per sample (it may reach past the border)."""
    batch, _, height, width = x.shape
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = generator.device if generator is not None else x.device
    top = torch.randint(0, height + (1 - size_h % 2), (batch, 1, 1), generator=generator, device=device).to(x.device)
    left = torch.randint(0, width + (1 - size_w % 2), (batch, 1, 1), generator=generator, device=device).to(x.device)
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    first_row, first_col = top - size_h // 2, left - size_w // 2  # the square's corner; it is clipped at the borders
    inside = (rows >= first_row) & (rows < first_row + size_h) & (cols >= first_col) & (cols < first_col + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the transforms of ``policy`` in order (an empty policy returns ``x``); differentiable in ``x``.

    Example:
        >>> diff_augment(torch.zeros(2, 3, 8, 8), ("translation", "cutout")).shape
        torch.Size([2, 3, 8, 8])
    """
    for name in policy:
        x = _TRANSFORMS[name](x, generator)
    return x
