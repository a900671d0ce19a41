"""Structure representation on any torch device, batched: SLIC superpixels and adaptive colour (Wang & Yu 2020, §3.3).

The training twin of :func:`cartoon.representations.structure.structure_batch` for accelerators: no host round
trip and no Python loop over images or regions, so the structure target of a batch is a few dozen kernel
launches on the device that holds it.

* **SLIC** (Achanta et al. 2012) as k-means over (Lab colour, position): centres start on a regular grid of
  about ``n_segments`` cells of side ``S``; each pixel compares itself only with the centres of its own grid
  cell and the 8 around it (the local search window: every centre within reach of ``S``), by
  ``|dLab|^2 / compactness^2 + |dxy|^2 / S^2`` as scikit-image does; a fixed number of iterations (10, as
  scikit-image's default). The image is Gaussian-smoothed (``sigma``, reflected borders) and converted to
  CIE Lab (D65) first, as in scikit-image's ``slic(..., convert2lab=True)``. The pixels of a grid cell share
  their 9 candidates, so an assignment is one small matrix product per cell (``|c|^2 - 2 p.c``, in full float32)
  over the pixels laid out cell by cell, with no ``(B, 9, 5, H, W)`` difference tensor (which was a third of the
  bytes the whole training step touched).
* **Disconnected fragments**: scikit-image relabels connected components and merges small ones into a
  neighbour, a sequential flood fill. Here, instead, ``smoothing`` passes of a 3x3 majority vote over the labels
  absorb the specks and one-pixel slivers that k-means leaves at region borders; a cluster that stays split
  in two larger pieces keeps one label, and its colour is computed over both.
* **Adaptive colour**: one 256-bin histogram per (image, region, channel) built with ``scatter_add`` on
  the device; mean, pooled standard deviation and median all come from it, then the paper's rule (mean below
  sigma 20, median from 40, their average between), exactly as the NumPy version does.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cartoon.device import device_constant
from cartoon.image import check_tensor_image, quantize
from cartoon.representations.structure import MEAN_BELOW, MEDIAN_FROM, StructureParams

SLIC_ITERATIONS = 10
SMOOTHING_PASSES = 1

# sRGB (D65) -> XYZ, and the D65 white point: the constants of scikit-image's rgb2lab.
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def to_uint8_values(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in ``[-1, 1]`` -> the same pixels as integers 0..255 (int64), on x's device."""
    return quantize(x).long()


