import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from train import checkpoints
from train.data import ImageFolder, split_held_out
from train.evaluate import colour_cast, colour_noise
from train.losses import (cast_loss, chroma_variation, colour_loss, discriminator_loss, feature_l1, grey_variation, lsgan_loss,
                          total_variation)
from train.perceptual import CAFFE_MEAN_BGR, VGG16_CONV4_3, load_perceptual, resolve_kind


def test_lsgan_terms():
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert lsgan_loss(ones, True) == 0 and lsgan_loss(zeros, False) == 0 and lsgan_loss(zeros, True) == 1
    assert discriminator_loss(ones, zeros) == 0 and discriminator_loss(zeros, ones) == 1


def test_feature_l1_is_normalised_by_feature_size():
    a, b = torch.zeros(1, 4, 2, 3), torch.ones(1, 4, 2, 3)
    assert torch.isclose(feature_l1(a, b), torch.tensor(1 / 24))


def test_feature_l1_on_bf16_features_moves_by_rounding_only_and_keeps_its_gradient():
    """The difference is taken in bf16 and summed in float32: the value within bf16 rounding of the float64 one,
    the gradient (the difference's sign over the size) exactly that of the difference taken in float32."""
    torch.manual_seed(0)
    a = torch.randn(2, 64, 8, 8).bfloat16().requires_grad_()
    b = torch.randn(2, 64, 8, 8).bfloat16()
    loss = feature_l1(a, b)
    exact = (a.double() - b.double()).abs().mean() / (64 * 8 * 8)
    assert loss.dtype == torch.float32 and abs(loss.item() / exact.item() - 1) < 2e-3
    (gradient,) = torch.autograd.grad(loss, a)
    (in_float32,) = torch.autograd.grad((a.float() - b.float()).abs().mean() / (64 * 8 * 8), a)
    assert torch.equal(gradient, in_float32)


def test_the_variation_terms_have_their_definitions_gradients():
    """TV (squared) and the priors' L1 variation go through one function with its backward written out: its
    gradient against finite differences (float64), and the losses' against autograd through their definitions."""
    from train.losses import _Variation

    torch.manual_seed(0)
    for squared in (True, False):
        x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, s=squared: _Variation.apply(a, s), (x,))
    x = torch.rand(2, 3, 9, 8, requires_grad=True)

    def l1(v: torch.Tensor) -> torch.Tensor:
        return (v[..., :, 1:] - v[..., :, :-1]).abs().mean() + (v[..., 1:, :] - v[..., :-1, :]).abs().mean()

    definitions = {
        total_variation: lambda v: (((v[..., 1:] - v[..., :-1]) ** 2).mean()
                                    + ((v[..., 1:, :] - v[..., :-1, :]) ** 2).mean()) / (3 * 9 * 8),
        chroma_variation: lambda v: l1(v - v.mean(dim=1, keepdim=True)),
        grey_variation: lambda v: l1(v.mean(dim=1, keepdim=True)),
    }
    for loss, definition in definitions.items():
        (written,) = torch.autograd.grad(loss(x), x)
        (expected,) = torch.autograd.grad(definition(x), x)
        assert torch.allclose(loss(x), definition(x)) and written.abs().sum() > 0
        assert torch.allclose(written, expected, atol=1e-6 * expected.abs().max()), loss.__name__


def test_total_variation_matches_the_authors_form():
    x = torch.rand(2, 3, 5, 7)
    dx = ((x[..., 1:] - x[..., :-1]) ** 2).mean()
    dy = ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean()
    assert torch.isclose(total_variation(x), (dx + dy) / (3 * 5 * 7))
    assert total_variation(torch.full((1, 3, 4, 4), 0.3)) == 0


def test_colour_loss_sees_casts_not_detail():
    photo = torch.rand(2, 3, 32, 32) * 2 - 1
    cast = photo + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)
    assert colour_loss(cast, photo).item() == pytest.approx(2 * 0.1**2 / 3, rel=1e-4)
    checker = (torch.arange(32).view(1, 1, 32, 1) + torch.arange(32).view(1, 1, 1, 32)) % 2 * 0.2 - 0.1
    assert colour_loss(photo + checker, photo).item() < 1e-6  # zero-mean detail inside each 8x8 block is free


