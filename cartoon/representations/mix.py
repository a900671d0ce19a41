"""The white-box mix: a picture of what each representation contributes, for the explorer.

Defined as the weighted average of the three views, ``(w_s S + w_st St + w_t T) / (w_s + w_st + w_t)``
(surface S, structure St, texture T as a 3-channel gray), with the photo shown when all weights are zero.
It is a teaching aid, not the generator: the generator is trained so that its output *scores like* a cartoon
on each representation, with the same three weights scaling the three losses (paper's lambda_1..3).
"""

from __future__ import annotations

import numpy as np

from cartoon.image import check_image


def whitebox_mix(
    photo: np.ndarray,
    surface_view: np.ndarray,
    structure_view: np.ndarray,
    texture_view: np.ndarray,
    weights: tuple[float, float, float],
) -> np.ndarray:
    """Blend the three views by their weights.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB, returned when all weights are zero.
        surface_view, structure_view, texture_view: ``(H, W, 3)`` uint8 RGB views of the same photo.
        weights: ``(surface, structure, texture)``, each finite and >= 0.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Example:
        >>> z = np.zeros((8, 8, 3), np.uint8)
        >>> whitebox_mix(z, z, z, z, (1.0, 1.0, 1.0)).shape
        (8, 8, 3)
    """
    views = [check_image(v, name) for v, name in zip(
        (photo, surface_view, structure_view, texture_view), ("photo", "surface", "structure", "texture")
    )]
    if len({v.shape for v in views}) != 1:
        raise ValueError(f"views differ in size: {[v.shape for v in views]}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (3,) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"mix weights must be three finite numbers >= 0, got {weights!r}")
    if w.sum() == 0:
        return photo.copy()
    w = (w / w.sum()).astype(np.float32)
    blend = w[0] * surface_view.astype(np.float32)
    blend += w[1] * structure_view.astype(np.float32)
    blend += w[2] * texture_view.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
