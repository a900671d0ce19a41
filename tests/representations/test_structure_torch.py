"""The batched torch structure path against the scikit-image / NumPy one, on the example photos (run on the CPU;
the same code runs on CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation
from skimage.segmentation import find_boundaries, slic

from cartoon.image import load_image, scale_to_fit, to_tensor, to_uint8
from cartoon.representations.structure import StructureParams, adaptive_colour
from cartoon.representations.structure_torch import (
    adaptive_colour_batch,
    majority_filter,
    rgb_to_lab,
    slic_labels,
    structure_batch_device,
    to_uint8_values,
)

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "assets" / "examples").glob("*.jpg"))


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [scale_to_fit(load_image(path), long_side=192) for path in EXAMPLES]


def boundary_recall(reference: np.ndarray, ours: np.ndarray, tolerance: int = 2) -> float:
    """Share of the reference's boundary pixels within ``tolerance`` pixels of one of ours."""
    wanted = find_boundaries(reference, mode="thick")
    near = binary_dilation(find_boundaries(ours, mode="thick"), iterations=tolerance)
    return float((wanted & near).sum() / wanted.sum())


def test_lab_matches_scikit_image():
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].long())[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - rgb2lab(rgb)).max() < 1e-3


@pytest.mark.parametrize("n_segments", [50, 200])
def test_segment_count_is_near_the_request(photos, n_segments):
    for img in photos:
        count = len(np.unique(slic_labels(to_tensor(img), n_segments)[0].numpy()))
        assert abs(count - n_segments) <= 0.25 * n_segments, (count, n_segments)


def test_boundaries_follow_scikit_images_slic(photos):
    recalls = []
    for img in photos:
        ours = slic_labels(to_tensor(img), 200, compactness=10, sigma=0.8)[0].numpy()
        reference = slic(img, n_segments=200, compactness=10, sigma=0.8, convert2lab=True, start_label=0)
        recalls.append(boundary_recall(reference, ours))
    assert min(recalls) >= 0.8, recalls


def test_every_region_gets_exactly_the_numpy_rules_colour(photos):
    batch = np.stack([img[:128, :128] for img in photos[:4]])
    x = to_tensor(batch)
    labels = slic_labels(x, 100)
    colours = adaptive_colour_batch(to_uint8_values(x), labels).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    for img, label, colour in zip(batch, labels.numpy(), colours):
        assert np.array_equal(colour, adaptive_colour(img, label))  # float64 reference, exact


def test_structure_batch_device_keeps_the_contract(photos):
    batch = np.stack([img[:96, :128] for img in photos[:3]])
    x = to_tensor(batch).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    out = structure_batch_device(x, StructureParams(algorithm="slic", n_segments=60))
    assert out.shape == x.shape and out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    images = to_uint8(out.float())
    for img in images:  # flat regions: at most one colour per superpixel
        assert len(np.unique(img.reshape(-1, 3), axis=0)) <= 60 * 1.25
    with pytest.raises(ValueError, match="SLIC only"):
        structure_batch_device(x, StructureParams(algorithm="felzenszwalb"))


def test_majority_filter_removes_specks_and_keeps_regions():
    labels = torch.zeros(1, 9, 9, dtype=torch.long)
    labels[:, :, 5:] = 1
    speckled = labels.clone()
    speckled[0, 2, 2] = 7  # a one-pixel island
    assert torch.equal(majority_filter(speckled), labels)
    assert torch.equal(majority_filter(labels), labels)


def test_device_constants_are_made_once_per_device_and_dtype():
    from cartoon.device import device_constant

    matrix = ((1.0, 2.0), (3.0, 4.5))
    first = device_constant(matrix, torch.device("cpu"), torch.float32)
    assert first is device_constant(matrix, torch.device("cpu"), torch.float32)  # no new copy per call
    assert torch.equal(first, torch.tensor(matrix))
    as_double = device_constant(matrix, torch.device("cpu"), torch.float64)
    assert as_double.dtype == torch.float64 and as_double is not first
