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
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from cartoon.image import check_image, scale_to_fit
from cartoon.representations import (
    MEAN_WEIGHTS,
    Segmentation,
    ShiftWeights,
    StructureParams,
    adaptive_colour,
    check_shift_weights,
    surface,
    texture,
    whitebox_mix,
)
from cartoon.representations.surface import SURFACE_EPS, SURFACE_RADIUS

PREVIEW_LONG_SIDE = 512
EXPLORER_STRUCTURE_DOWNSAMPLE = 2
"""The explorer segments Felzenszwalb at half the preview's resolution (about 6x faster; see StructureParams);
SLIC, already fast, at full preview resolution. Applied in :meth:`ViewParams.from_values` only."""
T = TypeVar("T")
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explorer")


@dataclass(frozen=True)
class SurfaceParams:
    """Guided-filter parameters of the surface view (paper: r=5, eps=0.2 on [-1, 1] values)."""

    radius: int = SURFACE_RADIUS
    eps: float = SURFACE_EPS

    def __post_init__(self) -> None:
        if not np.isfinite(self.radius) or int(self.radius) != self.radius or not 0 <= self.radius <= 256:
            raise ValueError(f"surface radius must be a whole number in [0, 256], got {self.radius!r}")
        if not np.isfinite(self.eps) or not 0 < self.eps <= 100:
            raise ValueError(f"surface eps must be a number in (0, 100], got {self.eps!r}")


@dataclass(frozen=True)
class ViewParams:
    """Everything the explorer's views depend on, parsed and checked from the page's flat control values.

    Attributes:
        weights: the mix weights ``(surface, structure, texture)``, each finite and >= 0.
        surface: the guided filter's radius and eps.
        structure: the segmentation (with the explorer's preview downsampling applied).
        shift: the colour-shift channel weights.
    """

    weights: tuple[float, float, float]
    surface: SurfaceParams
    structure: StructureParams
    shift: ShiftWeights

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "ViewParams":
        """Parse control values by name (:data:`CONTROL_NAMES`; missing ones take :data:`DEFAULT_VALUES`).

        Values may come from any client (strings, None, huge numbers): every one is converted and checked here
        and in the parameter classes, and a bad one raises ``ValueError`` naming it.
        """
        unknown = set(values) - set(CONTROL_NAMES)
        if unknown:
            raise ValueError(f"unknown explorer parameters {sorted(unknown)}; known: {list(CONTROL_NAMES)}")
        v = {**DEFAULT_VALUES, **values}
        weights = tuple(_number(name, v[name]) for name in ("surface_weight", "structure_weight", "texture_weight"))
        for name, weight in zip(("surface_weight", "structure_weight", "texture_weight"), weights):
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v[name]!r}")
        algorithm = v["algorithm"]
        return cls(
            weights=weights,  # type: ignore[arg-type]
            surface=SurfaceParams(_whole("radius", v["radius"]), _number("eps", v["eps"])),
            structure=StructureParams(
                algorithm=algorithm,
                scale=_number("scale", v["scale"]),
                sigma=_number("sigma", v["sigma"]),
                min_size=_whole("min_size", v["min_size"]),
                n_segments=_whole("n_segments", v["n_segments"]),
                merge_to=_whole("merge_to", v["merge_to"]),
                downsample=EXPLORER_STRUCTURE_DOWNSAMPLE if algorithm == "felzenszwalb" else 1,
            ),
            shift=check_shift_weights(tuple(_number(name, v[name]) for name in ("red", "green", "blue"))),
        )


_STRUCTURE = StructureParams()
DEFAULT_VALUES: dict[str, float | int | str] = {
    "surface_weight": 1.0,
    "structure_weight": 1.0,
    "texture_weight": 1.0,
    "radius": SURFACE_RADIUS,
    "eps": SURFACE_EPS,
    "algorithm": _STRUCTURE.algorithm,
    "scale": _STRUCTURE.scale,
    "sigma": _STRUCTURE.sigma,
    "min_size": _STRUCTURE.min_size,
    "n_segments": _STRUCTURE.n_segments,
    "merge_to": _STRUCTURE.merge_to or 0,
    "red": round(MEAN_WEIGHTS.red, 3),
    "green": round(MEAN_WEIGHTS.green, 3),
    "blue": round(MEAN_WEIGHTS.blue, 3),
}
"""The explorer's controls and their defaults (the paper's values), in the page's order: the one list the app's
sliders, its API signature, the tests and the benchmarks are built from."""
CONTROL_NAMES: tuple[str, ...] = tuple(DEFAULT_VALUES)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _whole(name: str, value: Any) -> int | float:
    """A number that should be whole: an int when it is (so equal parameters hash alike), else the float, which
    the parameter class then refuses with its range in the message."""
    number = _number(name, value)
    return int(number) if number.is_integer() else number


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
        """Labels at the preview's size. The segmenter's raw :class:`Segmentation` is cached apart from its
        merged versions, so moving "merge to" does not re-segment."""
        raw = self._views.get_or_compute(("raw", key, replace(params, merge_to=None)),
                                         lambda: Segmentation.of(self.photo(key), params))
        merged = raw
        if params.merge_to:
            merged = self._views.get_or_compute(("merged", key, params), lambda: raw.merged(params.merge_to))
        return merged.labels_full()

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