def _green_magenta_checker(size: int, amplitude: float) -> torch.Tensor:
    """(1, 3, size, size) chroma checkerboard: green up where red and blue go down; grey level unchanged."""
    checker = (torch.arange(size).view(size, 1) + torch.arange(size).view(1, size)) % 2 * 2.0 - 1
    return amplitude * checker * torch.tensor([-0.5, 1.0, -0.5]).view(1, 3, 1, 1)


def test_chroma_variation_charges_colour_oscillation_not_grey_detail_edges_or_ramps():
    grey = torch.rand(1, 1, 16, 16).expand(2, 3, 16, 16) * 2 - 1
    assert chroma_variation(grey).item() < 1e-7  # any grey pattern is free: that is the texture loss's business
    base = torch.tensor([0.2, -0.1, 0.4]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    red_shift = torch.tensor([0.4, -0.2, -0.2]).view(1, 3, 1, 1)
    step = base + red_shift * (torch.arange(16) >= 8).float().view(1, 1, 1, 16)
    ramp = base + red_shift * (torch.arange(16).float() / 15).view(1, 1, 1, 16)
    assert chroma_variation(step).item() == pytest.approx(chroma_variation(ramp).item(), rel=1e-5)  # L1: same height
    noisy = base + _green_magenta_checker(16, 0.05)
    assert chroma_variation(noisy).item() > 5 * chroma_variation(step).item()  # a faint hatch costs more than an edge
    assert chroma_variation(noisy + 0.3).item() == pytest.approx(chroma_variation(noisy).item(), rel=1e-5)


def test_grey_variation_charges_brightness_oscillation_not_colour_or_edge_sharpness():
    assert grey_variation(_green_magenta_checker(16, 0.3)).item() < 1e-7  # colour at a fixed grey: chroma's business
    columns = torch.arange(16).float().view(1, 1, 1, 16)
    step = (columns >= 8).float().expand(1, 3, 16, 16) * 0.6 - 0.3
    ramp = (columns / 15).expand(1, 3, 16, 16) * 0.6 - 0.3
    assert grey_variation(step).item() == pytest.approx(grey_variation(ramp).item(), rel=1e-5)  # L1: the same height
    assert grey_variation(step).item() == pytest.approx(0.6 / 15, rel=1e-5)  # one edge of 0.6 among 15 differences
    grain = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)).expand(1, 3, 16, 16) * 0.05
    assert grey_variation(grain).item() > 1.5 * grey_variation(step).item()  # faint grain costs more than an edge


def test_colour_noise_flags_chroma_hatching_but_not_grey_detail():
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(128, 30, (32, 32, 1)) + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
    hatch = (_green_magenta_checker(32, 20.0)[0].permute(1, 2, 0).numpy()).round()
    grey_detail = (_green_magenta_checker(32, 20.0)[0, 1:2].permute(1, 2, 0).numpy()).round()
    assert colour_noise(photo, photo) == pytest.approx(1.0)
    assert colour_noise(photo, np.clip(photo + hatch, 0, 255).astype(np.uint8)) > 10
    assert colour_noise(photo, np.clip(photo + grey_detail, 0, 255).astype(np.uint8)) < 1.5


def test_colour_cast_is_the_largest_channel_mean_shift():
    rng = np.random.default_rng(1)
    photo = rng.integers(40, 200, (24, 24, 3), dtype=np.uint8)
    warmer = photo.astype(np.int16) + np.array([6, 2, -3])
    assert colour_cast(photo, photo) == 0.0
    assert colour_cast(photo, warmer.astype(np.uint8)) == pytest.approx(6.0)
    assert colour_cast(photo, photo[::-1, ::-1]) == pytest.approx(0.0)  # moving pixels around is no cast


def test_cast_loss_charges_a_shift_of_the_whole_patch_not_local_colour():
    photo = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert cast_loss(photo, photo).item() == 0.0
    shift = torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1)
    assert cast_loss(photo + shift, photo).item() == pytest.approx((0.1**2 + 0.05**2) / 3, rel=1e-5)
    recoloured = photo + _green_magenta_checker(16, 0.4)  # strong local colour change, same channel means
    assert cast_loss(recoloured, photo).item() < 1e-10 < colour_loss(recoloured, photo, pool=1).item()
    assert cast_loss(photo.flip(-1), photo).item() < 1e-12  # pixels moved about: no cast


