"""Surface representation: the authors' per-channel guided filter (Wang & Yu 2020, §3.2).

With guide ``x`` and input ``y`` (same channels, or a 1-channel guide), ``box`` the mean over a
``(2r+1) x (2r+1)`` window that averages only real pixels at the borders::

    A = cov(x, y) / (var(x) + eps);  b = mean(y) - A * mean(x);  out = box(A) * x + box(b)

This is the authors' ``train_code/guided_filter.py``, not He et al.'s colour-guide version (which mixes channels
through a 3x3 covariance and differs by up to ~0.5). ``eps`` is in the units of the values squared: the paper's
values (``r=5, eps=0.2`` for the surface, ``r=1, eps=5e-3`` after inference) assume images in ``[-1, 1]``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cartoon.image import check_image, check_tensor_image, from_float, to_float

SURFACE_RADIUS = 5
SURFACE_EPS = 2e-1


def _box_radii(x: torch.Tensor, r: int) -> tuple[int, int]:
    """The box's radius along H and W of ``x``: a radius past the image edge covers the whole axis at every pixel,
    so clamping it changes nothing."""
    return min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)


def _box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of ``x`` (B, C, H, W) over a (2r+1)^2 window; at borders the mean of the real pixels only."""
    r_h, r_w = _box_radii(x, r)
    if r_h > 0:
        x = F.avg_pool2d(x, (2 * r_h + 1, 1), stride=1, padding=(r_h, 0), count_include_pad=False)
    if r_w > 0:
        x = F.avg_pool2d(x, (1, 2 * r_w + 1), stride=1, padding=(0, r_w), count_include_pad=False)
    return x


def _check_filter_args(r: int, eps: float) -> None:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
        raise ValueError(f"guided filter radius r must be an integer >= 0, got {r!r}")
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"guided filter eps must be a finite number > 0, got {eps!r}")


