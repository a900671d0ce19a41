import numpy as np
import pytest
import torch
from scipy import ndimage

from cartoon.representations.structure import (
    MEAN_BELOW,
    MEDIAN_FROM,
    StructureParams,
    adaptive_colour,
    merge_regions,
    segment,
    structure,
    structure_batch,
)


def adaptive_colour_reference(img: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The paper's rule with one Python loop per region (the slow, obvious version)."""
    out = np.zeros_like(img)
    for label in np.unique(labels):
        mask = labels == label
        values = img[mask].astype(np.float64)
        std = values.std()
        mean, median = values.mean(axis=0), np.median(values, axis=0)
        colour = mean if std < MEAN_BELOW else (mean + median) / 2 if std < MEDIAN_FROM else median
        out[mask] = np.clip(np.rint(colour), 0, 255)
    return out


def colours(img: np.ndarray) -> int:
    return len(np.unique(img.reshape(-1, 3), axis=0))


class TestAdaptiveColour:
    def test_matches_per_region_reference(self, photo):
        labels = segment(photo, StructureParams(merge_to=None))
        assert np.array_equal(adaptive_colour(photo, labels), adaptive_colour_reference(photo, labels))

    def test_each_branch_of_the_rule(self):
        rng = np.random.default_rng(0)
        img = np.zeros((30, 30, 3), np.uint8)
        labels = np.zeros((30, 30), np.int64)
        labels[:, 10:20], labels[:, 20:] = 1, 2
        img[:, :10] = 100 + rng.integers(-3, 4, (30, 10, 3))  # std < 20 -> mean
        img[:, 10:20] = rng.choice([60, 100, 150], (30, 10, 3))  # 20 <= std < 40 -> mix
        img[:, 20:] = rng.choice([0, 10, 250], (30, 10, 3), p=[0.5, 0.2, 0.3])  # std >= 40 -> median
        stds = [img[labels == k].std() for k in range(3)]
        assert stds[0] < MEAN_BELOW <= stds[1] < MEDIAN_FROM <= stds[2]
        out = adaptive_colour(img, labels)
        assert np.array_equal(out, adaptive_colour_reference(img, labels))
        region2 = img[labels == 2].astype(float)
        assert np.array_equal(out[0, 25], np.rint(np.median(region2, axis=0)))

    def test_at_most_one_colour_per_region(self, photo):
        labels = segment(photo, StructureParams(merge_to=None))
        assert colours(adaptive_colour(photo, labels)) <= labels.max() + 1

    def test_label_shape_must_match(self, photo):
        with pytest.raises(ValueError, match="do not match"):
            adaptive_colour(photo, np.zeros((3, 3), int))


class TestSegment:
    @pytest.mark.parametrize("params", [StructureParams(), StructureParams(algorithm="slic"), StructureParams(merge_to=None)])
    def test_labels_are_consecutive(self, photo, params):
        labels = segment(photo, params)
        assert labels.shape == photo.shape[:2]
        assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))

    def test_merging_reaches_the_target(self, photo):
        raw = segment(photo, StructureParams(merge_to=None))
        assert raw.max() + 1 > 20
        merged = merge_regions(photo, raw, 20)
        assert merged.max() + 1 == 20
        # Merging only joins whole regions: every original region lies inside one merged region.
        for label in np.unique(raw):
            assert len(np.unique(merged[raw == label])) == 1

    def test_merged_regions_are_connected(self, photo):
        # Felzenszwalb's graph is 8-connected, so are its regions; merging must keep them so.
        merged = segment(photo, StructureParams(merge_to=12, min_size=5))
        for label in range(merged.max() + 1):
            _, parts = ndimage.label(merged == label, structure=np.ones((3, 3)))
            assert parts == 1

    def test_merging_joins_similar_neighbours_first(self):
        img = np.zeros((20, 30, 3), np.uint8)
        img[:, 10:20] = 8  # nearly the same as the left third
        img[:, 20:] = 250
        labels = np.repeat(np.repeat(np.arange(3)[None], 10, axis=1), 20, axis=0)
        merged = merge_regions(img, labels, 2)
        assert merged[0, 0] == merged[0, 15] != merged[0, 25]

    def test_scale_controls_region_count(self, photo):
        few = segment(photo, StructureParams(scale=200, min_size=5, merge_to=None)).max()
        many = segment(photo, StructureParams(scale=1, min_size=5, merge_to=None)).max()
        assert few < many

    def test_value_range_is_uint8_0_255(self, photo):
        # The segmenter sees uint8 (skimage rescales to [0, 1]); the same photo as [0, 1] floats segments identically.
        from skimage.segmentation import felzenszwalb

        params = StructureParams(merge_to=None)
        ours = segment(photo, params)
        theirs = felzenszwalb(photo.astype(np.float64) / 255.0, scale=params.scale, sigma=params.sigma, min_size=params.min_size)
        assert ours.max() == theirs.max()

    @pytest.mark.parametrize(
        "kwargs,match",
        [({"algorithm": "watershed"}, "unknown"), ({"scale": -1}, "scale"), ({"scale": float("inf")}, "scale"),
         ({"min_size": 0}, "min_size"), ({"n_segments": 2.5}, "n_segments"), ({"merge_to": -3}, "merge_to")],
    )
    def test_bad_parameters(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            StructureParams(**kwargs)

    def test_tiny_images(self):
        for shape in [(1, 1, 3), (1, 17, 3), (9, 1, 3)]:
            img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
            for algorithm in ("felzenszwalb", "slic"):
                out = structure(img, StructureParams(algorithm=algorithm))
                assert out.shape == shape


class TestStructure:
    def test_flattens_the_photo(self, photo):
        out = structure(photo)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert colours(out) <= 200 < colours(photo)

    def test_batch_twin_matches(self, photo, wide_photo):
        x = torch.from_numpy(np.stack([photo, photo[::-1]])).permute(0, 3, 1, 2).float() / 127.5 - 1
        out = structure_batch(x)
        assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= -1 and out.max() <= 1
        expected = structure(photo[::-1].copy())
        got = ((out[1].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.jpg"])
def test_fast_felzenszwalb_path_stays_close_to_the_reference(name):
    """The explorer's half-resolution segmentation: structure views within 9 grey levels (mean absolute) of the
    full-resolution reference at 512 px, which is about the change that sigma + 0.1 makes (3-5 levels)."""
    from pathlib import Path

    from cartoon.image import load_image, scale_to_fit

    img = scale_to_fit(load_image(Path(__file__).resolve().parents[2] / "assets" / "examples" / name), long_side=512)
    reference = structure(img, StructureParams()).astype(float)
    fast = structure(img, StructureParams(downsample=2)).astype(float)
    assert np.abs(reference - fast).mean() <= 9.0
    assert np.abs(reference - fast).mean() < np.abs(reference - img).mean()  # closer to the reference than the photo is
