"""Training checkpoints: written atomically, safetensors + JSON only, bounded in number.

Layout of ``<run>/checkpoints/checkpoint-<step>/``::

    generator/config.json, generator/model.safetensors   # what export and the app load
    training.safetensors                                  # discriminators, optimiser moments, RNG states
    state.json                                            # step, optimiser hyper-parameters, metrics

A checkpoint is written into a temporary sibling folder, flushed to disk, then renamed: a folder with the
final name is always complete, and a crash (SIGKILL, full disk) mid-write leaves the previous one intact.

:func:`save_training` / :func:`restore_training` turn a run's :class:`TrainingParts` (G, optimisers, other
modules, random generators) into such a checkpoint and back; :func:`generator_folder` is the one resolver from
"a run folder, a checkpoint or an export" to the generator files that :func:`cartoon.checkpoint.load_generator`
reads.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cartoon.checkpoint import CONFIG_NAME, load_generator, save_generator

PREFIX = "checkpoint-"
TMP_MARK = ".tmp-"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"{PREFIX}{step:07d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted writes are ignored)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and TMP_MARK not in p.name
             and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder itself, or a run folder's latest complete checkpoint.

    Raises:
        FileNotFoundError: the folder is neither, or the run has no complete checkpoint yet.
    """
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: no complete checkpoint (expected a run folder with "
                                f"checkpoints/{PREFIX}*/state.json, or a checkpoint folder)")
    return latest


def generator_folder(path: Path) -> Path:
    """The folder with a generator's ``config.json`` + ``model.safetensors`` for any of: an export (or generator)
    folder, a training checkpoint, or a run folder (its latest checkpoint).

    Raises:
        FileNotFoundError: none of those, or a run without a complete checkpoint.
    """
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        return path
    if (path / "generator" / CONFIG_NAME).is_file():
        return path / "generator"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    return resolve_checkpoint(path) / "generator"


IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")
"""Optimiser options that say how it computes, not what it learned: a restore keeps the live optimiser's."""


def flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state dict as flat tensors (for safetensors) plus JSON-able metadata."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            key = f"{prefix}/state/{index}/{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()} for group in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        if not key.startswith(prefix + "/state/"):
            continue
        index, name = key.removeprefix(prefix + "/state/").split("/", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in group.items()} for group in meta["param_groups"]]
    # How the live optimiser runs (fused, capturable for a CUDA graph) is its own, not the checkpoint's: a CPU
    # checkpoint continued on a GPU keeps the fused kernel, and its step counts move to the device when it needs.
    for group, live in zip(groups, optimizer.param_groups):
        group.update({key: live[key] for key in IMPLEMENTATION_FLAGS if key in live})
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_checkpoint(
    run_dir: Path,
    step: int,
    generator: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write checkpoint ``step`` atomically, then delete all but the ``keep_last`` newest. Returns its folder."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_generator(generator, tmp / "generator")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "training.safetensors"))
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")  # written last: marks completeness
        _fsync_tree(tmp)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in (run_dir / "checkpoints").glob(f"*{TMP_MARK}*"):  # leftovers of killed writers
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and state of a checkpoint folder (generator weights are read by the generator loader)."""
    state_path = folder / "state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"{folder} is not a complete checkpoint (no state.json)")
    return load_file(str(folder / "training.safetensors")), json.loads(state_path.read_text())


@dataclass
class TrainingParts:
    """What a training checkpoint holds besides the step's JSON state.

    Attributes:
        generator: saved as ``generator/`` (the exported format).
        optimizers: by name (``"g_opt"``, ``"d_opt"``); moments in the tensors, hyper-parameters in the state.
        modules: other trained modules by name (the discriminators), as ``<name>/<parameter>`` tensors.
        generators: random generators by name (``rng/<name>``); torch's global RNG is saved as ``rng/torch``.
    """

    generator: torch.nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    generators: dict[str, torch.Generator] = field(default_factory=dict)


def save_training(run_dir: Path, step: int, parts: TrainingParts, state: dict[str, Any], keep_last: int) -> Path:
    """Write checkpoint ``step`` of a run (atomically; see :func:`save_checkpoint`). Returns its folder."""
    tensors: dict[str, torch.Tensor] = {"rng/torch": torch.get_rng_state()}
    state = dict(state)
    for name, optimizer in parts.optimizers.items():
        optimizer_tensors, state[name] = flatten_optimizer(optimizer, name)
        tensors.update(optimizer_tensors)
    for name, module in parts.modules.items():
        tensors.update({f"{name}/{key}": value for key, value in module.state_dict().items()})
    for name, generator in parts.generators.items():
        tensors[f"rng/{name}"] = generator.get_state()
    return save_checkpoint(run_dir, step, parts.generator, tensors, state, keep_last)


DISCRIMINATORS = ("d_surface", "d_texture")


def discriminator_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The discriminators' weights (``d_surface/...``, ``d_texture/...``) of an adversarial checkpoint folder, its
    ``training.safetensors``, or a file holding only them (:func:`save_discriminators`).

    Raises:
        FileNotFoundError: nothing there; ValueError: no discriminator weights in it (a pretraining checkpoint).
    """
    path = resolve_checkpoint(path) if path.is_dir() else path
    file = path / "training.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no discriminator weights (expected a checkpoint folder or a .safetensors file)")
    tensors = {key: value for key, value in load_file(str(file)).items() if key.split("/", 1)[0] in DISCRIMINATORS}
    missing = [name for name in DISCRIMINATORS if not any(key.startswith(f"{name}/") for key in tensors)]
    if missing:
        raise ValueError(f"{path} holds no {' or '.join(missing)} weights (a pretraining checkpoint has none)")
    return tensors


def save_discriminators(checkpoint: Path, target: Path) -> int:
    """Write only the discriminators of an adversarial checkpoint (2 MB instead of the checkpoint's 24: what a
    GPU call carries to continue a model with the discriminators that trained it); returns the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in discriminator_tensors(checkpoint).items()}, str(target))
    return target.stat().st_size


def load_discriminators(path: Path, modules: dict[str, torch.nn.Module]) -> None:
    """Load ``d_surface`` and ``d_texture`` of ``modules`` in place from :func:`discriminator_tensors`."""
    _load_modules(modules, discriminator_tensors(path))


def _load_modules(modules: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """Load each module in place from its ``<name>/<parameter>`` tensors (as :func:`save_training` writes them)."""
    for name, module in modules.items():
        prefix = f"{name}/"
        module.load_state_dict({key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)})


def restore_training(folder: Path, parts: TrainingParts) -> dict[str, Any]:
    """Load a checkpoint into ``parts`` in place; returns its JSON state (step, elapsed time, options ...).

    Raises:
        ValueError: the checkpoint lacks one of the optimisers (a pretraining checkpoint given to an
            adversarial run): start from it with ``--init`` instead.
    """
    tensors, state = load_checkpoint(folder)
    missing = [name for name in parts.optimizers if name not in state]
    if missing:
        raise ValueError(f"{folder} is a {state.get('command')} checkpoint without {', '.join(missing)}; resume a run "
                         "from its own checkpoints, or start a new one from it with --init")
    parts.generator.load_state_dict(load_generator(folder / "generator").state_dict())
    for name, optimizer in parts.optimizers.items():
        restore_optimizer(optimizer, name, tensors, state[name])
    _load_modules(parts.modules, tensors)
    torch.set_rng_state(tensors["rng/torch"])
    for name, generator in parts.generators.items():
        if f"rng/{name}" in tensors:  # checkpoints from before a generator existed keep its fresh seed
            generator.set_state(tensors[f"rng/{name}"])
    return state
