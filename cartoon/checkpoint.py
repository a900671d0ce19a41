"""Generator checkpoints: ``config.json`` + ``model.safetensors``, loaded from the Hub, its cache, or ``assets/``.

Only safetensors are ever read: no pickle, no ``torch.load``. A checkpoint folder holds:

* ``config.json`` - the generator's constructor arguments (``{"channels": 32, "num_blocks": 4}``);
* ``model.safetensors`` - the state dict, loaded with ``strict=True``.

:func:`load_generator` is the one loader of generator weights (the app, the CLI, the trainer and export all
call it); :func:`save_generator` the one writer.

:func:`resolve_generator` picks the model the app and the CLI use, in this order: the Hub repository
(``CARTOON_MODEL_REPO`` at ``CARTOON_MODEL_REVISION``), the Hub's local cache of it, the checkpoint shipped in
``assets/model``. Offline (``HF_HUB_OFFLINE=1`` or no network) it falls through within a couple of seconds and
logs which model is in use.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model

from cartoon.models.generator import UNetGenerator

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
REPO_ENV = "CARTOON_MODEL_REPO"
REVISION_ENV = "CARTOON_MODEL_REVISION"
DEFAULT_REPO_ID: str | None = None
"""The Hub repository of the published model; ``None`` until one is published (set ``CARTOON_MODEL_REPO``)."""
DEFAULT_REVISION = "main"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets" / "model"
HUB_TIMEOUT_S = 2.0

_CONFIG_KEYS = {"channels": (1, 1024), "num_blocks": (1, 1024), "condition_dim": (0, 16)}
"""The generator's constructor arguments a config may hold, with their ranges."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ModelSource:
    """Where the loaded generator came from, for the app's status line and logs.

    ``note`` says why a better source was passed over (the Hub repository that failed, and how).
    """

    kind: str  # "hub", "cache", "bundled" or "local"
    location: str
    revision: str | None = None
    note: str | None = None

    def describe(self) -> str:
        if self.kind in ("hub", "cache"):
            where = "Hub" if self.kind == "hub" else "Hub cache, the Hub being unreachable"
            text = f"{self.location}@{self.revision} ({where})"
        elif self.kind == "bundled":
            text = "bundled model (assets/model)"
        else:
            text = f"local checkpoint {self.location}"
        return f"{text}; {self.note}" if self.note else text


def _short(message: str) -> str:
    """An error message with absolute paths cut to their file names (for a status line)."""
    return re.sub(r"(?:/[^\s:;,()]+)+/([^\s:;,()/]+)", r"\1", message)