def test_vgg16_loader_uses_caffe_convention(tmp_path):
    from torchvision.models import vgg16

    features = vgg16(weights=None).features[:VGG16_CONV4_3]  # torchvision's own: the loader's keys must match it
    state = {k: torch.zeros_like(v) for k, v in features.state_dict().items()}
    save_file(state, tmp_path / "vgg16.safetensors")
    net = load_perceptual("vgg16", tmp_path / "vgg16.safetensors")
    assert not any(p.requires_grad for p in net.parameters())
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 8, 8)
    # The first layer sees BGR, 0-255, mean subtracted: check through a 1x1 probe.
    net.features = torch.nn.Identity()
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # R=-1 -> 0, G=0 -> 127.5, B=1 -> 255
    expected = torch.tensor([255 - CAFFE_MEAN_BGR[0], 127.5 - CAFFE_MEAN_BGR[1], 0 - CAFFE_MEAN_BGR[2]])
    assert torch.allclose(net(x).flatten(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vgg16_pools_before_its_relus_with_the_same_features_and_gradients(tmp_path, dtype):
    """The loader runs each ReLU after the max-pool that follows it (a quarter of the pixels): the features and
    the input's gradient equal torchvision's layer order exactly, and the state dict's keys are the same."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    reference = make_layers(cfgs["D"])[:VGG16_CONV4_3]  # VGG16's features, without building its classifier
    save_file(reference.state_dict(), tmp_path / "vgg16.safetensors")
    net = load_perceptual("vgg16", tmp_path / "vgg16.safetensors").to(dtype)
    assert net.features.state_dict().keys() == reference.state_dict().keys()
    kinds = [type(layer).__name__ for layer in net.features]
    assert kinds[3:5] == ["MaxPool2d", "ReLU"] and kinds.count("ReLU") == 9  # conv1_2's pool comes first now
    reference.to(dtype).requires_grad_(False)
    x = (torch.rand(2, 3, 48, 40) * 255 - 120).to(dtype)  # what the layers see: Caffe's BGR, mean subtracted
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, expected = net.features(ours), reference(theirs)
    assert torch.equal(got, expected)
    weights = torch.randn(got.shape, dtype=dtype)
    (got * weights).float().sum().backward()
    (expected * weights).float().sum().backward()
    assert ours.grad.abs().sum() > 0 and torch.equal(ours.grad, theirs.grad)


def test_auto_perceptual_resolves_to_the_network_its_weights_hold(tmp_path):
    """Runs save the resolved name (the model card says what was used, not "auto")."""
    assert resolve_kind("auto", tmp_path / "vgg19_features.safetensors") == "vgg19"
    assert resolve_kind("auto", tmp_path / "vgg16_conv4_3_fp16.safetensors") == "vgg16"
    assert resolve_kind("tiny", tmp_path / "vgg19.safetensors") == "tiny"  # an explicit choice stays


def test_missing_vgg_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="extract-vgg"):
        load_perceptual("vgg16", tmp_path / "missing.safetensors")


def test_extract_vgg_maps_keras_names_to_torchvision(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from train.extract_vgg import KERAS_CONV_NAMES, SHAPES, TORCHVISION_CONV_INDEX, extract

    rng = np.random.default_rng(0)
    initializers, expected = [], {}
    for index, name, (out_c, in_c) in zip(TORCHVISION_CONV_INDEX, KERAS_CONV_NAMES, SHAPES):
        kernel = rng.standard_normal((out_c, in_c, 3, 3)).astype(np.float32) if out_c <= 128 else np.full((out_c, in_c, 3, 3), index, np.float32)
        bias = rng.standard_normal(out_c).astype(np.float32)
        initializers += [numpy_helper.from_array(kernel, f"functional_1/{name}_1/convolution/ReadVariableOp:0"),
                         numpy_helper.from_array(bias, f"functional_1/{name}_1/Squeeze:0")]
        expected[f"{index}.weight"], expected[f"{index}.bias"] = kernel, bias
    initializers.append(numpy_helper.from_array(np.zeros((256, 4), np.float32), "functional_1/dense_3_1/Cast/ReadVariableOp:0"))
    graph = helper.make_graph([], "vgg", [], [], initializer=initializers)
    path = tmp_path / "vgg.onnx"
    onnx.save(helper.make_model(graph), str(path))
    state = extract(path, tmp_path / "out.safetensors")
    assert sorted(state) == sorted(expected)
    assert all(np.array_equal(state[k].numpy(), v) for k, v in expected.items())


def test_held_out_split_is_deterministic(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(10)]
    train_a, held_a = split_held_out(paths, 3)
    train_b, held_b = split_held_out(list(reversed(paths)), 3)
    assert sorted(held_a) == sorted(held_b) and len(held_a) == 3 and not set(held_a) & set(train_a)


def test_sampling_is_reproducible_and_in_range():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    folder = ImageFolder("x", [torch.from_numpy(image)], [])
    a = folder.sample(3, 16, torch.Generator().manual_seed(1))
    b = folder.sample(3, 16, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 3, 16, 16) and a.min() >= -1 and a.max() <= 1
    # Every sample is a crop of the image, flipped or not, at the exact pixel values.
    crops = np.rint((a.permute(0, 2, 3, 1).numpy() + 1) * 127.5).astype(np.uint8)
    windows = [image[t : t + 16, l : l + 16] for t in range(25) for l in range(35)]
    for crop in crops:
        assert any(np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows)


def test_optimizer_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.99))
    model(torch.rand(4, 3)).sum().backward()
    opt.step()
    tensors, meta = checkpoints.flatten_optimizer(opt, "g")
    other = torch.optim.Adam(model.parameters(), lr=5.0)
    checkpoints.restore_optimizer(other, "g", tensors, meta)
    a, b = opt.state_dict(), other.state_dict()
    assert b["param_groups"][0]["lr"] == 1e-3 and b["param_groups"][0]["betas"] == (0.5, 0.99)
    assert all(torch.equal(a["state"][0][k], b["state"][0][k]) for k in a["state"][0])


def test_a_restored_optimizer_keeps_its_own_implementation():
    """A checkpoint's moments and hyper-parameters, but the live optimiser's way of computing (a CPU run continued
    on a GPU keeps fused Adam; a CUDA-graph run keeps capturable): what the checkpoint saved of that is not taken."""
    model = torch.nn.Linear(3, 2)
    saved = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    model(torch.rand(4, 3)).sum().backward()
    saved.step()
    tensors, meta = checkpoints.flatten_optimizer(saved, "g")
    live = torch.optim.Adam(model.parameters(), lr=5.0, foreach=True, differentiable=False)
    checkpoints.restore_optimizer(live, "g", tensors, meta)
    group = live.param_groups[0]
    assert group["foreach"] is True and group["lr"] == 1e-3
    assert torch.equal(live.state[model.weight]["exp_avg"], saved.state[model.weight]["exp_avg"])


def test_feature_cache_embeds_each_crop_set_once_and_recomputes_what_it_cannot_read(tmp_path, monkeypatch):
    """Evaluation features are kept by the crops' content and the network's weights; a cached set gives the same
    features as embedding it; a corrupt entry is computed again; nothing half-written stays in the folder."""
    from train import evaluate
    from train.perceptual import tiny_features

    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"weights one")
    calls = []
    real_embed = evaluate.embed
    monkeypatch.setattr(evaluate, "embed", lambda net, crops: calls.append(len(crops)) or real_embed(net, crops))
    crops = np.random.default_rng(0).integers(0, 256, (3, evaluate.CROP, evaluate.CROP, 3), dtype=np.uint8)
    cache = evaluate.FeatureCache(tiny_features(), weights, tmp_path / "cache")
    first = cache(crops)
    again = cache(crops.copy())
    assert calls == [3] and (cache.hits, cache.misses) == (1, 1) and again.dtype == np.float64
    assert np.array_equal(first, again) and np.array_equal(first, real_embed(tiny_features(), crops))
    changed = crops.copy()
    changed[0, 0, 0, 0] ^= 1
    cache(changed)  # one pixel differs: another entry
    assert calls == [3, 3]
    entries = sorted((tmp_path / "cache").iterdir())
    assert len(entries) == 2 and all(entry.suffix == ".npy" for entry in entries)
    entries[0].write_bytes(b"not an array")
    entries[1].write_bytes(b"not an array")
    assert np.array_equal(cache(crops), first) and calls == [3, 3, 3]  # unreadable: embedded again, rewritten
    weights.write_bytes(b"weights two")  # other weights: other features, so no hit
    evaluate.FeatureCache(tiny_features(), weights, tmp_path / "cache")(crops)
    assert calls == [3, 3, 3, 3]
    assert not list((tmp_path / "cache").glob("*.partial"))
    assert evaluate.FeatureCache(tiny_features(), weights, None)(crops).shape == first.shape and len(calls) == 5


def test_frechet_distance_is_zero_for_the_same_set_and_grows_with_the_mean_shift():
    from train.evaluate import frechet_distance

    features = np.random.default_rng(0).normal(size=(300, 8))
    assert abs(frechet_distance(features, features)) < 1e-9
    # Same covariance, every mean moved by 1 in 8 dimensions: the distance is the squared shift, 8.
    assert frechet_distance(features, features + 1) == pytest.approx(8, abs=1e-6)
    # Different covariances: the textbook form with a general matrix square root gives the same value.
    from scipy import linalg

    other = np.random.default_rng(1).normal(size=(300, 8)) @ np.random.default_rng(2).normal(size=(8, 8)) + 0.5
    cov_a, cov_b = np.cov(features, rowvar=False), np.cov(other, rowvar=False)
    shift = ((features.mean(0) - other.mean(0)) ** 2).sum()
    textbook = shift + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(features, other) == pytest.approx(textbook, rel=1e-9)


def test_diff_augment_is_differentiable_and_keeps_shapes():
    from train.augment import DEFAULT_POLICY, diff_augment, parse_policy

    policy = parse_policy(DEFAULT_POLICY)
    for channels in (3, 1):  # the surface and the texture discriminators' inputs
        x = (torch.rand(4, channels, 32, 32) * 2 - 1).requires_grad_()
        y = diff_augment(x, policy, torch.Generator().manual_seed(0))
        assert y.shape == x.shape
        (y * torch.randn_like(y)).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment(x, ()) is x
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_policy("color,rotate")


def test_diff_augment_computes_each_transform_as_its_definition_in_fewer_passes():
    """``color``'s two ``addcmul`` passes against brightness, saturation and contrast applied in turn from the same
    draws; the fused translation-and-cutout against the two transforms one after the other, values and gradients."""
    from train.augment import color, cutout, diff_augment, translation, translation_then_cutout

    torch.manual_seed(0)
    for channels in (3, 1):
        x = torch.rand(6, channels, 20, 24) * 2 - 1
        b, s, c = torch.rand(6, 3, 1, 1, 1, generator=torch.Generator().manual_seed(5)).unbind(1)
        y = x + (b - 0.5)  # the module's definition, step by step: brightness U(-0.5, 0.5),
        if channels > 1:
            mean = y.mean(dim=1, keepdim=True)
            y = mean + (y - mean) * (s * 2)  # saturation U(0, 2),
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = mean + (y - mean) * (c + 0.5)  # contrast U(0.5, 1.5)
        assert torch.allclose(color(x, torch.Generator().manual_seed(5)), y, atol=1e-5)

        x.requires_grad_()
        weights = torch.randn_like(x)
        fused = translation_then_cutout(x, torch.Generator().manual_seed(7))
        (fused_grad,) = torch.autograd.grad((fused * weights).sum(), x)
        generator = torch.Generator().manual_seed(7)
        in_turn = cutout(translation(x, generator), generator)
        (in_turn_grad,) = torch.autograd.grad((in_turn * weights).sum(), x)
        assert torch.equal(fused, in_turn) and torch.equal(fused_grad, in_turn_grad)
        assert (fused == 0).float().mean() > 0.1  # a square and the shifted-in border are zero
        generator = torch.Generator().manual_seed(7)
        assert torch.equal(diff_augment(x, ("translation", "cutout"), torch.Generator().manual_seed(7)), fused)
        assert torch.equal(diff_augment(x, ("cutout", "translation"), torch.Generator().manual_seed(7)),
                           translation(cutout(x, generator), generator))  # the other order: the two in turn


def test_diff_augment_draws_real_and_fake_from_the_same_distribution():
    """Real and generated batches go through one function with per-sample draws: the transforms' statistics agree."""
    from train.augment import cutout, translation

    def shifts(batch: int, seed: int) -> np.ndarray:
        x = torch.zeros(batch, 1, 16, 16)
        x[:, :, 8, 8] = 1  # one bright pixel: where it lands is the shift
        moved = translation(x, torch.Generator().manual_seed(seed))
        where = moved.flatten(1).argmax(dim=1)
        present = moved.flatten(1).amax(dim=1) > 0
        return torch.stack([where // 16 - 8, where % 16 - 8], dim=1)[present].numpy()

    real, fake = shifts(4000, 1), shifts(4000, 2)
    assert np.abs(real).max() == 2  # up to 1/8 of 16 pixels
    assert abs(real.mean() - fake.mean()) < 0.1 and abs(real.std() - fake.std()) < 0.1
    covered = [1 - cutout(torch.ones(2000, 1, 16, 16), torch.Generator().manual_seed(s)).mean().item() for s in (3, 4)]
    assert abs(covered[0] - covered[1]) < 0.01 and 0.1 < covered[0] < 0.3  # a quarter of the image, less at borders


def test_cutouts_are_composited_onto_their_background_never_flattened():
    from PIL import Image as PILImage

    from train.gather_people import composite, opaque_box, seeded, upper_body

    figure = PILImage.new("RGBA", (40, 100), (0, 0, 0, 0))
    figure.paste((250, 20, 20, 255), (10, 10, 30, 90))  # an opaque red figure inside a transparent frame
    background = PILImage.fromarray(np.full((120, 160, 3), (20, 160, 30), np.uint8))
    assert opaque_box(figure) == (10, 10, 30, 90)
    scene = np.asarray(composite(figure, background, seeded("a")))
    assert scene.shape == (120, 160, 3)
    red = (scene[..., 0] > 200) & (scene[..., 1] < 60)
    assert 0.05 < red.mean() < 0.5  # the figure is there, scaled
    others = scene[~red]
    assert np.abs(others.astype(int) - (20, 160, 30)).max() <= 40  # the rest is the background, not black or white
    bust = np.asarray(upper_body(figure, background, seeded("b")))
    assert bust.shape[0] == bust.shape[1] and bust.shape[0] >= 256
    assert ((bust[..., 0] > 200) & (bust[..., 1] < 60)).mean() > 0.2
    assert composite(figure, background, seeded("a")).tobytes() == composite(figure, background, seeded("a")).tobytes()


def test_renpy_sprites_get_a_full_shot_a_face_and_a_close_up_but_opaque_cards_no_close_up(tmp_path):
    from PIL import Image as PILImage

    from train.gather_people import RENPY_GAMES, renpy_items

    root = tmp_path / "renpy-demo"
    images = root / RENPY_GAMES["renpy-demo"]
    images.mkdir(parents=True)
    PILImage.new("RGB", (320, 180), (20, 160, 30)).save(images / "concert1.png")  # the only scene: green
    figure = PILImage.new("RGBA", (60, 150), (0, 0, 0, 0))
    figure.paste((250, 20, 20, 255), (10, 10, 50, 140))
    figure.save(images / "eileen happy.png")
    PILImage.new("RGBA", (80, 80), (30, 30, 250, 255)).save(images / "logo solid.png")  # opaque card
    items = list(renpy_items({"renpy-demo": root}))
    names = {(item.folder, item.name) for item in items}
    assert ("cartoons", "renpy-demo--eileen-happy-close") in names
    assert ("cartoons", "renpy-demo--logo-solid") in names and ("cartoons", "renpy-demo--logo-solid-close") not in names
    by_name = {item.name: item.image for item in items if item.folder == "cartoons"}
    full, close = by_name["renpy-demo--eileen-happy"], by_name["renpy-demo--eileen-happy-close"]
    red = lambda img: (img[..., 0] > 200) & (img[..., 1] < 60)  # noqa: E731
    assert red(close).mean() > 1.5 * red(full).mean()  # the close-up shows the figure larger
    assert red(close)[:5].any() and not red(full)[:5].any()  # its head at the top of the frame, cut below
    assert np.abs(close[~red(close)].astype(int) - (20, 160, 30)).max() <= 40  # on the scene, not on black


def test_separation_auc_counts_ordered_pairs():
    from train.d_separation import auc

    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5


def test_gpu_pack_shrinks_images_and_cuts_the_vgg_in_half_precision(tmp_path):
    from safetensors.torch import load_file

    from train.gpu_pack import main as gpu_pack

    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    Image.fromarray(np.full((900, 1200, 3), 120, np.uint8)).save(photos / "large.png")
    Image.fromarray(np.full((300, 400, 3), 60, np.uint8)).save(photos / "small.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo stored sideways: shown rotated by 90 degrees
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(photos / "phone.jpg", exif=exif)
    vgg = tmp_path / "vgg16_features.safetensors"
    save_file({"0.weight": torch.ones(4, 3, 3, 3), "21.bias": torch.ones(4), "24.weight": torch.ones(4, 4, 3, 3)}, str(vgg))
    assert gpu_pack(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "gpu"), "--vgg", str(vgg)]) == 0
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "gpu" / "photos").iterdir()}
    assert sizes == {"large.jpg": (960, 720), "small.jpg": (400, 300), "phone.jpg": (300, 400)}  # packed upright
    cut = load_file(str(tmp_path / "vgg16_conv4_3_fp16.safetensors"))
    assert set(cut) == {"0.weight", "21.bias"} and all(t.dtype == torch.float16 for t in cut.values())


def test_structure_smoothing_fades_cell_steps_in_smooth_areas_and_keeps_steps_on_edges():
    from train.superpixels import smooth_structure_target

    width = 64
    ramp = torch.linspace(-0.6, 0.2, width)  # a smooth shading, then an edge to white at column 48
    output = ramp.expand(1, 3, width, width).clone()
    output[..., 48:] = 1.0
    cells = torch.floor(torch.arange(width) / 12) * 0.1 - 0.6  # superpixels: flat cells, steps of 0.1 every 12 px
    target = cells.expand(1, 3, width, width).clone()
    target[..., 48:] = 1.0
    smooth = smooth_structure_target(output, target, eps=0.03)
    step = lambda img: (img[0, 0, 32, 1:] - img[0, 0, 32, :-1]).abs()  # noqa: E731
    assert step(target)[:40].max() >= 0.099 and step(smooth)[:40].max() < 0.04  # cell steps faded (r=5 < 12 px)
    assert step(smooth)[44:50].sum() > 0.8 * step(target)[44:50].sum()  # the edge's step is kept
    assert (smooth[..., :40].mean() - target[..., :40].mean()).abs() < 0.02  # the colours stay
    assert smooth_structure_target(output, target, eps=0.0) is target  # off: the paper's target itself


def test_structure_smoothing_guided_by_the_photo_keeps_an_edge_that_g_has_blurred_sharp():
    from train.superpixels import smooth_structure_target

    width = 64
    columns = torch.arange(width).float()
    photo = torch.where(columns < 32, -0.5, 0.5).expand(1, 3, width, width)  # a sharp edge at column 32
    blurred = (torch.clamp((columns - 32) / 8, -1, 1) * 0.5).expand(1, 3, width, width)  # G's 16-px wide ramp
    target = photo.clone()  # the superpixels of G's output split at the edge: a step
    width_of = lambda img: int(((img[0, 0, 32] > -0.4) & (img[0, 0, 32] < 0.4)).sum())  # noqa: E731 (pixels mid-edge)
    by_photo = smooth_structure_target(photo, target, eps=0.03)
    by_output = smooth_structure_target(blurred, target, eps=0.03)
    assert width_of(by_photo) <= 1  # the target's edge stays a step: G is asked for a sharp edge
    assert width_of(by_output) >= 6  # guided by G's blur, the target is blurred too
