"""The three white-box representations (Wang & Yu 2020, §3) and the explorer's mix.

Each takes and returns ``(H, W, 3)`` uint8 RGB for display; the training twins take ``(B, 3, H, W)`` tensors
in ``[-1, 1]``: :func:`guided_filter` (differentiable), :func:`color_shift` (differentiable) and
:func:`structure_batch` (no gradient, as in the paper).
"""

from cartoon.representations.mix import whitebox_mix
from cartoon.representations.structure import (
    Segmentation,
    StructureParams,
    adaptive_colour,
    merge_regions,
    segment,
    structure,
    structure_batch,
)
from cartoon.representations.surface import guided_filter, guided_filter_numpy, surface
from cartoon.representations.texture import (
    MEAN_WEIGHTS,
    ShiftWeights,
    check_shift_weights,
    color_shift,
    sample_weights,
    texture,
    weights_from_seed,
)

__all__ = [
    "MEAN_WEIGHTS",
    "Segmentation",
    "ShiftWeights",
    "StructureParams",
    "adaptive_colour",
    "check_shift_weights",
    "color_shift",
    "guided_filter",
    "guided_filter_numpy",
    "merge_regions",
    "sample_weights",
    "segment",
    "structure",
    "structure_batch",
    "surface",
    "texture",
    "weights_from_seed",
    "whitebox_mix",
]
