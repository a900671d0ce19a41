"""The representation explorer's engine: per-image caches so that moving one slider recomputes one view.

The app keeps no image maths of its own: it registers a photo here, then asks for views by parameters.
Each view is cached per (image, parameters), and the segmentation separately from the colouring, so
changing the texture weights never re-runs Felzenszwalb, and changing the mix weights recomputes nothing
but the blend.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from cartoon.image import check_image, scale_to_fit
from cartoon.representations import (
    ShiftWeights,
    StructureParams,
    adaptive_colour,
    merge_regions,
    surface,
    texture,
    whitebox_mix,
)
from cartoon.representations.structure import raw_segments, upsample_labels, working_image
from cartoon.representations.surface import SURFACE_EPS, SURFACE_RADIUS

PREVIEW_LONG_SIDE = 512
EXPLORER_STRUCTURE_DOWNSAMPLE = 2
"""The explorer segments Felzenszwalb at half the preview's resolution (about 6x faster; see StructureParams)."""
T = TypeVar("T")
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explorer")


@dataclass(frozen=True)
class SurfaceParams:
    """Guided-filter parameters of the surface view (paper: r=5, eps=0.2 on [-1, 1] values)."""

    radius: int = SURFACE_RADIUS
    eps: float = SURFACE_EPS

    def __post_init__(self) -> None:
        if int(self.radius) != self.radius or not 0 <= self.radius <= 256:
            raise ValueError(f"surface radius must be a whole number in [0, 256], got {self.radius!r}")
        if not np.isfinite(self.eps) or not 0 < self.eps <= 100:
            raise ValueError(f"surface eps must be a number in (0, 100], got {self.eps!r}")


def image_key(img: np.ndarray) -> str:
    """A content hash of an image (shape and pixels)."""
    digest = hashlib.blake2b(np.ascontiguousarray(img).data, digest_size=16)
    digest.update(repr(img.shape).encode())
    return digest.hexdigest()


class LRUCache:
    """A small thread-safe least-recently-used map, bounded in entries and in bytes (NumPy arrays' ``nbytes``)."""

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
            self.misses += 1
        value = compute()  # outside the lock: other sessions keep going
        with self._lock:
            if key not in self._items:
                self.bytes += getattr(value, "nbytes", 0)
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > 1 and (len(self._items) > self.capacity or
                                            (self.max_bytes is not None and self.bytes > self.max_bytes)):
                _, evicted = self._items.popitem(last=False)
                self.bytes -= getattr(evicted, "nbytes", 0)
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items


class Explorer:
    """Views of registered photos at preview size, cached per image and parameters.

    Example:
        >>> explorer = Explorer()
        >>> key = explorer.add(np.zeros((8, 8, 3), np.uint8))
        >>> explorer.surface(key, SurfaceParams()).shape
        (8, 8, 3)
    """

    def __init__(self, max_images: int = 32, preview_long_side: int = PREVIEW_LONG_SIDE, max_view_mb: int = 160) -> None:
        self.preview_long_side = preview_long_side
        self._photos = LRUCache(max_images)
        self._views = LRUCache(max_images * 8, max_bytes=max_view_mb * 2**20)

    def add(self, img: np.ndarray) -> str:
        """Register a photo (uint8 RGB, any size); returns its key. The preview is its long side <= 512 px."""
        check_image(img)
        preview = scale_to_fit(img, long_side=self.preview_long_side)
        key = image_key(preview)
        self._photos.get_or_compute(key, lambda: preview)
        return key

    def has(self, key: str | None) -> bool:
        return key is not None and key in self._photos

    def photo(self, key: str) -> np.ndarray:
        """The registered preview; ``KeyError`` if it was evicted (register it again)."""
        return self._photos.get_or_compute(key, lambda: _raise_missing(key))

    def surface(self, key: str, params: SurfaceParams) -> np.ndarray:
        return self._views.get_or_compute(
            ("surface", key, params), lambda: surface(self.photo(key), int(params.radius), params.eps)
        )

    def segmentation(self, key: str, params: StructureParams) -> np.ndarray:
        """Merged labels at the preview's size. The segmenter's raw labels are cached apart, so moving "merge to"
        does not re-segment; both run at the working resolution (``params.downsample``) and only the result is
        upsampled."""
        raw_params = replace(params, merge_to=None)
        raw = self._views.get_or_compute(("raw", key, raw_params), lambda: raw_segments(self.photo(key), raw_params))
        labels = raw
        if params.merge_to:
            labels = self._views.get_or_compute(
                ("merged", key, params),
                lambda: merge_regions(working_image(self.photo(key), params), raw, int(params.merge_to)),
            )
        return upsample_labels(labels, self.photo(key).shape[:2])

    def structure(self, key: str, params: StructureParams) -> np.ndarray:
        return self._views.get_or_compute(
            ("structure", key, params), lambda: adaptive_colour(self.photo(key), self.segmentation(key, params))
        )

    def texture(self, key: str, weights: ShiftWeights) -> np.ndarray:
        return self._views.get_or_compute(("texture", key, weights), lambda: texture(self.photo(key), weights))

    def views(
        self, key: str, surface_params: SurfaceParams, structure_params: StructureParams, shift: ShiftWeights
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Surface, structure and texture at once: surface and texture run on a second thread (OpenCV and NumPy
        release the GIL) while the structure, the slowest view, runs on this one."""
        others = _POOL.submit(lambda: (self.surface(key, surface_params), self.texture(key, shift)))
        structure_view = self.structure(key, structure_params)
        surface_view, texture_view = others.result()
        return surface_view, structure_view, texture_view

    def mix(
        self,
        key: str,
        weights: tuple[float, float, float],
        surface_params: SurfaceParams,
        structure_params: StructureParams,
        shift: ShiftWeights,
    ) -> np.ndarray:
        """The white-box mix of the three (cached) views; see :func:`cartoon.representations.whitebox_mix`."""
        return whitebox_mix(
            self.photo(key),
            self.surface(key, surface_params),
            self.structure(key, structure_params),
            self.texture(key, shift),
            weights,
        )


def _raise_missing(key: str) -> np.ndarray:
    raise KeyError(f"photo {key} is no longer cached")
