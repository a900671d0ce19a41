import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cartoon import checkpoint
from cartoon.checkpoint import CheckpointError, load_generator, resolve_generator, save_generator
from cartoon.models import UNetGenerator
from tests.conftest import make_tiny_generator

ROOT = Path(__file__).resolve().parent.parent


def test_round_trip_is_bit_for_bit(tmp_path):
    model = make_tiny_generator(seed=3)
    save_generator(model, tmp_path)
    loaded = load_generator(tmp_path)
    assert not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(model(x), loaded(x))


def test_config_records_the_architecture(tmp_path):
    save_generator(UNetGenerator(channels=6, num_blocks=2), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"channels": 6, "num_blocks": 2}
    assert load_generator(tmp_path).conv_in.out_channels == 6


def test_the_generator_has_no_loader_of_its_own():
    # One loader (cartoon.checkpoint.load_generator): the network module does no I/O and imports no checkpoint code.
    assert not hasattr(UNetGenerator, "from_pretrained") and not hasattr(UNetGenerator, "save_pretrained")
    source = (ROOT / "cartoon" / "models" / "generator.py").read_text()
    assert "import cartoon.checkpoint" not in source and "from cartoon.checkpoint" not in source
    assert "huggingface_hub" not in source


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_truncated_weights_name_the_file(tiny_checkpoint, tmp_path):
    bad = copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(weights))):
        load_generator(bad)


def test_garbage_weights_are_refused(tiny_checkpoint, tmp_path):
    bad = copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    (bad / "model.safetensors").write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_generator(bad)


def test_wrong_shape_is_refused(tiny_checkpoint, tmp_path):
    bad = copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    (bad / "config.json").write_text(json.dumps({"channels": 8, "num_blocks": 1}))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_generator(bad)


def test_missing_and_extra_tensors_are_refused(tmp_path):
    state = make_tiny_generator().state_dict()
    state["extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"channels": 4, "num_blocks": 1}))
    with pytest.raises(CheckpointError, match="extra.weight"):
        load_generator(tmp_path)


def test_nan_weights_are_refused(tmp_path):
    state = {k: v.clone() for k, v in make_tiny_generator().state_dict().items()}
    state["conv_out.bias"][0] = float("nan")
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"channels": 4, "num_blocks": 1}))
    with pytest.raises(CheckpointError, match="NaN"):
        load_generator(tmp_path)


@pytest.mark.parametrize("config", ["{not json", '{"channels": "32"}', '{"channels": 1e9}', "[1, 2]"])
def test_bad_config_is_refused(tiny_checkpoint, tmp_path, config):
    bad = copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    (bad / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match="config.json"):
        load_generator(bad)


def fake_hub_cache(cache: Path, repo_id: str, revision: str, files: Path) -> None:
    """Lay out huggingface_hub's cache for repo_id@revision holding the checkpoint files."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(files / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(commit)


def test_offline_uses_the_hub_cache_first(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    fake_hub_cache(tmp_path / "cache", "someone/cartoonizer", "main", tiny_checkpoint)
    model, source = resolve_generator("someone/cartoonizer", bundled_dir=tmp_path / "no-bundle")
    assert source.kind == "cache" and "someone/cartoonizer@main" in source.describe()
    assert model.conv_in.out_channels == 4


def test_offline_falls_back_to_bundled_fast_and_says_so(tiny_checkpoint, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv(checkpoint.REPO_ENV, "someone/not-cached")
    caplog.set_level("INFO", logger="cartoon.checkpoint")
    start = time.perf_counter()
    _, source = resolve_generator(bundled_dir=tiny_checkpoint)
    assert time.perf_counter() - start < 2.0
    assert source.kind == "bundled"
    assert "Using bundled model" in caplog.text


def test_no_checkpoint_anywhere_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CheckpointError, match="No usable generator checkpoint.*no-bundle"):
        resolve_generator("someone/absent", bundled_dir=tmp_path / "no-bundle")


def test_only_safetensors_are_ever_loaded():
    """Security: no pickle-based loading anywhere in the shipped code."""
    sources = [ROOT / "app.py", *ROOT.glob("cartoon/**/*.py"), *ROOT.glob("train/**/*.py")]
    pattern = re.compile(r"torch\.load\(|pickle\.load|import pickle|weights_only")
    offenders = [str(p) for p in sources if p.exists() and pattern.search(p.read_text())]
    assert offenders == []
