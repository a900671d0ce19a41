"""Layers that reproduce TensorFlow 1 semantics, so the authors' weights compute the same function here."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LEAKY_SLOPE = 0.2


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) for one axis: the extra pixel goes after (bottom/right)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF 'SAME' padding; for stride 2 on even sizes it pads 0 before and 1 after.

    The state dict is that of ``nn.Conv2d`` (``weight``, ``bias``). ``forward(x, weight)`` convolves with another
    tensor of the weight's shape instead (the discriminator's spectrally normalised weights, computed together).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2 if symmetric else 0)
        self._pad_in_forward = not symmetric

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if self._pad_in_forward:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = tf_same_padding(x.shape[-2], k, s)
            left, right = tf_same_padding(x.shape[-1], k, s)
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight if weight is None else weight, self.bias)


def resize_bilinear_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False) of ``(B, C, H, W)`` to ``size``.

    Output pixel ``i`` samples input position ``i * in / out``; the last row/column repeats. PyTorch's
    ``F.interpolate(align_corners=False)`` samples ``(i + 0.5) * in / out - 0.5`` instead (a quarter pixel off
    for 2x). Differentiable.
    """
    out_h, out_w = size
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return x
    x = _lerp_axis(x, out_h, in_h, dim=-2)
    return _lerp_axis(x, out_w, in_w, dim=-1)


def _lerp_axis(x: torch.Tensor, out_size: int, in_size: int, dim: int) -> torch.Tensor:
    if out_size == in_size:
        return x
    if out_size == 2 * in_size:
        return _double_axis(x, dim)
    return _lerp_axis_gather(x, out_size, in_size, dim)


def _double_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Exact 2x of :func:`_lerp_axis` (the generator's case): even outputs copy input ``i``, odd ones are
    ``lerp(x[i], x[i + 1], 0.5)`` with the last repeated. Same values bit for bit as the gather path, without
    its two ``index_select`` copies (a quarter of the generator's CPU time at 720x1280); keeps the memory format.
    The odd outputs come from two views of ``x`` (no shifted copy) straight into the output (no temporary):
    about 270 of the generator's 3,430 MB of memory traffic per 720p frame. Under autograd the backward pass is
    written out (:class:`_DoubleAxis`): autograd's own, through slice assignments, built full-size zero tensors."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _DoubleAxis.apply(x, dim)
    return _double_axis_values(x, dim)


def _double_axis_values(x: torch.Tensor, dim: int) -> torch.Tensor:
    size = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = 2 * size
    memory_format = torch.channels_last if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=memory_format)
    out[_every_other(x.ndim, dim, 0)] = x
    odd_out = out[_every_other(x.ndim, dim, 1)]
    odd_out.narrow(dim, size - 1, 1).copy_(x.narrow(dim, size - 1, 1))  # lerp(a, a, 0.5) is a, exactly
    if size > 1:
        torch.lerp(x.narrow(dim, 0, size - 1), x.narrow(dim, 1, size - 1), 0.5, out=odd_out.narrow(dim, 0, size - 1))
    return out


def _every_other(ndim: int, dim: int, start: int) -> tuple[slice, ...]:
    """The index of every other position of axis ``dim`` from ``start``."""
    index = [slice(None)] * ndim
    index[dim] = slice(start, None, 2)
    return tuple(index)


class _DoubleAxis(torch.autograd.Function):
    """:func:`_double_axis` with its backward pass written out. Input ``i`` feeds output ``2i`` (weight 1),
    ``2i + 1`` and ``2i - 1`` (weight 1/2 each), and the last input also output ``2n - 1`` in full, so
    ``grad_x[i] = g[2i] + g[2i + 1] / 2 + g[2i - 1] / 2``: three adds over views of ``g``, where autograd's
    own pass through the slice assignments and the shifted copy made full-size zero tensors to add up (400 of the
    training step's 5,160 MB of memory traffic at 128² x 8). The halves are exact; only the order of the sums
    differs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.dim = dim
        return _double_axis_values(x, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        dim = ctx.dim
        size = grad.shape[dim] // 2
        even, odd = grad[_every_other(grad.ndim, dim, 0)], grad[_every_other(grad.ndim, dim, 1)]
        grad_x = torch.add(even, odd, alpha=0.5)
        if size > 1:
            grad_x.narrow(dim, 1, size - 1).add_(odd.narrow(dim, 0, size - 1), alpha=0.5)
        grad_x.narrow(dim, size - 1, 1).add_(odd.narrow(dim, size - 1, 1), alpha=0.5)
        return grad_x, None


def _lerp_axis_gather(x: torch.Tensor, out_size: int, in_size: int, dim: int) -> torch.Tensor:
    """Any ratio: gather the two neighbours of every output position and interpolate."""
    position = torch.arange(out_size, device=x.device, dtype=torch.float64) * (in_size / out_size)
    low = position.floor().long().clamp_(max=in_size - 1)
    high = (low + 1).clamp_(max=in_size - 1)
    shape = [1] * x.ndim
    shape[dim] = out_size
    frac = (position - low).to(x.dtype).view(shape)
    return torch.lerp(x.index_select(dim, low), x.index_select(dim, high), frac)
