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
    gaussian_blur,
    rgb_to_lab,
    slic_grid,
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


def test_each_pixel_joins_the_nearest_centre_of_its_search_window(photos):
    """One k-means assignment from the seeds, checked against distances in float64: every pixel takes the seed
    nearest in (Lab / compactness, position / S) among the cells within one of its own (the local window)."""
    img = photos[0][:61, :83]  # sizes that the grid does not divide
    x = to_tensor(img)
    n_segments, compactness = 24, 10.0
    labels = slic_labels(x, n_segments, compactness=compactness, sigma=0.8, iterations=1, smoothing=0)[0].reshape(-1)
    grid_h, grid_w = slic_grid(61, 83, n_segments)
    cell_h, cell_w = 61 / grid_h, 83 / grid_w
    lab = gaussian_blur(rgb_to_lab(to_uint8_values(x)), 0.8)[0].double()
    ys, xs = torch.meshgrid(torch.arange(61.0), torch.arange(83.0), indexing="ij")
    features = torch.cat([lab / compactness, torch.stack([ys, xs]).double() / max(cell_h, cell_w)]).reshape(5, -1)
    cell_y = torch.clamp((torch.arange(61, dtype=torch.float32) / cell_h).long(), max=grid_h - 1)
    cell_x = torch.clamp((torch.arange(83, dtype=torch.float32) / cell_w).long(), max=grid_w - 1)
    seed_y = ((torch.arange(grid_h) + 0.5) * cell_h).long()
    seed_x = ((torch.arange(grid_w) + 0.5) * cell_w).long()
    seeds = features.view(5, 61, 83)[:, seed_y[:, None], seed_x[None, :]].reshape(5, -1)  # (5, K)
    distance = ((features[:, :, None] - seeds[:, None, :]) ** 2).sum(0)  # (N, K)
    pixel_cy, pixel_cx = cell_y[:, None].expand(61, 83).reshape(-1), cell_x[None, :].expand(61, 83).reshape(-1)
    seed_cy, seed_cx = torch.arange(grid_h * grid_w) // grid_w, torch.arange(grid_h * grid_w) % grid_w
    outside = ((pixel_cy[:, None] - seed_cy[None]).abs() > 1) | ((pixel_cx[:, None] - seed_cx[None]).abs() > 1)
    distance[outside] = float("inf")
    chosen = distance.gather(1, labels[:, None])[:, 0]
    assert torch.isfinite(chosen).all()  # every label lies in the pixel's window
    assert (chosen - distance.min(dim=1).values <= 1e-4 * chosen.clamp_min(1)).all()  # the nearest (float32 ties)


def test_each_image_of_a_batch_is_segmented_as_alone(photos):
    batch = np.stack([img[:70, :90] for img in photos[:3]])
    together = slic_labels(to_tensor(batch), 30)
    for index, img in enumerate(batch):
        assert torch.equal(together[index], slic_labels(to_tensor(img), 30)[0])


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


def test_majority_filter_is_the_vote_of_each_3x3_neighbourhood():
    """Against a per-pixel count (edge pixels repeated outward): the centre keeps its label when no label has more
    votes, else the most frequent one wins (the first in the window's row-major order on a tie)."""
    labels = torch.randint(0, 4, (2, 7, 9), generator=torch.Generator().manual_seed(0))
    padded = np.pad(labels.numpy(), ((0, 0), (1, 1), (1, 1)), mode="edge")
    expected = np.empty_like(labels.numpy())
    for b, i, j in np.ndindex(*labels.shape):
        window = padded[b, i : i + 3, j : j + 3].reshape(-1)
        votes = [(window == label).sum() for label in window]
        expected[b, i, j] = window[4] if votes[4] >= max(votes) else window[int(np.argmax(votes))]
    filtered = majority_filter(labels)
    assert filtered.dtype == torch.int64 and np.array_equal(filtered.numpy(), expected)
    assert not torch.equal(filtered, labels)  # random labels: the filter does change some


def test_device_constants_are_made_once_per_device_and_dtype():
    from cartoon.device import device_constant

    matrix = ((1.0, 2.0), (3.0, 4.5))
    first = device_constant(matrix, torch.device("cpu"), torch.float32)
    assert first is device_constant(matrix, torch.device("cpu"), torch.float32)  # no new copy per call
    assert torch.equal(first, torch.tensor(matrix))
    as_double = device_constant(matrix, torch.device("cpu"), torch.float64)
    assert as_double.dtype == torch.float64 and as_double is not first


@pytest.mark.parametrize("flags", [{"fp32_precision": "tf32"}, {"allow_tf32": True}])
def test_slic_distances_use_full_float32_matrix_products_whatever_the_setting(monkeypatch, flags):
    """TF32 (10-bit mantissas) would reorder near centres; the assignment's matrix product turns it off for itself
    and restores the caller's setting, through torch 2.9's setting or, on older releases, allow_tf32."""
    from types import SimpleNamespace

    from cartoon.representations import structure_torch

    matmul = SimpleNamespace(**flags)
    monkeypatch.setattr(torch.backends.cuda, "matmul", matmul)
    (name, before), = flags.items()
    with structure_torch._exact_float32_matmul():
        assert getattr(matmul, name) in ("ieee", False)
    assert getattr(matmul, name) == before
