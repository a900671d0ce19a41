"""``python -m train.gpu_harvest RUN TARGET``: what a lent GPU call brings back of a run, made small (../shared/gpu.md).

Every complete checkpoint's generator, its weights in fp16 (2.9 MB instead of 5.9; the app's loader copies them into
the fp32 network), as ``TARGET/checkpoint-NNNNNNN/``, so that several points of one run can be scored at home
(``python -m train evaluate --model TARGET/checkpoint-*``: the Fréchet distance swings ~10 % along a run, README
"Tried after v3"), plus the last checkpoint's two discriminators (``TARGET/discriminators.safetensors``) to go on
from there with ``--init-discriminators``. The reverse of :mod:`train.gpu_pack`.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from cartoon.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from train.checkpoints import generator_folder, list_checkpoints, save_discriminators


def half_generator(source: Path, target: Path) -> int:
    """Copy the generator folder ``source`` to ``target`` with its floating-point tensors in fp16; returns the bytes of
    the weights written."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / CONFIG_NAME, target / CONFIG_NAME)
    state = load_file(str(source / WEIGHTS_NAME))
    save_file({key: value.half() if value.is_floating_point() else value for key, value in state.items()},
              str(target / WEIGHTS_NAME))
    return (target / WEIGHTS_NAME).stat().st_size


def harvest(run_dir: Path, target: Path) -> list[Path]:
    """Each checkpoint's generator in fp16 and the last adversarial checkpoint's discriminators into ``target``;
    returns the generator folders written, oldest first.

    Raises:
        FileNotFoundError: the run has no complete checkpoint.
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"{run_dir}: no complete checkpoint to harvest")
    written = []
    for checkpoint in found:
        half_generator(generator_folder(checkpoint), target / checkpoint.name)
        written.append(target / checkpoint.name)
    try:
        save_discriminators(found[-1], target / "discriminators.safetensors")
    except ValueError:  # a pretraining run: no discriminators to bring back
        pass
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder (its checkpoints/)")
    parser.add_argument("target", type=Path, help="folder to write the fp16 generators and discriminators into")
    args = parser.parse_args(argv)
    try:
        written = harvest(args.run, args.target)
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")
    size = sum(p.stat().st_size for p in args.target.rglob("*") if p.is_file())
    print(f"{len(written)} generators ({written[0].name} .. {written[-1].name}) in {args.target}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
