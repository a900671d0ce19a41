import numpy as np
import pytest
import torch

from cartoon.representations.surface import guided_filter, guided_filter_numpy, surface


def box_mean_reference(v: np.ndarray, r: int) -> np.ndarray:
    """Naive float64 box mean over real pixels only: loops, no library filter."""
    height, width = v.shape[:2]
    out = np.empty_like(v, dtype=np.float64)
    for i in range(height):
        for j in range(width):
            window = v[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1]
            out[i, j] = window.reshape(-1, *v.shape[2:]).mean(axis=0)
    return out


def guided_filter_reference(x: np.ndarray, y: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The authors' per-channel formula (whitebox.md) in float64 on (H, W, C) arrays."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mean_x, mean_y = box_mean_reference(x, r), box_mean_reference(y, r)
    cov = box_mean_reference(x * y, r) - mean_x * mean_y
    var = box_mean_reference(x * x, r) - mean_x**2
    a = cov / (var + eps)
    b = mean_y - a * mean_x
    return box_mean_reference(a, r) * x + box_mean_reference(b, r)


def hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).double().numpy()


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 13, 17, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(1, 3, 13, 17, generator=g)).clamp(-1, 1)
    return x, y


class TestGuidedFilter:
    @pytest.mark.parametrize("r,eps", [(1, 5e-3), (2, 1e-2), (5, 0.2), (0, 0.1)])
    def test_torch_matches_reference_borders_included(self, pair, r, eps):
        x, y = pair
        expected = guided_filter_reference(hwc(x), hwc(y), r, eps)
        got = hwc(guided_filter(x, y, r, eps))
        assert np.abs(got - expected).max() <= 1e-5

    @pytest.mark.parametrize("r,eps", [(1, 5e-3), (5, 0.2)])
    def test_numpy_path_matches_reference(self, pair, r, eps):
        x, y = pair
        expected = guided_filter_reference(hwc(x), hwc(y), r, eps)
        got = guided_filter_numpy(hwc(x).astype(np.float32), hwc(y).astype(np.float32), r, eps)
        assert got.dtype == np.float32
        assert np.abs(got - expected).max() <= 1e-5

    @pytest.mark.parametrize("r,eps", [(1, 5e-3), (5, 0.2)])
    def test_numpy_self_guided_path_matches_reference(self, pair, r, eps):
        x = hwc(pair[0]).astype(np.float32)
        expected = guided_filter_reference(x, x, r, eps)
        assert np.abs(guided_filter_numpy(x, x, r, eps) - expected).max() <= 1e-5

    def test_real_photo_paths_agree(self, photo):
        x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
        torch_out = hwc(guided_filter(x, x, 5, 0.2))
        numpy_out = guided_filter_numpy(hwc(x).astype(np.float32), hwc(x).astype(np.float32), 5, 0.2)
        assert np.abs(torch_out - numpy_out).max() <= 1e-5

    @pytest.mark.parametrize("r,eps", [(1, 5e-3), (5, 0.2)])
    def test_autograd_and_opencv_paths_agree_on_a_batch(self, r, eps):
        """Without autograd on the CPU the filter runs through OpenCV; with it, through torch: same values."""
        g = torch.Generator().manual_seed(1)
        x = torch.rand(2, 3, 21, 30, generator=g) * 2 - 1
        y = (x + 0.3 * torch.randn(2, 3, 21, 30, generator=g)).clamp(-1, 1)
        for guide, source in ((x, y), (x, x)):  # guided, and self-guided (the surface representation)
            fast = guided_filter(guide, source, r, eps)
            slow = guided_filter(guide.clone().requires_grad_(), source, r, eps)
            assert slow.requires_grad and not fast.requires_grad
            assert fast.shape == source.shape and fast.dtype == source.dtype
            assert (fast - slow.detach()).abs().max() <= 1e-5

    def test_one_channel_guide(self, pair):
        x, y = pair
        gray = x.mean(dim=1, keepdim=True)
        expected = guided_filter_reference(np.repeat(hwc(gray), 3, axis=2), hwc(y), 2, 1e-2)
        assert np.abs(hwc(guided_filter(gray, y, 2, 1e-2)) - expected).max() <= 1e-5

    def test_constant_image_stays_constant(self):
        x = torch.full((2, 3, 9, 11), 0.37)
        out = guided_filter(x, x, 3, 1e-2)
        assert torch.allclose(out, x, atol=1e-6)
        assert np.allclose(guided_filter_numpy(x[0].permute(1, 2, 0).numpy(), x[0].permute(1, 2, 0).numpy(), 3, 1e-2), 0.37, atol=1e-6)

    def test_huge_eps_gives_box_mean(self, pair):
        # eps -> inf: A -> 0, b -> box(y), so out -> box(box(y)): the box mean of the box mean.
        x, y = pair
        out = hwc(guided_filter(x, y, 2, 1e12))
        assert np.abs(out - box_mean_reference(box_mean_reference(hwc(y), 2), 2)).max() <= 1e-5

    def test_radius_larger_than_image_is_the_whole_image_window(self, pair):
        x, y = pair
        assert torch.allclose(guided_filter(x, y, 1000, 0.1), guided_filter(x, y, 16, 0.1), atol=1e-6)

    def test_batched_and_noncontiguous(self, pair):
        x, y = pair
        xb = torch.cat([x, x.flip(-1)]).transpose(-1, -2).contiguous().transpose(-1, -2)
        yb = torch.cat([y, y.flip(-1)])
        out = guided_filter(xb, yb, 2, 1e-2)
        assert torch.allclose(out[0:1], guided_filter(x, y, 2, 1e-2), atol=1e-6)

    def test_gradcheck(self):
        g = torch.Generator().manual_seed(1)
        x = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
        y = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b: guided_filter(a, b, 1, 1e-2), (x, y))

    @pytest.mark.parametrize("r,eps", [(1, 5e-3), (5, 0.2)])
    def test_self_guided_torch_path_matches_reference_with_its_gradient(self, pair, r, eps):
        """``guided_filter(x, x)`` (the surface representation in training) box-filters half the maps: the same
        values as the reference, and gradients that finite differences confirm (float64)."""
        x = pair[0].clone().requires_grad_()
        out = guided_filter(x, x, r, eps)
        assert out.requires_grad  # the torch path, not OpenCV's
        expected = guided_filter_reference(hwc(x.detach()), hwc(x.detach()), r, eps)
        assert np.abs(hwc(out.detach()) - expected).max() <= 1e-5
        small = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
        assert torch.autograd.gradcheck(lambda a: guided_filter(a, a, r, eps), (small.requires_grad_(),))

    @pytest.mark.parametrize("r,eps", [(0, 0.1), (1, 5e-3), (5, 0.2), (30, 0.1)])
    @pytest.mark.parametrize("guide_channels", [3, 1])
    def test_written_out_backward_with_a_constant_guide(self, r, eps, guide_channels):
        """Training filters G's output guided by the photo: the written-out gradient with respect to the input
        against finite differences (float64), and against autograd through the forward's own ops (float32)."""
        from cartoon.representations.surface import _guided_filter_forward

        g = torch.Generator().manual_seed(3)
        guide = torch.rand(2, guide_channels, 9, 11, generator=g, dtype=torch.float64) * 2 - 1
        y = (torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
        assert guided_filter(guide, y, r, eps).grad_fn.name() == "_GuidedFilterBackwardBackward"
        assert torch.autograd.gradcheck(lambda b: guided_filter(guide, b, r, eps), (y,))
        weights = torch.randn(2, 3, 9, 11, generator=g)
        for self_guided in (False, True):
            source = y.detach().float().requires_grad_()
            x = source if self_guided else guide.float()
            (written,) = torch.autograd.grad((guided_filter(x, source, r, eps) * weights).sum(), source)
            (autograd,) = torch.autograd.grad((_guided_filter_forward(x, source, r, eps)[0] * weights).sum(), source)
            assert torch.allclose(written, autograd, atol=1e-6 * autograd.abs().max())
        mixed = guided_filter(guide.bfloat16(), y.float(), r, eps)  # a guide of another dtype: autograd's pass
        assert mixed.grad_fn.name() != "_GuidedFilterBackwardBackward"
        (mixed_gradient,) = torch.autograd.grad(mixed.sum(), y)
        assert mixed_gradient.dtype == torch.float64 and torch.isfinite(mixed_gradient).all()

    def test_bfloat16_close(self, pair):
        x, y = pair
        out = guided_filter(x.bfloat16(), y.bfloat16(), 1, 5e-3)
        assert out.dtype == torch.bfloat16
        assert (out.float() - guided_filter(x, y, 1, 5e-3)).abs().max() < 0.05

    @pytest.mark.parametrize("r,eps,match", [(-1, 0.1, "radius"), (1.5, 0.1, "radius"), (1, 0.0, "eps"), (1, float("nan"), "eps")])
    def test_bad_arguments(self, pair, r, eps, match):
        x, y = pair
        with pytest.raises(ValueError, match=match):
            guided_filter(x, y, r, eps)

    def test_bad_shapes(self, pair):
        x, y = pair
        with pytest.raises(ValueError, match="differ"):
            guided_filter(x, y[..., :-1], 1, 0.1)
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            guided_filter(x[0], y[0], 1, 0.1)


class TestSurface:
    def test_uint8_contract(self, photo):
        out = surface(photo)
        assert out.shape == photo.shape and out.dtype == np.uint8

    def test_smooths_but_keeps_mean(self, photo):
        out = surface(photo).astype(float)
        lap = lambda a: np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
        assert lap(out) < 0.8 * lap(photo.astype(float))
        assert abs(out.mean() - photo.mean()) < 2.0

    def test_rejects_non_contract_input(self):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            surface(np.zeros((4, 4, 4), np.uint8))
