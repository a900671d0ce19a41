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

from cartoon.image import check_image, check_tensor_image, from_float, to_float

SURFACE_RADIUS = 5
SURFACE_EPS = 2e-1


def _box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of ``x`` (B, C, H, W) over a (2r+1)^2 window; at borders the mean of the real pixels only."""
    _, _, height, width = x.shape
    # A radius past the image edge covers the whole axis at every pixel: clamping changes nothing.
    r_h, r_w = min(r, height - 1), min(r, width - 1)
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
    """:func:`guided_filter` in torch ops (autograd, any device), arguments checked."""
    # Box means of all the maps in one pass each (NCHW: avg_pool is ~2x slower on channels_last).
    if y is x:  # self-guided (the surface representation): mean(y) is mean(x), cov(x, y) is var(x): half the maps
        x = y = x.contiguous()
        mean_x, mean_xx = _box_mean(torch.cat([x, x * x], dim=1), r).chunk(2, dim=1)
        variance = mean_xx - mean_x * mean_x
        a = variance / (variance + eps)
        b = mean_x - a * mean_x
    else:
        x, y = x.contiguous(), y.contiguous()
        c_x, c_y = x.shape[1], y.shape[1]
        stacked = _box_mean(torch.cat([x, y, x * y, x * x], dim=1), r)
        mean_x, mean_y, mean_xy, mean_xx = stacked.split([c_x, c_y, c_y, c_x], dim=1)
        a = (mean_xy - mean_x * mean_y) / (mean_xx - mean_x * mean_x + eps)
        b = mean_y - a * mean_x
    mean_a, mean_b = _box_mean(torch.cat([a, b], dim=1), r).chunk(2, dim=1)
    return mean_a * x + mean_b


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