def guided_filter(x: torch.Tensor, y: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """Per-channel guided filter of ``y`` guided by ``x``; differentiable, batched, on any device.

    Args:
        x: guide, ``(B, C, H, W)`` or ``(B, 1, H, W)``, float (the paper: ``[-1, 1]``).
        y: input to filter, ``(B, C, H, W)``, same dtype and device as ``x``.
        r: window radius in pixels (>= 0; 0 returns the per-pixel linear fit, i.e. ``y`` itself up to eps).
        eps: regulariser (> 0), in squared value units.

    Returns:
        ``(B, C, H, W)``, same dtype as ``y``.

    Example:
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> out = guided_filter(x, x, r=1, eps=1e-2)
        >>> out.shape, out.dtype
        (torch.Size([1, 3, 8, 8]), torch.float32)
    """
    check_tensor_image(y, channels=None, name="input y")
    check_tensor_image(x, channels=(1, y.shape[1]), name="guide x")
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(f"guide {tuple(x.shape)} and input {tuple(y.shape)} differ in batch or size")
    _check_filter_args(r, eps)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    if x.device.type == "cpu" and not needs_grad and x.shape[1] == y.shape[1] == 3:
        return _guided_filter_opencv(x, y, r, eps)
    return _guided_filter_torch(x, y, r, eps)


def _guided_filter_torch(x: torch.Tensor, y: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """:func:`guided_filter` in torch ops (autograd, any device), arguments checked. Training differentiates it
    with respect to the filtered input only (the guide is the photo, or the input itself): then, with one dtype,
    its backward pass is :class:`_GuidedFilterBackward`'s, written out."""
    if torch.is_grad_enabled() and y.requires_grad and (y is x or not x.requires_grad) and x.dtype == y.dtype:
        return _GuidedFilterBackward.apply(x, y, r, eps)
    return _guided_filter_forward(x, y, r, eps)[0]


def _guided_filter_forward(x: torch.Tensor, y: torch.Tensor, r: int, eps: float
                           ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The filter's output, and what its written-out backward needs: the guide, ``mean(x)``, ``var(x) + eps``,
    ``box(A)``."""
    # Box means of all the maps in one pass each (NCHW: avg_pool is ~2x slower on channels_last).
    if y is x:  # self-guided (the surface representation): mean(y) is mean(x), cov(x, y) is var(x): half the maps
        x = y = x.contiguous()
        mean_x, mean_xx = _box_mean(torch.cat([x, x * x], dim=1), r).chunk(2, dim=1)
        variance = mean_xx - mean_x * mean_x
        denominator = variance + eps
        a = variance / denominator
        b = mean_x - a * mean_x
    else:
        x, y = x.contiguous(), y.contiguous()
        c_x, c_y = x.shape[1], y.shape[1]
        stacked = _box_mean(torch.cat([x, y, x * y, x * x], dim=1), r)
        mean_x, mean_y, mean_xy, mean_xx = stacked.split([c_x, c_y, c_y, c_x], dim=1)
        denominator = mean_xx - mean_x * mean_x + eps
        a = (mean_xy - mean_x * mean_y) / denominator
        b = mean_y - a * mean_x
    mean_a, mean_b = _box_mean(torch.cat([a, b], dim=1), r).chunk(2, dim=1)
    return mean_a * x + mean_b, (x, mean_x, denominator, mean_a)


def _box_mean_adjoint(g: torch.Tensor, r: int) -> torch.Tensor:
    """The transpose of :func:`_box_mean`, ``<box(u), g> = <u, adjoint(g)>``: its backward pass."""
    r_h, r_w = _box_radii(g, r)
    if r_w > 0:
        g = torch.ops.aten.avg_pool2d_backward(g, g, (1, 2 * r_w + 1), (1, 1), (0, r_w), False, False, None)
    if r_h > 0:
        g = torch.ops.aten.avg_pool2d_backward(g, g, (2 * r_h + 1, 1), (1, 1), (r_h, 0), False, False, None)
    return g


class _GuidedFilterBackward(torch.autograd.Function):
    """:func:`guided_filter` of ``y`` with the gradient with respect to ``y`` written out (the guide ``x`` is
    constant, or ``y`` itself). The forward pass is :func:`_guided_filter_forward`'s, so the values are the same.

    With ``box*`` the adjoint box mean and ``d = var(x) + eps``, from ``out = box(a) x + box(b)``,
    ``a = cov(x, y) / d``, ``b = mean(y) - a mean(x)``: ``(ga, gb) = box*(g x, g)``, ``ga -= gb mean(x)``. For a
    constant guide, ``gcov = ga / d`` and ``dL/dy = box*(gb - gcov mean(x)) + x box*(gcov)``; self-guided
    (``cov = var``, ``da/dvar = eps / d^2``), ``gvar = ga eps / d^2`` and ``dL/dx = g box(a)
    + box*(gb (1 - a) - 2 gvar mean(x)) + 2 x box*(gvar)``. About 15 kernels where autograd's pass through the
    forward's ops took some 30, and half its memory traffic.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, r: int, eps: float) -> torch.Tensor:
        ctx.self_guided, ctx.r, ctx.eps = y is x, r, eps
        out, saved = _guided_filter_forward(x, y, r, eps)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, mean_x, denominator, mean_a = ctx.saved_tensors
        r, eps = ctx.r, ctx.eps
        grad = grad.contiguous()
        channels = grad.shape[1]
        # Each pair of maps is written into one (B, 2C, H, W) buffer, which one adjoint box mean then carries.
        pair = grad.new_empty(grad.shape[0], 2 * channels, *grad.shape[2:])
        first, second = pair[:, :channels], pair[:, channels:]
        torch.mul(grad, x, out=first)
        second.copy_(grad)
        grad_a, grad_b = _box_mean_adjoint(pair, r).chunk(2, dim=1)
        grad_a = torch.addcmul(grad_a, grad_b, mean_x, value=-1)  # b = mean(y) - a mean(x)
        pair = torch.empty_like(pair)  # a new one: with r = 0 the adjoint returned the first, which grad_b views
        first, second = pair[:, :channels], pair[:, channels:]
        if ctx.self_guided:  # the pair below is (gb (1 - a) - 2 gvar mean(x), gvar), gvar = ga eps / d^2
            torch.div(grad_a, denominator.square(), out=second)
            torch.addcmul(grad_b / denominator, second, mean_x, value=-2, out=first)
            pair.mul_(eps)
            grad_mean_x, grad_mean_xx = _box_mean_adjoint(pair, r).chunk(2, dim=1)
            return torch.addcmul(torch.addcmul(grad_mean_x, grad, mean_a), x, grad_mean_xx, value=2), None, None, None
        torch.div(grad_a, denominator, out=second)  # gcov
        torch.addcmul(grad_b, second, mean_x, value=-1, out=first)  # gb - gcov mean(x)
        grad_mean_y, grad_mean_xy = _box_mean_adjoint(pair, r).chunk(2, dim=1)
        return None, torch.addcmul(grad_mean_y, x, grad_mean_xy), None, None


def _guided_filter_opencv(x: torch.Tensor, y: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """:func:`guided_filter` on the CPU without autograd, through :func:`guided_filter_numpy` image by image
    (OpenCV's running box sums: about 6x faster there at 480x854, r=1; the same values up to float rounding,
    so at most 1/255 apart in a few pixels per million after quantisation). ``(B, 3, H, W)`` in and out."""

    def channels_last_array(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().permute(0, 2, 3, 1).contiguous().numpy()

    guides = channels_last_array(x)
    inputs = guides if y is x else channels_last_array(y)  # the same array: the self-guided shortcut
    out = np.stack([guided_filter_numpy(guide, guide if inputs is guides else inputs[i], r, eps)
                    for i, guide in enumerate(guides)])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(y.dtype)


def _box_mean_numpy(x: np.ndarray, r: int) -> np.ndarray:
    """NumPy/OpenCV twin of :func:`_box_mean` for ``(H, W[, C])`` float32 arrays (running sums, O(1) in r)."""
    height, width = x.shape[:2]
    r_h, r_w = min(r, height - 1), min(r, width - 1)
    sums = cv2.boxFilter(x, -1, (2 * r_w + 1, 2 * r_h + 1), normalize=False, borderType=cv2.BORDER_CONSTANT)
    rows = np.arange(height)
    cols = np.arange(width)
    count_h = (np.minimum(rows + r_h, height - 1) - np.maximum(rows - r_h, 0) + 1).astype(np.float32)
    count_w = (np.minimum(cols + r_w, width - 1) - np.maximum(cols - r_w, 0) + 1).astype(np.float32)
    inverse = 1.0 / np.outer(count_h, count_w)
    return sums * (inverse[:, :, None] if x.ndim == 3 else inverse)


def guided_filter_numpy(x: np.ndarray, y: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Fast CPU twin of :func:`guided_filter` for single images.

    Args:
        x: guide ``(H, W, C)`` or ``(H, W)`` float32.
        y: input ``(H, W, C)`` float32 (same H, W).
        r, eps: as in :func:`guided_filter`.

    Returns:
        ``(H, W, C)`` float32.

    Example:
        >>> out = guided_filter_numpy(np.zeros((8, 8, 3), np.float32), np.ones((8, 8, 3), np.float32), 1, 1e-2)
        >>> out.shape, out.dtype
        ((8, 8, 3), dtype('float32'))
    """
    _check_filter_args(r, eps)
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"guide {x.shape} and input {y.shape} differ in size")
    self_guided = x is y
    x = np.asarray(x, dtype=np.float32)
    y = x if self_guided else np.asarray(y, dtype=np.float32)
    if x.ndim == 2 and y.ndim == 3:
        x = x[:, :, None]
    mean_x = _box_mean_numpy(x, r)
    if self_guided:  # guide == input (the surface representation): half the box filters
        var_x = _box_mean_numpy(x * x, r) - mean_x * mean_x
        a = var_x / (var_x + np.float32(eps))
        b = mean_x - a * mean_x
    else:
        mean_y = _box_mean_numpy(y, r)
        cov_xy = _box_mean_numpy(x * y, r) - mean_x * mean_y
        var_x = _box_mean_numpy(x * x, r) - mean_x * mean_x
        a = cov_xy / (var_x + np.float32(eps))
        b = mean_y - a * mean_x
    return _box_mean_numpy(a, r) * x + _box_mean_numpy(b, r)


def surface(img: np.ndarray, r: int = SURFACE_RADIUS, eps: float = SURFACE_EPS) -> np.ndarray:
    """The surface representation of a photo: ``guided_filter(x, x, r, eps)`` on ``[-1, 1]`` values.

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        r: radius (paper: 5).
        eps: regulariser on the ``[-1, 1]`` scale (paper: 0.2).

    Returns:
        ``(H, W, 3)`` uint8 RGB, edge-preserving smooth.

    Example:
        >>> surface(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """
    check_image(img)
    x = to_float(img)
    return from_float(guided_filter_numpy(x, x, r, eps))
