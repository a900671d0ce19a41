"""Structure representation: superpixels filled with an adaptive colour (Wang & Yu 2020, §3.3).

Pipeline: segment (Felzenszwalb by default, as in the paper; SLIC, as in the authors' training code) ->
optionally merge adjacent regions selective-search style down to a target count -> fill every region with
its mean, its median, or their average, chosen by the region's colour spread sigma (on 0-255 values):
sigma < 20 -> mean; 20 <= sigma < 40 -> (mean + median) / 2; sigma >= 40 -> median.

Value range the segmenters see: the uint8 image, which scikit-image rescales to ``[0, 1]``. The authors ran
Felzenszwalb on ``[-1, 1]`` floats, where colour distances are twice as large, so their ``scale=10`` is
``scale=5`` here. Not differentiable: training computes it on detached outputs (:func:`structure_batch`).
All per-region statistics are vectorised with ``np.bincount`` (no Python loop over regions).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from skimage.segmentation import felzenszwalb, slic

from cartoon.image import check_image, check_tensor_image, to_tensor, to_uint8

Algorithm = Literal["felzenszwalb", "slic"]
ALGORITHMS: tuple[str, ...] = ("felzenszwalb", "slic")

MEAN_BELOW = 20.0
"""gamma_1: regions whose colour std (0-255 scale) is below this get their mean colour."""
MEDIAN_FROM = 40.0
"""gamma_2: regions whose colour std is at least this get their median colour; in between, the average."""

_HIST_BINS = 25


@dataclass(frozen=True)
class StructureParams:
    """Parameters of :func:`structure`.

    Attributes:
        algorithm: ``"felzenszwalb"`` (paper) or ``"slic"`` (authors' training code).
        scale: Felzenszwalb observation scale on ``[0, 1]`` values (higher: fewer, larger regions).
        sigma: Gaussian pre-smoothing (pixels) for both algorithms.
        min_size: Felzenszwalb minimum region size (pixels).
        n_segments: SLIC's approximate number of regions.
        compactness: SLIC colour/space trade-off (on Lab values).
        merge_to: merge adjacent regions selective-search style until at most this many remain
            (``None`` or 0: no merging). The authors' Felzenszwalb path merges to 200.
        downsample: segment at ``1/downsample`` resolution and upsample the labels (nearest); sigma and
            min_size are scaled to match. 1 is the reference; the explorer uses 2 for Felzenszwalb (about 6x
            faster; structure views within a few grey levels of the reference: see tests).
    """

    algorithm: Algorithm = "felzenszwalb"
    scale: float = 5.0
    sigma: float = 0.8
    min_size: int = 100
    n_segments: int = 200
    compactness: float = 10.0
    merge_to: int | None = 200
    downsample: int = 1

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown segmentation algorithm {self.algorithm!r}; choose one of {ALGORITHMS}")
        for name, (low, high) in _NUMBER_BOUNDS.items():
            value = getattr(self, name)
            open_low = name != "sigma"  # sigma may be 0 (no smoothing); scale and compactness may not
            if not _is_number(value) or not low <= value <= high or (open_low and value == low):
                interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"
                raise ValueError(f"structure parameter {name} must be a number in {interval}, got {value!r}")
        for name, (low, high) in _WHOLE_BOUNDS.items():
            value = getattr(self, name)
            if name == "merge_to" and value is None:
                continue
            if not _is_number(value) or int(value) != value or not low <= value <= high:
                raise ValueError(f"structure parameter {name} must be a whole number in [{low}, {high}], got {value!r}")


def _is_number(value: object) -> bool:
    """A finite real number (bools and values beyond float's range are not)."""
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


_NUMBER_BOUNDS = {"scale": (0.0, 10_000.0), "sigma": (0.0, 10.0), "compactness": (0.0, 1_000.0)}
"""Ranges of the real-valued parameters; the upper ends bound the work a request can ask for (sigma sets the
size of the smoothing kernel)."""
_WHOLE_BOUNDS = {"min_size": (1, 1_000_000), "n_segments": (1, 10_000), "merge_to": (0, 10_000), "downsample": (1, 8)}
"""Ranges of the whole-number parameters (``merge_to`` may also be None)."""


def segment(img: np.ndarray, params: StructureParams = StructureParams()) -> np.ndarray:
    """Superpixel labels of an image: :class:`Segmentation` ``.of(img, params).merged(params.merge_to).labels_full()``.

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        params: algorithm and its parameters.

    Returns:
        ``(H, W)`` int64 labels, consecutive from 0.

    Example:
        >>> segment(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8)
    """
    return Segmentation.of(img, params).merged(params.merge_to).labels_full()


@dataclass(frozen=True, eq=False)
class Segmentation:
    """Superpixels of one image at the segmenter's working resolution: segment once, merge and colour many times.

    The working resolution is the downsampling policy's one home: ``1/params.downsample`` of the image (area
    average) when the image is large enough, else the image itself. Segmenting and merging run there; only the
    final labels are upsampled (nearest) to the image's size.

    Attributes:
        labels: ``(h, w)`` int64 consecutive labels at the working resolution.
        working: ``(h, w, 3)`` uint8, the image the segmenter saw (merging compares its colours).
        shape: ``(H, W)`` of the image the labels describe.

    Example:
        >>> seg = Segmentation.of(np.zeros((8, 8, 3), np.uint8), StructureParams(merge_to=None))
        >>> seg.merged(1).labels_full().shape
        (8, 8)
    """

    labels: np.ndarray
    working: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, img: np.ndarray, params: StructureParams = StructureParams()) -> "Segmentation":
        """The segmenter's raw labels (no merging, whatever ``params.merge_to`` says)."""
        working = working_image(img, params)
        return cls(_segment(working, params, _working_factor(img, params)), working, tuple(img.shape[:2]))

    def merged(self, target: int | None) -> "Segmentation":
        """Merged selective-search style down to ``target`` regions (``None`` or 0: this segmentation)."""
        if not target:
            return self
        return Segmentation(merge_regions(self.working, self.labels, int(target)), self.working, self.shape)

    def labels_full(self) -> np.ndarray:
        """``(H, W)`` int64 consecutive labels at the image's size."""
        return upsample_labels(self.labels, self.shape)

    @property
    def count(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def nbytes(self) -> int:
        """Memory held (caches bound themselves by it); the working image may be shared with other segmentations."""
        return self.labels.nbytes + self.working.nbytes


def _working_factor(img: np.ndarray, params: StructureParams) -> int:
    factor = int(params.downsample)
    return factor if factor > 1 and min(img.shape[:2]) >= 2 * factor else 1


def working_image(img: np.ndarray, params: StructureParams = StructureParams()) -> np.ndarray:
    """The image the segmenter and the merging see: ``img`` itself, or ``1/downsample`` of it (area average)."""
    check_image(img)
    factor = _working_factor(img, params)
    if factor == 1:
        return img
    return cv2.resize(img, (img.shape[1] // factor, img.shape[0] // factor), interpolation=cv2.INTER_AREA)


def _segment(working: np.ndarray, params: StructureParams, factor: int) -> np.ndarray:
    """The segmenter on the working image (``factor`` times smaller than the original: sigma and min_size are
    scaled to match): int64 labels, consecutive from 0."""
    if params.algorithm == "felzenszwalb":
        labels = felzenszwalb(working, scale=params.scale, sigma=params.sigma / factor,
                              min_size=max(1, round(params.min_size / factor**2)))
    else:
        labels = slic(working, n_segments=int(params.n_segments), compactness=params.compactness,
                      sigma=params.sigma / factor, convert2lab=True, start_label=0)
    return _consecutive(labels)


def upsample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Labels resized (nearest) to ``shape``; consecutive from 0. A no-op when the shape already matches."""
    if labels.shape == tuple(shape):
        return labels
    resized = cv2.resize(labels.astype(np.int32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return _consecutive(resized)


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Relabel non-negative integer labels to 0..k-1, keeping their order (O(N), no sort of the image)."""
    labels = labels.astype(np.int64, copy=False)
    present = np.bincount(labels.ravel()) > 0
    if present.all():
        return labels
    mapping = np.cumsum(present) - 1
    return mapping[labels]


def _colour_histograms(img: np.ndarray, flat_labels: np.ndarray, n: int) -> np.ndarray:
    """Per-region colour histograms, 25 bins per channel, each row L1-normalised: ``(n, 75)`` float64."""
    bins = (img.reshape(-1, 3).astype(np.int64) * _HIST_BINS) >> 8
    hist = np.empty((n, 3 * _HIST_BINS))
    for channel in range(3):
        counts = np.bincount(flat_labels * _HIST_BINS + bins[:, channel], minlength=n * _HIST_BINS)
        hist[:, channel * _HIST_BINS : (channel + 1) * _HIST_BINS] = counts.reshape(n, _HIST_BINS)
    return hist / hist.sum(axis=1, keepdims=True)


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unique pairs ``(a, b)``, ``a < b``, of 8-connected neighbouring labels (Felzenszwalb's grid): ``(P, 2)``."""
    n = int(labels.max()) + 1
    codes = []
    for first, second in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1]),
    ):
        boundary = first != second
        a, b = first[boundary], second[boundary]
        codes.append(np.minimum(a, b) * n + np.maximum(a, b))
    codes = np.concatenate(codes)
    if n * n <= 1 << 24:  # a presence table is cheaper than sorting the boundary codes
        codes = np.flatnonzero(np.bincount(codes, minlength=n * n))
    else:
        codes = np.unique(codes)
    return np.stack([codes // n, codes % n], axis=1)


def _bounding_boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """Per-region ``(top, left, bottom, right)``, inclusive: ``(n, 4)`` int64. Uses which rows and columns
    each region touches (two bincounts), much cheaper than ``np.minimum.at`` over every pixel."""
    height, width = labels.shape
    bounds = []
    for axis, length in ((1, height), (0, width)):  # rows: collapse columns; columns: collapse rows
        index = np.arange(length).reshape((-1, 1) if axis == 1 else (1, -1))
        touched = np.bincount((labels * length + index).ravel(), minlength=n * length).reshape(n, length) > 0
        first = touched.argmax(axis=1)
        last = length - 1 - touched[:, ::-1].argmax(axis=1)
        bounds.append((first, last))
    (top, bottom), (left, right) = bounds
    return np.stack([top, left, bottom, right], axis=1).astype(np.int64)


def merge_regions(img: np.ndarray, labels: np.ndarray, target: int) -> np.ndarray:
    """Greedy selective-search merging (Uijlings et al. 2013) until at most ``target`` regions remain.

    Repeatedly merges the most similar pair of adjacent regions, with similarity = colour-histogram
    intersection + size term (small regions first) + fill term (regions that fill their joint bounding box).
    The texture term of selective search is left out. Per-region statistics are vectorised; the merge loop
    runs once per merge.

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        labels: ``(H, W)`` consecutive integer labels.
        target: the number of regions to stop at (>= 1).

    Returns:
        ``(H, W)`` int64 consecutive labels, with ``min(target, n)`` regions (fewer only if the image has
        disconnected groups that cannot merge).
    """
    n = int(labels.max()) + 1
    if n <= max(target, 1):
        return labels
    height, width = labels.shape
    image_size = float(height * width)
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    hist = _colour_histograms(img, flat, n)
    boxes = _bounding_boxes(labels, n)

    neighbours: list[set[int]] = [set() for _ in range(n)]
    pairs = _adjacent_pairs(labels)
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)

    # Selective search's size and fill terms, 1 - (s_a + s_b)/N and 1 - (box - s_a - s_b)/N, sum to
    # 2 - box/N: the similarity is the colour intersection plus that (one box area, no sizes needed).
    def similarities(a: int, others: np.ndarray) -> np.ndarray:
        """Similarity of region ``a`` to each region in ``others`` (one NumPy pass)."""
        joint_hist = hist[others]
        colour = np.minimum(joint_hist, hist[a], out=joint_hist).sum(axis=1)
        joint = boxes[others]
        np.minimum(joint[:, :2], boxes[a, :2], out=joint[:, :2])
        np.maximum(joint[:, 2:], boxes[a, 2:], out=joint[:, 2:])
        area = (joint[:, 2] - joint[:, 0] + 1) * (joint[:, 3] - joint[:, 1] + 1)
        return colour + (2.0 - area / image_size)

    # Initial similarities, vectorised over all pairs.
    a_idx, b_idx = pairs[:, 0], pairs[:, 1]
    colour = np.minimum(hist[a_idx], hist[b_idx]).sum(axis=1)
    joint = np.concatenate(
        [np.minimum(boxes[a_idx, :2], boxes[b_idx, :2]), np.maximum(boxes[a_idx, 2:], boxes[b_idx, 2:])], axis=1
    )
    area = (joint[:, 2] - joint[:, 0] + 1) * (joint[:, 3] - joint[:, 1] + 1)
    initial = colour + (2.0 - area / image_size)
    # Heap entries carry both regions' versions: an entry is stale once either region has changed.
    version = [0] * n
    heap = [(s, a, b, 0, 0) for s, a, b in zip((-initial).tolist(), a_idx.tolist(), b_idx.tolist())]
    heapq.heapify(heap)

    parent = np.arange(n)
    alive = [True] * n  # Python lists: scalar access in the loop is several times cheaper than NumPy's
    remaining = n
    while remaining > target and heap:
        _, a, b, version_a, version_b = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != version_a or version[b] != version_b:
            continue
        # Merge b into a.
        size_a, size_b = sizes[a], sizes[b]
        hist[a] = (hist[a] * size_a + hist[b] * size_b) / (size_a + size_b)
        sizes[a] = size_a + size_b
        boxes[a, :2] = np.minimum(boxes[a, :2], boxes[b, :2])
        boxes[a, 2:] = np.maximum(boxes[a, 2:], boxes[b, 2:])
        alive[b] = False
        parent[b] = a
        version[a] += 1
        remaining -= 1
        merged = (neighbours[a] | neighbours[b]) - {a, b}
        for c in neighbours[b]:
            neighbours[c].discard(b)
        neighbours[b] = set()
        neighbours[a] = merged
        if not merged:
            continue
        others = np.fromiter(merged, dtype=np.int64, count=len(merged))
        for c, score in zip(others.tolist(), similarities(a, others).tolist()):
            neighbours[c].add(a)
            low, high = min(a, c), max(a, c)
            heapq.heappush(heap, (-score, low, high, version[low], version[high]))

    # Resolve chains of merges to their roots, then relabel the n regions (not the image) consecutively.
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    return _consecutive(parent)[labels]


def adaptive_colour(img: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fill every region with its adaptive colour (mean, mean-median average or median by its colour std).

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        labels: ``(H, W)`` non-negative integer labels.

    Returns:
        ``(H, W, 3)`` uint8 RGB with one colour per region (so at most as many colours as regions).

    Example:
        >>> adaptive_colour(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), int)).shape
        (8, 8, 3)
    """
    check_image(img)
    if labels.shape != img.shape[:2]:
        raise ValueError(f"labels {labels.shape} do not match image {img.shape[:2]}")
    flat = labels.ravel().astype(np.int64)
    n = int(flat.max()) + 1
    # One integer histogram per region and channel, (n, 3, 256); mean, spread and median all come from it
    # (sums of integers: exact in float64, the same values as summing the pixels).
    codes = (flat * 3)[:, None] + np.arange(3)
    hist = np.bincount((codes * 256 + img.reshape(-1, 3)).ravel(), minlength=n * 3 * 256).reshape(n, 3, 256)
    count = hist[:, 0].sum(axis=1)
    present = count > 0
    safe_count = np.maximum(count, 1).astype(np.float64)

    values = np.arange(256, dtype=np.float64)
    mean = (hist @ values) / safe_count[:, None]
    # Spread of all the region's values pooled over channels (the authors' np.std(image[mask])).
    pooled_mean = mean.mean(axis=1)
    pooled_sq = (hist.sum(axis=1) @ (values**2)) / (3 * safe_count)
    std = np.sqrt(np.maximum(pooled_sq - pooled_mean**2, 0.0))

    cumulative = hist.cumsum(axis=2)
    low_rank = ((count - 1) // 2)[:, None, None]  # np.median averages the two middle values
    high_rank = (count // 2)[:, None, None]
    median = ((cumulative > low_rank).argmax(axis=2) + (cumulative > high_rank).argmax(axis=2)) / 2.0

    colour = np.where(
        (std < MEAN_BELOW)[:, None], mean, np.where((std < MEDIAN_FROM)[:, None], (mean + median) / 2.0, median)
    )
    colour[~present] = 0
    palette = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return palette[flat].reshape(img.shape)


def structure(img: np.ndarray, params: StructureParams = StructureParams()) -> np.ndarray:
    """The structure representation of a photo: superpixels filled with their adaptive colour.

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        params: segmentation parameters (defaults: Felzenszwalb, scale 5, sigma 0.8, min size 100, merged to 200).

    Returns:
        ``(H, W, 3)`` uint8 RGB, flat regions.

    Example:
        >>> structure(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """
    return adaptive_colour(img, segment(img, params))


@torch.no_grad()
def structure_batch(x: torch.Tensor, params: StructureParams = StructureParams()) -> torch.Tensor:
    """Torch entry for training: the structure representation of each image in a batch (no gradient).

    Args:
        x: ``(B, 3, H, W)`` float in ``[-1, 1]``.
        params: segmentation parameters.

    Returns:
        ``(B, 3, H, W)`` with the dtype, device and memory format of ``x``, in ``[-1, 1]``.
    """
    check_tensor_image(x)
    return to_tensor(np.stack([structure(img, params) for img in to_uint8(x)]), like=x)