def save_generator(model: UNetGenerator, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` (the constructor arguments) and ``model.safetensors`` (the state dict, contiguous
    whatever the module's memory format) into ``directory``, creating it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_NAME).write_text(json.dumps(model.config, indent=2) + "\n", encoding="utf-8")
    save_model(model, str(directory / WEIGHTS_NAME))
    return directory


def read_config(directory: Path) -> dict[str, int]:
    """Read and validate ``config.json``: only the generator's known integer arguments are accepted."""
    path = directory / CONFIG_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a checkpoint folder needs {CONFIG_NAME} and {WEIGHTS_NAME})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    config = {}
    for key, (low, high) in _CONFIG_KEYS.items():
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise CheckpointError(f"{path}: {key} must be an integer in [{low}, {high}], got {value!r}")
            config[key] = value
    return config


def load_generator(
    path_or_repo: str | os.PathLike,
    revision: str | None = None,
    map_location: str | torch.device = "cpu",
    local_files_only: bool = False,
) -> UNetGenerator:
    """Load a generator from a local checkpoint folder or a Hub repository id, in eval mode.

    Raises:
        CheckpointError: missing, corrupt, truncated or wrong-shape files (the message names the file).
    """
    directory = Path(path_or_repo)
    if not directory.is_dir():
        directory = _download(str(path_or_repo), revision, local_files_only)
    config = read_config(directory)
    weights = directory / WEIGHTS_NAME
    try:
        state = load_file(weights, device=str(map_location))
    except FileNotFoundError:
        raise CheckpointError(f"{weights}: missing") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{weights}: not a readable safetensors file (corrupt or truncated?): {error}") from None
    model = UNetGenerator(**config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:4])
        raise CheckpointError(f"{weights}: does not fit UNetGenerator{config or ''}: {detail}") from None
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{weights}: tensor {name} holds NaN or infinite values")
    return model.to(map_location).eval()


def _download(repo_id: str, revision: str | None, local_files_only: bool) -> Path:
    """Fetch the two checkpoint files from the Hub (or only from its local cache) and return their folder.

    Online, the revision is first resolved on the Hub (a short metadata request with a timeout), so a file
    served from the cache because the network failed is never reported as coming from the Hub.
    """
    from huggingface_hub import HfApi, hf_hub_download

    where = "in the local Hub cache" if local_files_only else "on the Hub"
    try:
        requested = revision or DEFAULT_REVISION
        commit = requested
        if not local_files_only:
            commit = HfApi().model_info(repo_id, revision=requested, timeout=HUB_TIMEOUT_S).sha or requested
        paths = [
            hf_hub_download(repo_id, name, revision=commit, etag_timeout=HUB_TIMEOUT_S,
                            local_files_only=local_files_only, library_name="cartoon")
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        ]
        if not local_files_only and commit != requested:
            # Both files came from one commit; one more (cached) lookup by the name asked for records which commit
            # that name points to, so that an offline start can find the same files by it.
            hf_hub_download(repo_id, CONFIG_NAME, revision=requested, etag_timeout=HUB_TIMEOUT_S, library_name="cartoon")
    except Exception as error:  # noqa: BLE001 - any Hub failure (offline, 404, timeout, auth) means "not there"
        raise CheckpointError(f"{repo_id}@{revision or DEFAULT_REVISION}: not available {where} ({type(error).__name__})") from None
    return Path(paths[0]).parent


def resolve_generator(
    repo_id: str | None = None,
    revision: str | None = None,
    bundled_dir: str | os.PathLike | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[UNetGenerator, ModelSource]:
    """The app's and CLI's model: Hub repo at a pinned revision -> local Hub cache -> bundled ``assets/model``.

    ``repo_id`` and ``revision`` default to the ``CARTOON_MODEL_REPO`` / ``CARTOON_MODEL_REVISION`` environment
    variables, then :data:`DEFAULT_REPO_ID` / ``main``. Logs one line saying which model is in use.

    Raises:
        CheckpointError: when no source has a usable checkpoint (the message lists what was tried).
    """
    repo_id = repo_id or os.environ.get(REPO_ENV) or DEFAULT_REPO_ID
    revision = revision or os.environ.get(REVISION_ENV) or DEFAULT_REVISION
    tried: list[str] = []
    if repo_id and Path(repo_id).is_dir():  # a local checkpoint folder given in place of a repo id
        model = load_generator(repo_id, map_location=map_location)
        source = ModelSource("local", str(repo_id))
        log.info("Using %s", source.describe())
        return model, source
    if repo_id:
        for kind, cache_only in (("hub", False), ("cache", True)):
            try:
                model = load_generator(repo_id, revision, map_location, local_files_only=cache_only)
            except CheckpointError as error:
                tried.append(str(error))
                log.warning("model %s: %s", kind, error)
                continue
            note = f"the Hub failed ({_short(tried[0])})" if kind == "cache" and tried else None
            source = ModelSource(kind, repo_id, revision, note)
            log.info("Using %s", source.describe())
            return model, source
    bundled_dir = Path(bundled_dir if bundled_dir is not None else BUNDLED_DIR)
    try:
        model = load_generator(bundled_dir, map_location=map_location)
    except CheckpointError as error:
        tried.append(str(error))
        raise CheckpointError("No usable generator checkpoint. Tried: " + "; ".join(tried)) from None
    note = f"{repo_id} was not usable: {_short(tried[0])}" if tried else None
    source = ModelSource("bundled", str(bundled_dir), note=note)
    log.info("Using %s", source.describe())
    return model, source
