"""Quality report: the paper's FID-style evaluation with VGG16 standing in for Inception, plus a comparison sheet.

    python -m train evaluate --model assets/model --pretrain runs/pretrain --out runs/evaluation

For each method (our generator, the pretrain-only generator, ``cv2.stylization``, a bilateral filter, the
white-box mix, and the photo itself) every held-out photo is processed whole, then the same random crops are
taken from each output. The Fréchet distance between the crops' pooled VGG16 conv5_3 features and those of
random crops of the cartoon set says how cartoon-like the outputs are (lower: more cartoon-like); the distance
to crops of the training photos says how much photo content is kept (lower: more photo-like). Simple
statistics (flatness, colour count, SSIM to the input) are printed as diagnostics only: a bilateral filter
scores well on them without being a cartoon. The colour-noise column (high-frequency chroma energy over the
photo's) flags the green/magenta hatching that adversarial training can grow and that the distance rewards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from cartoon.explorer import image_key
from cartoon.image import load_image, scale_to_fit, to_tensor
from cartoon.inference import Cartoonizer
from cartoon.representations import structure, surface, texture, whitebox_mix
from train.checkpoints import generator_folder
from train.data import list_images
from train.perceptual import DEFAULT_WEIGHTS, CaffeFeatures, caffe_vgg

CROP = 128
POOL_LAYER = 30  # torchvision vgg16().features[:30] ends with relu5_3


def vgg16_pool_features(weights: Path) -> CaffeFeatures:
    from safetensors.torch import load_file

    net = caffe_vgg("vgg16", POOL_LAYER, load_file(str(weights)), "VGG16 relu5_3, global average pooled")
    # channels_last: oneDNN's convolutions run about 20 % faster on this CPU (values equal to 1e-6 relative)
    return net.to(memory_format=torch.channels_last)


@torch.no_grad()
def embed(net: CaffeFeatures, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """``(N, CROP, CROP, 3)`` uint8 -> ``(N, 512)`` pooled features."""
    out = []
    for start in range(0, len(crops), batch):
        x = to_tensor(crops[start : start + batch]).contiguous(memory_format=torch.channels_last)
        out.append(net(x).mean(dim=(2, 3)).double().numpy())
    return np.concatenate(out)


class FeatureCache:
    """:func:`embed` with the features kept on disk under a hash of the crops' pixels and of the network's weights:
    crops already seen (the reference sets, the baselines, a model evaluated before) are not embedded again: on
    this 2-core CPU one new model against them takes 81 s instead of 5.6 minutes, the same model again 29 s, with
    the same table. ``folder`` None: no cache. Each entry is a float32 ``.npy`` (the features' own precision),
    written whole under a temporary name and then renamed; an entry that cannot be read is computed again."""

    def __init__(self, net: CaffeFeatures, weights: Path, folder: Path | None) -> None:
        self.net, self.folder = net, folder
        digest = hashlib.sha256(f"{net.name}|{CROP}|".encode())
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        self.network_key = digest.hexdigest()[:16]
        self.hits = self.misses = 0

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """``(N, CROP, CROP, 3)`` uint8 -> ``(N, 512)`` float64, as :func:`embed`."""
        if self.folder is None:
            return embed(self.net, crops)
        path = self.folder / f"{self.network_key}-{image_key(crops)}.npy"
        try:
            features = np.load(path, allow_pickle=False)
            if features.shape[0] == len(crops):
                self.hits += 1
                return features.astype(np.float64)
        except (OSError, ValueError):
            pass
        features = embed(self.net, crops)
        self.misses += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        pending = tempfile.NamedTemporaryFile(dir=self.folder, suffix=".partial", delete=False)
        try:
            with pending:
                np.save(pending, features.astype(np.float32))
            os.replace(pending.name, path)
        except BaseException:
            Path(pending.name).unlink(missing_ok=True)
            raise
        return features


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``(N, D)``:
    ``|mu_a - mu_b|² + tr(S_a + S_b - 2 (S_a S_b)^½)``. The trace of the root is the sum of the square roots of the
    eigenvalues of ``S_a^½ S_b S_a^½`` (symmetric, so two ``eigh`` calls: about 2.5x faster than a general matrix
    root, the same value to 1e-14 with more crops than dimensions and to 1e-7 with fewer, where the covariances are
    singular and negative rounding noise in the eigenvalues is clipped)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def crop_positions(shape: tuple[int, int], count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    return [(int(rng.integers(0, shape[0] - CROP + 1)), int(rng.integers(0, shape[1] - CROP + 1))) for _ in range(count)]


def take(img: np.ndarray, positions: list[tuple[int, int]]) -> np.ndarray:
    return np.stack([img[t : t + CROP, l : l + CROP] for t, l in positions])


def random_crops(paths: list[Path], per_image: int, side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    crops = []
    for path in paths:
        img = scale_to_fit(load_image(path), short_side=side)
        crops.append(take(img, crop_positions(img.shape[:2], per_image, rng)))
    return np.concatenate(crops)


def white_box_mix(img: np.ndarray) -> np.ndarray:
    return whitebox_mix(img, surface(img), structure(img), texture(img), (1.0, 1.0, 1.0))


def bilateral(img: np.ndarray) -> np.ndarray:
    out = img
    for _ in range(3):
        out = cv2.bilateralFilter(out, 9, 50, 7)
    return out


def stylization(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.stylization(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), sigma_s=60, sigma_r=0.45), cv2.COLOR_BGR2RGB)


def flat_fraction(img: np.ndarray) -> float:
    """Share of pixels of a uint8 ``(H, W, 3)`` image whose grey-level gradient is under 2 levels (flat areas)."""
    gray = img.mean(axis=2)
    gradient = np.hypot(np.diff(gray, axis=0)[:, :-1], np.diff(gray, axis=1)[:-1, :])
    return float((gradient < 2).mean())


def colour_noise(photo: np.ndarray, out: np.ndarray) -> float:
    """High-frequency energy of ``out``'s chroma (each pixel minus its channel mean, the grey axis removed)
    over the photo's, both uint8 ``(H, W, 3)`` of one size: 1 = as much colour detail as the photo, far above
    1 = colour noise or hatching (which the Fréchet distance does not see). High frequency: a 3x3 Laplacian, as
    :mod:`train.weight_effects` measures the surface's."""

    def energy(img: np.ndarray) -> float:
        rgb = img.astype(np.float64)
        chroma = rgb - rgb.mean(axis=2, keepdims=True)
        return float((cv2.Laplacian(chroma, cv2.CV_64F, ksize=1) ** 2).mean())

    return energy(out) / max(energy(photo), 1e-9)


def colour_cast(photo: np.ndarray, out: np.ndarray) -> float:
    """The largest shift of a channel's mean level from the photo's, in levels (0..255): the issue's "no colour
    cast over 4 levels" (a brightness change counts too). Both uint8 ``(H, W, 3)`` of one size."""
    shift = out.reshape(-1, 3).astype(np.float64).mean(axis=0) - photo.reshape(-1, 3).astype(np.float64).mean(axis=0)
    return float(np.abs(shift).max())


def diagnostics(photo: np.ndarray, out: np.ndarray) -> dict[str, float]:
    colours = len(np.unique((out // 8).reshape(-1, 3), axis=0))
    ssim = structural_similarity(photo, out, channel_axis=2, data_range=255)
    return {"flat_fraction": flat_fraction(out), "colours_5bit": float(colours), "ssim_to_photo": float(ssim),
            "colour_noise": colour_noise(photo, out), "colour_cast": colour_cast(photo, out)}


def load_cartoonizer(path: Path) -> Cartoonizer:
    """The generator of an export, a checkpoint or a run folder (its latest checkpoint), at full size on the CPU."""
    return Cartoonizer.from_pretrained(str(generator_folder(path)), device="cpu", max_side=None)


def model_label(path: Path) -> str:
    """A short row name for a model path: its folder, or the run's folder for an ``export`` folder."""
    path = Path(path)
    return path.parent.name if path.name in ("export", "generator") and path.parent.name else path.name


def comparison_sheet(rows: list[list[np.ndarray]], labels: list[str], out: Path, tile: tuple[int, int] = (360, 270)) -> None:
    """One row per photo, one column per method; every image fitted into the same tile (letterboxed on white)."""
    from PIL import ImageDraw

    width, height = tile
    sheet = Image.new("RGB", (width * len(labels), 24 + height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, label in enumerate(labels):
        draw.text((column * width + 6, 6), label, fill="black")
    for row_index, row in enumerate(rows):
        for column, img in enumerate(row):
            fitted = Image.fromarray(img)
            fitted.thumbnail(tile, Image.Resampling.LANCZOS)
            x = column * width + (width - fitted.width) // 2
            y = 24 + row_index * height + (height - fitted.height) // 2
            sheet.paste(fitted, (x, y))
    sheet.save(out)


def _distance(row: dict[str, float], key: str) -> str:
    """A table cell: the distance, with its spread over the draws of the crops when there were several."""
    return f"{row[key]:.1f}" + (f" ± {row[key + '_sd']:.0f}" if key + "_sd" in row else "")


def run(args: argparse.Namespace) -> int:
    """``python -m train evaluate`` (options in :mod:`train.options`): the quality table and the comparison sheet."""
    args.vgg_weights = args.vgg_weights or DEFAULT_WEIGHTS["vgg16"]
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {"photo (input)": lambda img: img}
    models = args.model if isinstance(args.model, list) else [args.model]
    ours = ["ours"] if len(models) == 1 else [f"ours: {model_label(path)}" for path in models]
    if len(set(ours)) < len(ours):  # two runs with the same folder name: number them rather than lose one
        ours = [f"{name} ({index})" for index, name in enumerate(ours, 1)]
    settings, ours_rows = args.weights or [], []
    for name, path in zip(ours, models):
        cartoonizer = load_cartoonizer(path)
        steered = {f"{name} @ {','.join(f'{w:g}' for w in weights)}": partial(cartoonizer, weights=weights)
                   for weights in settings} if cartoonizer.conditioned else {}
        methods.update(steered or {name: cartoonizer})
        ours_rows += list(steered or [name])
    if args.pretrain is not None:
        methods["pretrain only"] = load_cartoonizer(args.pretrain)
    methods.update({"cv2.stylization": stylization, "bilateral x3": bilateral, "white-box mix": white_box_mix})

    net = vgg16_pool_features(args.vgg_weights)
    cache_folder = None if args.no_feature_cache else (args.feature_cache or args.out.parent / "feature-cache")
    features_of = FeatureCache(net, args.vgg_weights, cache_folder)
    held_out = list_images(args.held_out)
    cartoon_paths, photo_paths = list_images(args.cartoons), list_images(args.photos)
    photos = [scale_to_fit(load_image(p), short_side=args.side) for p in held_out]
    seeds = range(max(1, args.seeds))
    # Draw k: the held-out crops from seed 3k, the cartoon and photo references from 3k+1 and 3k+2 (draw 0 is what
    # a single-draw evaluation has always used).
    references = [(features_of(random_crops(cartoon_paths, max(1, args.reference_crops // len(cartoon_paths)), args.side,
                                           seed=3 * k + 1)),
                   features_of(random_crops(photo_paths, max(1, args.reference_crops // len(photo_paths)), args.side,
                                           seed=3 * k + 2)))
                  for k in seeds]
    positions = []
    for k in seeds:
        rng = np.random.default_rng(3 * k)
        positions.append([crop_positions(img.shape[:2], args.crops, rng) for img in photos])
    results, outputs = {}, {}
    for name, method in methods.items():
        outs = [method(img) for img in photos]
        outputs[name] = outs
        distances = {"fd_to_cartoons": [], "fd_to_photos": []}
        for (cartoon_feats, photo_feats), draw in zip(references, positions):
            feats = features_of(np.concatenate([take(out, pos) for out, pos in zip(outs, draw)]))
            distances["fd_to_cartoons"].append(frechet_distance(feats, cartoon_feats))
            distances["fd_to_photos"].append(frechet_distance(feats, photo_feats))
        stats = [diagnostics(img, out) for img, out in zip(photos, outs)]
        results[name] = {key: float(np.mean(values)) for key, values in distances.items()}
        if len(seeds) > 1:
            results[name].update({f"{key}_sd": float(np.std(values, ddof=1)) for key, values in distances.items()})
        results[name].update({key: float(np.mean([s[key] for s in stats])) for key in stats[0]})
        results[name]["colour_cast"] = max(s["colour_cast"] for s in stats)  # the worst photo, not the mean
    (args.out / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    cartoon_feats, photo_feats = references[0]
    spread = f"; distances: mean ± SD over {len(seeds)} draws of the crops" if len(seeds) > 1 else ""
    cached = (f"; {features_of.hits} of {features_of.hits + features_of.misses} crop sets' features from {cache_folder}"
              if cache_folder is not None else "")
    print(f"held-out photos: {len(photos)} x {args.crops} crops of {CROP}px at short side {args.side}; "
          f"reference: {len(cartoon_feats)} cartoon crops, {len(photo_feats)} photo crops; features: {net.name}{spread}"
          f"{cached}")
    print("| method | FD to cartoons (lower: more cartoon) | FD to photos (lower: more content) | flat fraction | colours | "
          "SSIM to input | colour noise (1: the photo's) | worst colour cast (levels) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {_distance(r, 'fd_to_cartoons')} | {_distance(r, 'fd_to_photos')} | {r['flat_fraction']:.3f} | "
              f"{r['colours_5bit']:.0f} | {r['ssim_to_photo']:.3f} | {r['colour_noise']:.2f} | {r['colour_cast']:.1f} |")
    columns = ["photo (input)", "cv2.stylization", *ours_rows] + (["pretrain only"] if args.pretrain else [])
    comparison_sheet([[outputs[c][i] for c in columns] for i in range(len(photos))], columns, args.out / "comparison.png")
    print(f"sheet: {args.out / 'comparison.png'}")
    return 0


if __name__ == "__main__":  # the older spelling, python -m train.evaluate ..., still works
    from train.__main__ import main

    raise SystemExit(main(["evaluate", *sys.argv[1:]]))
