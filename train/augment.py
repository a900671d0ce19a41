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
TRANSLATION_RATIO = 0.125
"""The largest shift, as a fraction of each side."""
CUTOUT_RATIO = 0.5
"""The cutout square's side, as a fraction of each side."""


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``""``, ``"none"`` or None -> ``()``."""
    if not policy or policy == "none":
        return ()
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {POLICIES} (comma-separated) or 'none'")
    return names


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Brightness, saturation and contrast with per-sample draws (the module's doc gives their ranges).

    Two passes over x, each one ``addcmul``: saturation ``s x + (1 - s) mean_c(x)``, then contrast and brightness
    together, ``c y + (b + (1 - c) mean(y))``: the brightness shift moves the image's mean with it, so it can come
    last. The same values as the three steps in turn (to float rounding), in a third of the passes.
    """
    draws = torch.rand(x.shape[0], 3, 1, 1, 1, generator=generator, device=_draw_device(x, generator))
    draws = draws.to(device=x.device, dtype=x.dtype)
    brightness, saturation, contrast = draws[:, 0] - 0.5, draws[:, 1] * 2.0, draws[:, 2] + 0.5
    if x.shape[1] > 1:
        x = torch.addcmul(x.mean(dim=1, keepdim=True) * (1 - saturation), x, saturation)
    offset = torch.addcmul(brightness, x.mean(dim=(1, 2, 3), keepdim=True), 1 - contrast)
    return torch.addcmul(offset, x, contrast)


def translation(x: torch.Tensor, generator: torch.Generator | None = None,
                ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each sample by up to ``ratio`` of its size (integer pixels), zeros shifted in; differentiable in x."""
    rows, cols = _pixel_grid(x)
    return _gather_from_zero_border(x, *_shift_sources(x, rows, cols, generator, ratio))


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square of ``ratio`` of the side per sample (it may reach past the border)."""
    rows, cols = _pixel_grid(x)
    return x * (~_square(x, rows, cols, generator, ratio)).unsqueeze(1).to(x.dtype)


def translation_then_cutout(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``cutout(translation(x))`` from the same draws in one gather: the square's pixels read the zero border.

    Saves the cutout's own passes over the batch, forward and backward (the default policy ends with this pair).
    """
    rows, cols = _pixel_grid(x)
    source_rows, source_cols = _shift_sources(x, rows, cols, generator, TRANSLATION_RATIO)
    return _gather_from_zero_border(x, source_rows, source_cols, cut=_square(x, rows, cols, generator, CUTOUT_RATIO))


def _pixel_grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(1, H, 1)`` and column indices ``(1, 1, W)`` of x's pixels."""
    height, width = x.shape[-2:]
    return (torch.arange(height, device=x.device).view(1, height, 1),
            torch.arange(width, device=x.device).view(1, 1, width))


def _shift_sources(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, generator: torch.Generator | None,
                   ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A shift of up to ``ratio`` of each side per sample, as each output pixel's source row ``(B, H, 1)`` and
    column ``(B, 1, W)``; -1 and H (W) stand for the zero border."""
    height, width = x.shape[-2:]
    shift_h, shift_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = _per_sample_integers(-shift_h, shift_h + 1, x, generator)
    dx = _per_sample_integers(-shift_w, shift_w + 1, x, generator)
    return (rows - dy).clamp(-1, height), (cols - dx).clamp(-1, width)


def _square(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, generator: torch.Generator | None,
            ratio: float) -> torch.Tensor:
    """``(B, H, W)`` bool: one square of ``ratio`` of the side per sample, centred anywhere in the image."""
    height, width = x.shape[-2:]
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = _per_sample_integers(0, height + (1 - size_h % 2), x, generator)
    left = _per_sample_integers(0, width + (1 - size_w % 2), x, generator)
    first_row, first_col = top - size_h // 2, left - size_w // 2  # the square's corner; it is clipped at the borders
    return ((rows >= first_row) & (rows < first_row + size_h)) & ((cols >= first_col) & (cols < first_col + size_w))


def _draw_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    """Where the draws happen: on the generator's device (x's without one)."""
    return generator.device if generator is not None else x.device


def _per_sample_integers(low: int, high: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One integer in ``[low, high)`` per sample of x, ``(B, 1, 1)`` on x's device."""
    draws = torch.randint(low, high, (x.shape[0], 1, 1), generator=generator, device=_draw_device(x, generator))
    return draws.to(x.device)


def _gather_from_zero_border(x: torch.Tensor, source_rows: torch.Tensor, source_cols: torch.Tensor,
                             cut: torch.Tensor | None = None) -> torch.Tensor:
    """x's pixels read at ``(source_rows, source_cols)`` (-1 and H or W: zero), and zero where ``cut``."""
    batch, channels, height, width = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    index = (source_rows + 1) * (width + 2) + (source_cols + 1)  # (B, H, W) into the padded image
    if cut is not None:
        index = index.masked_fill(cut, 0)  # the padding's top-left corner: a zero
    return padded.flatten(2).gather(2, index.view(batch, 1, -1).expand(-1, channels, -1)).view_as(x)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the transforms of ``policy`` in order (an empty policy returns ``x``); differentiable in ``x``.

    Example:
        >>> diff_augment(torch.zeros(2, 3, 8, 8), ("translation", "cutout")).shape
        torch.Size([2, 3, 8, 8])
    """
    index = 0
    while index < len(policy):
        if policy[index : index + 2] == ("translation", "cutout"):
            x, index = translation_then_cutout(x, generator), index + 2
        else:
            x, index = _TRANSFORMS[policy[index]](x, generator), index + 1
    return x
