"""``python -m train {pretrain,adversarial,recipe,export,push,evaluate,extract-vgg} ...`` (``--help`` on each)."""

from __future__ import annotations

import logging
import sys

from cartoon.checkpoint import CheckpointError
from train.options import TRAINING_COMMANDS, options_table, parse


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        return run(args)
    except (FileNotFoundError, CheckpointError) as error:  # a folder without a checkpoint, a missing file
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args) -> int:
    """Carry out one parsed sub-command; returns the exit code."""
    if args.command in TRAINING_COMMANDS:
        if args.dry_run:
            print(options_table(args))
            return 0
        from train.trainer import Trainer, TrainingDiverged

        try:
            last = Trainer(args).fit()
        except TrainingDiverged as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
        if last is not None:
            print(f"last checkpoint: {last}")
        return 0
    if args.command == "export":
        from train.export import export, push

        folder = export(args.run, args.output, args.data_note, args.notes)
        print(f"exported to {folder}")
        if args.push_to_hub:
            print(f"pushed: {push(folder, args.push_to_hub)}")
        return 0
    if args.command == "push":
        from train.export import push

        print(f"pushed: {push(args.folder, args.repo, args.private)}")
        return 0
    if args.command == "weight-effects":
        from train.weight_effects import run as run_effects

        return run_effects(args)
    if args.command == "recipe":
        from train.recipe import run as run_recipe

        return run_recipe(args)
    if args.command == "evaluate":
        from train.evaluate import run

        return run(args)
    if args.command == "extract-vgg":
        from train.extract_vgg import default_onnx_path, extract

        state = extract(args.onnx or default_onnx_path(), args.output)
        print(f"wrote {len(state)} tensors to {args.output}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
