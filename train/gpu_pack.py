"""``python -m train.gpu_pack``: what a lent GPU call carries, made small enough for its 64 MiB (../shared/gpu.md).

    python -m train.gpu_pack [--data data] [--out data/gpu] [--quality 90] [--vgg weights/vgg16_features.safetensors]
                             [--discriminators CHECKPOINT]

Re-encodes the training folders (JPEG, quality 90 by default, short side at most 720 — what the trainer keeps anyway) into
``--out`` and writes the VGG16 features up to conv4_3 in fp16 next to the full weights (the perceptual loader
keeps the layers below its cut and upcasts); with ``--discriminators``, an adversarial checkpoint's two
discriminators alone (``discriminators.safetensors`` beside the VGG, 2 MB: ``--init-discriminators`` there). Prints the sizes
and the ``carry`` list for the device call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from cartoon.image import find_images, load_image, scale_to_fit
from train.checkpoints import save_discriminators
from train.perceptual import VGG16_CONV4_3

FOLDERS = ("photos", "cartoons", "photo_faces", "cartoon_faces", "held_out")
CARRY_LIMIT = 64 * 2**20
SHORT_SIDE = 720


def pack_images(source: Path, target: Path, quality: int = 90) -> int:
    """Every image of ``source`` as a JPEG in ``target``, decoded and downscaled as the trainer's loader does (upright,
    short side at most 720); returns the bytes written."""
    target.mkdir(parents=True, exist_ok=True)
    for path in find_images(source):
        img = scale_to_fit(load_image(path), short_side=SHORT_SIDE)
        Image.fromarray(img).save(target / f"{path.stem}.jpg", quality=quality)
    return sum(p.stat().st_size for p in target.glob("*.jpg"))


def pack_vgg16(weights: Path, target: Path) -> int:
    """VGG16 ``features`` tensors below conv4_3's ReLU, in fp16; returns the bytes written."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    save_file({key: value.half() for key, value in state.items() if int(key.split(".")[0]) < VGG16_CONV4_3}, str(target))
    return target.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("data/gpu"))
    parser.add_argument("--vgg", type=Path, default=Path("weights/vgg16_features.safetensors"))
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the packed images")
    parser.add_argument("--discriminators", type=Path, default=None,
                        help="adversarial checkpoint (or run folder) whose discriminators travel too")
    args = parser.parse_args(argv)
    total, carry = 0, [str(args.out)]
    for name in FOLDERS:
        if (args.data / name).is_dir():
            size = pack_images(args.data / name, args.out / name, args.quality)
            total += size
            print(f"{name}: {len(list((args.out / name).glob('*.jpg')))} images, {size / 2**20:.1f} MiB")
    if args.vgg.is_file():
        cut = args.vgg.with_name("vgg16_conv4_3_fp16.safetensors")
        size = pack_vgg16(args.vgg, cut)
        total += size
        carry.append(str(cut))
        print(f"{cut}: {size / 2**20:.1f} MiB")
    else:
        print(f"{args.vgg} is missing: python -m train extract-vgg first, or carry your own perceptual weights")
    if args.discriminators is not None:
        target = args.vgg.with_name("discriminators.safetensors")
        size = save_discriminators(args.discriminators, target)
        total += size
        carry.append(str(target))
        print(f"{target} (from {args.discriminators}): {size / 2**20:.1f} MiB")
    print(f"in all {total / 2**20:.1f} MiB of the {CARRY_LIMIT / 2**20:.0f} MiB a call carries; carry={carry}")
    return 0 if total <= CARRY_LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