def rgb_to_lab(values: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB integers 0..255 -> CIE Lab (D65), float32, as scikit-image's ``rgb2lab``."""
    rgb = values.float() / 255.0
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    matrix = device_constant(_RGB_TO_XYZ, rgb.device, rgb.dtype)  # cached: no blocking copy per call
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / device_constant(_WHITE_D65, rgb.device, rgb.dtype).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian per channel, kernel radius ``ceil(4 sigma)`` (scikit-image's truncation), reflected borders."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(4 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    for dim in (2, 3):
        size = x.shape[dim]
        pad = min(radius, size - 1)
        if pad == 0:
            continue
        k = kernel[radius - pad : radius + pad + 1]
        padding = (pad, pad, 0, 0) if dim == 3 else (0, 0, pad, pad)
        shape = (channels, 1, 1, 2 * pad + 1) if dim == 3 else (channels, 1, 2 * pad + 1, 1)
        x = F.conv2d(F.pad(x, padding, mode="reflect"), (k / k.sum()).view(1, 1, -1).expand(channels, 1, -1).reshape(shape),
                     groups=channels)
    return x


def slic_grid(height: int, width: int, n_segments: int) -> tuple[int, int]:
    """The grid of initial centres: about ``n_segments`` square-ish cells; labels lie in ``[0, rows * columns)``."""
    step = math.sqrt(height * width / max(1, n_segments))
    return max(1, min(height, round(height / step))), max(1, min(width, round(width / step)))


def slic_labels(
    x: torch.Tensor,
    n_segments: int = 200,
    compactness: float = 10.0,
    sigma: float = 0.8,
    iterations: int = SLIC_ITERATIONS,
    smoothing: int = SMOOTHING_PASSES,
) -> torch.Tensor:
    """SLIC superpixels of a batch, on x's device.

    Args:
        x: ``(B, 3, H, W)`` float RGB in ``[-1, 1]``.
        n_segments: the approximate number of regions per image.
        compactness: colour/space trade-off on Lab values (scikit-image's meaning).
        sigma: Gaussian pre-smoothing in pixels.
        iterations: k-means iterations.
        smoothing: 3x3 majority-vote passes over the labels (the fragment treatment; 0: none).

    Returns:
        ``(B, H, W)`` int64 labels in ``[0, K)``, K the number of grid cells (about ``n_segments``); a label may
        be unused in some image.

    Example:
        >>> slic_labels(torch.zeros(2, 3, 16, 16), n_segments=4).shape
        torch.Size([2, 16, 16])
    """
    check_tensor_image(x)
    batch, _, height, width = x.shape
    device = x.device
    lab = gaussian_blur(rgb_to_lab(to_uint8_values(x)), sigma)
    grid_h, grid_w = slic_grid(height, width, n_segments)
    cell_h, cell_w = height / grid_h, width / grid_w
    spatial_scale = max(cell_h, cell_w)  # S: positions are divided by it, colours by the compactness

    layout = _slic_layout(height, width, grid_h, grid_w, device)
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    position = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).unsqueeze(0).expand(batch, -1, -1, -1)
    # (B, 6, N): Lab / compactness, position / S, and a row of ones (it counts each cluster's pixels in the update).
    features = torch.cat([lab / compactness, position / spatial_scale, torch.ones_like(lab[:, :1])], dim=1)
    features = features.reshape(batch, 6, -1)
    centres = features[:, :5, layout.seeds]  # (B, 5, K): the grid cells' middles, with the colour there
    count = grid_h * grid_w
    # The pixels cell by cell, (B*K, 6, M), made once: the features do not change.
    blocks = features[:, :, layout.block_pixels].permute(0, 2, 1, 3).reshape(batch * count, 6, -1)
    candidates = layout.candidates.expand(batch, -1, -1)  # (B, K, 9)

    labels = layout.cell.expand(batch, -1)
    for _ in range(iterations):
        # Assignment: the nearest of the 9 candidate centres, argmin over c of |c|^2 - 2 p.c (|p - c|^2 less |p|^2,
        # the same for every c), one small matrix product per grid cell: the pixels of a cell share their candidates.
        near = centres[:, :, layout.candidates]  # (B, 5, K, 9)
        squared = (near * near).sum(dim=1, keepdim=True).masked_fill(layout.off_grid, float("inf"))
        weights = torch.cat([-2 * near, squared], dim=1).permute(0, 2, 3, 1).reshape(batch * count, 9, 6)
        with _exact_float32_matmul():
            nearest = torch.bmm(weights, blocks).argmin(dim=1).view(batch, count, -1)  # (B, K, M)
        labels = torch.gather(candidates, 2, nearest).view(batch, -1)[:, layout.block_slot]  # (B, N)
        # Update: each centre moves to the mean of its pixels (an empty cluster keeps its centre).
        sums = torch.zeros(batch, 6, count, device=device, dtype=features.dtype)
        sums.scatter_add_(2, labels.unsqueeze(1).expand(-1, 6, -1), features)
        sizes = sums[:, 5:]
        centres = torch.where(sizes > 0, sums[:, :5] / sizes.clamp_min(1), centres)
    labels = labels.view(batch, height, width)
    for _ in range(smoothing):
        labels = majority_filter(labels)
    return labels


class _SlicLayout(NamedTuple):
    """Index tables of a SLIC grid over an ``H x W`` image, on one device (K cells; M slots per cell, the largest
    cell's pixel count; N = H*W pixels).

    Attributes:
        cell: ``(N,)`` each pixel's grid cell.
        seeds: ``(K,)`` the pixel in the middle of each cell (the initial centres).
        candidates: ``(K, 9)`` the cells of the 3x3 block around each cell (0 where off the grid).
        off_grid: ``(K, 9)`` whether that neighbour lies off the grid (no centre to compare with).
        block_pixels: ``(K, M)`` the pixels of each cell, its last row or column repeated in the spare slots.
        block_slot: ``(N,)`` each pixel's slot in the flattened ``(K, M)`` layout.
    """

    cell: torch.Tensor
    seeds: torch.Tensor
    candidates: torch.Tensor
    off_grid: torch.Tensor
    block_pixels: torch.Tensor
    block_slot: torch.Tensor


@functools.lru_cache(maxsize=16)
def _slic_layout(height: int, width: int, grid_h: int, grid_w: int, device: torch.device) -> _SlicLayout:
    """:class:`_SlicLayout`, built on the host once per (size, grid, device) and copied over: a table made on
    the device in every call would be a blocking copy or a dozen kernels."""
    cell_h, cell_w = height / grid_h, width / grid_w
    cell_y = torch.clamp((torch.arange(height, dtype=torch.float32) / cell_h).long(), max=grid_h - 1)
    cell_x = torch.clamp((torch.arange(width, dtype=torch.float32) / cell_w).long(), max=grid_w - 1)
    cell = (cell_y[:, None] * grid_w + cell_x[None, :]).reshape(-1)
    centre_y = ((torch.arange(grid_h) + 0.5) * cell_h).long().clamp(max=height - 1)
    centre_x = ((torch.arange(grid_w) + 0.5) * cell_w).long().clamp(max=width - 1)
    seeds = (centre_y[:, None] * width + centre_x[None, :]).reshape(-1)
    offsets = torch.arange(9)
    cy = (torch.arange(grid_h * grid_w) // grid_w)[:, None] + offsets // 3 - 1
    cx = (torch.arange(grid_h * grid_w) % grid_w)[:, None] + offsets % 3 - 1
    valid = (cy >= 0) & (cy < grid_h) & (cx >= 0) & (cx < grid_w)
    candidates = torch.where(valid, cy * grid_w + cx, 0)
    # Rows (columns) of each cell row (column): its first row plus 0..M_h-1, clamped to its last.
    rows, row_first, row_size = _axis_blocks(cell_y, grid_h)
    cols, col_first, col_size = _axis_blocks(cell_x, grid_w)
    block_pixels = (rows[:, None, :, None] * width + cols[None, :, None, :]).reshape(grid_h * grid_w, -1)
    pixel_y, pixel_x = torch.arange(height), torch.arange(width)
    within = ((pixel_y - row_first[cell_y])[:, None] * col_size + (pixel_x - col_first[cell_x])[None, :])
    block_slot = (cell.view(height, width) * (row_size * col_size) + within).reshape(-1)
    tables = _SlicLayout(cell, seeds, candidates, ~valid, block_pixels, block_slot)
    return _SlicLayout(*(table.to(device) for table in tables))


def _axis_blocks(cell_of: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For one axis: ``(cells, size)`` the coordinates of each cell's pixels (its last repeated to fill ``size``,
    the largest cell's length), each cell's first coordinate, and ``size``."""
    lengths = torch.bincount(cell_of, minlength=cells)
    first = torch.cumsum(lengths, 0) - lengths
    size = int(lengths.max())
    coordinates = torch.minimum(first[:, None] + torch.arange(size), (first + lengths - 1)[:, None])
    return coordinates, first, size


@contextlib.contextmanager
def _exact_float32_matmul():
    """Full float32 matrix products inside (not TF32, whatever the caller set): SLIC's distances are compared
    to a few units in the fifth digit."""
    matmul = torch.backends.cuda.matmul
    # torch 2.9's per-backend setting; older releases (a lent GPU machine may have one) only have allow_tf32.
    name, exact = ("fp32_precision", "ieee") if hasattr(matmul, "fp32_precision") else ("allow_tf32", False)
    previous = getattr(matmul, name)
    setattr(matmul, name, exact)
    try:
        yield
    finally:
        setattr(matmul, name, previous)


def majority_filter(labels: torch.Tensor) -> torch.Tensor:
    """Each pixel takes the most frequent label of its 3x3 neighbourhood (itself on ties); ``(B, H, W)`` int64."""
    batch, height, width = labels.shape
    padded = F.pad(labels.unsqueeze(1).float(), (1, 1, 1, 1), mode="replicate")
    window = F.unfold(padded, 3).int()  # (B, 9, H*W), exact for labels < 2**24
    # (B, 9, H*W): how often each neighbour's label occurs (at most 9: one byte, an eighth of int64's traffic)
    votes = (window.unsqueeze(1) == window.unsqueeze(2)).sum(dim=2, dtype=torch.uint8)
    centre_votes = votes[:, 4]
    best = votes.argmax(dim=1, keepdim=True)
    winner = torch.gather(window, 1, best)[:, 0]
    keep = centre_votes >= torch.gather(votes, 1, best)[:, 0]
    return torch.where(keep, window[:, 4], winner).view(batch, height, width).long()


def adaptive_colour_batch(values: torch.Tensor, labels: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """Fill every region of every image with its adaptive colour (the rule of :func:`~.structure.adaptive_colour`).

    Args:
        values: ``(B, 3, H, W)`` integers 0..255 (any integer dtype).
        labels: ``(B, H, W)`` non-negative integer labels.
        count: an upper bound on the labels (exclusive); ``None`` reads ``labels.max()``, which waits for the
            device. The histograms are scattered into a buffer of known size: nothing else waits.

    Returns:
        ``(B, 3, H, W)`` int64 0..255, one colour per region: the same values as the NumPy version gives.
    """
    batch, _, height, width = values.shape
    count = int(labels.max()) + 1 if count is None else count
    segment = (labels + torch.arange(batch, device=labels.device).view(-1, 1, 1) * count).reshape(batch, 1, -1)
    channel = torch.arange(3, device=labels.device).view(1, 3, 1)
    index = ((segment * 3 + channel) * 256 + values.reshape(batch, 3, -1).long()).reshape(-1)
    hist = torch.zeros(batch * count * 3 * 256, device=values.device, dtype=torch.float32)  # exact counts below 2**24
    hist = hist.scatter_add_(0, index, torch.ones_like(index, dtype=torch.float32)).view(batch * count, 3, 256).double()
    pixels = hist[:, 0].sum(dim=1)
    safe = pixels.clamp_min(1)
    levels = torch.arange(256, device=values.device, dtype=torch.float64)
    mean = (hist * levels).sum(dim=2) / safe[:, None]
    pooled_mean = mean.mean(dim=1)
    pooled_square = (hist.sum(dim=1) * levels**2).sum(dim=1) / (3 * safe)
    std = (pooled_square - pooled_mean**2).clamp_min(0).sqrt()
    cumulative = hist.cumsum(dim=2)
    low_rank = torch.div(pixels - 1, 2, rounding_mode="floor").clamp_min(0)[:, None, None]
    high_rank = torch.div(pixels, 2, rounding_mode="floor")[:, None, None]
    median = ((cumulative > low_rank).double().argmax(dim=2) + (cumulative > high_rank).double().argmax(dim=2)) / 2.0
    colour = torch.where((std < MEAN_BELOW)[:, None], mean,
                         torch.where((std < MEDIAN_FROM)[:, None], (mean + median) / 2.0, median))
    palette = colour.round().clamp(0, 255).long()  # (B*K, 3): round half to even, as np.rint
    return palette[segment.view(-1)].view(batch, height * width, 3).permute(0, 2, 1).reshape(batch, 3, height, width)


@torch.no_grad()
def structure_batch_device(x: torch.Tensor, params: StructureParams = StructureParams(algorithm="slic")) -> torch.Tensor:
    """The structure representation of each image in a batch, computed on x's device (SLIC only; no gradient).

    Args:
        x: ``(B, 3, H, W)`` float in ``[-1, 1]``.
        params: ``algorithm`` must be ``"slic"``; ``n_segments``, ``compactness`` and ``sigma`` are used
            (``merge_to`` and ``downsample`` are not: the training target is the raw SLIC partition).

    Returns:
        ``(B, 3, H, W)`` with the dtype, device and memory format of ``x``, in ``[-1, 1]``.
    """
    check_tensor_image(x)
    if params.algorithm != "slic":
        raise ValueError("the device structure path implements SLIC only; use structure_batch for Felzenszwalb")
    values = to_uint8_values(x)
    labels = slic_labels(x, int(params.n_segments), params.compactness, params.sigma)
    count = math.prod(slic_grid(x.shape[2], x.shape[3], int(params.n_segments)))
    out = adaptive_colour_batch(values, labels, count).to(x.dtype).div_(127.5).sub_(1.0)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out.contiguous()
