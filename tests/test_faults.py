"""Faults a deployment meets: no Hub, broken checkpoints. (Training faults: tests/train/test_training.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import app
from cartoon import checkpoint
from cartoon.checkpoint import resolve_generator
from tests.test_checkpoint import fake_hub_cache


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub-cache"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    return cache


def break_weights(folder: Path, how: str) -> None:
    weights = next(folder.rglob("model.safetensors"))
    target = weights.resolve()
    if how == "truncated":
        target.write_bytes(target.read_bytes()[:100])
    else:  # wrong shape: a config that does not match the tensors
        next(folder.rglob("config.json")).resolve().write_text('{"channels": 16, "num_blocks": 1}')


@pytest.mark.parametrize("how", ["truncated", "wrong-shape"])
def test_broken_hub_checkpoint_falls_back_to_bundled_with_a_clear_log(tiny_checkpoint, hub_cache, tmp_path, how, caplog):
    fake_hub_cache(hub_cache, "someone/model", "main", tiny_checkpoint)
    break_weights(hub_cache, how)
    caplog.set_level("WARNING", logger="cartoon.checkpoint")
    _, source = resolve_generator("someone/model", bundled_dir=tiny_checkpoint)
    assert source.kind == "bundled"
    assert "model.safetensors" in caplog.text or "config.json" in caplog.text


def test_unreachable_hub_shows_the_bundled_model_in_the_ui(tiny_checkpoint, hub_cache, monkeypatch):
    monkeypatch.setenv(checkpoint.REPO_ENV, "someone/unreachable")
    monkeypatch.setattr(checkpoint, "BUNDLED_DIR", tiny_checkpoint)
    app.get_cartoonizer.cache_clear()
    try:
        status = app.model_status()
    finally:
        app.get_cartoonizer.cache_clear()
    assert "bundled model" in status and "CPU" in status


def test_no_model_at_all_keeps_the_views_working(tmp_path, hub_cache, monkeypatch):
    monkeypatch.setattr(checkpoint, "BUNDLED_DIR", tmp_path / "empty")
    app.get_cartoonizer.cache_clear()
    try:
        assert "none available" in app.model_status()
        payload = {"path": str(app.EXAMPLES_DIR / "coffee.jpg")}
        values = [1, 1, 1, 5, 0.2, "felzenszwalb", 5, 0.8, 100, 200, 200, 0.299, 0.587, 0.114]
        assert len(app.representations(payload, *values)) == 4
        assert app.cartoon_preview(payload, None) == (None, None)
        with pytest.raises(app.gr.Error, match="No cartoon model is available"):
            app.cartoonize(payload)
    finally:
        app.get_cartoonizer.cache_clear()
