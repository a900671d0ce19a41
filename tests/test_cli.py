import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cartoon.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def make_inputs(folder: Path, photo: np.ndarray) -> None:
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(folder / "good.jpg")
    Image.fromarray(photo[:50, :70]).save(folder / "sub" / "good.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "notes.txt").write_text("ignored: not an image suffix")


def test_folder_with_views_skips_bad_files(tmp_path, photo, tiny_checkpoint, capsys):
    make_inputs(tmp_path / "in", photo)
    code = main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--views", "--model", str(tiny_checkpoint), "--device", "cpu"])
    assert code == 1  # one file failed
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.jpg" in err and "2 of 3 files" in err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    suffixes = (".png", ".surface.png", ".structure.png", ".texture.png")
    assert names == sorted(f"{stem}{suffix}" for stem in ("good", "good-2") for suffix in suffixes)
    out = np.asarray(Image.open(tmp_path / "out" / "good.png"))
    assert out.shape == photo.shape
    assert np.asarray(Image.open(tmp_path / "out" / "good-2.png")).shape == (50, 70, 3)


def test_all_good_exits_zero(tmp_path, photo, tiny_checkpoint):
    Image.fromarray(photo).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), "--max-side", "0"]) == 0
    assert (tmp_path / "out" / "a.png").is_file()


def test_no_model_is_a_clear_error(tmp_path, photo, monkeypatch, capsys):
    monkeypatch.setattr("cartoon.checkpoint.BUNDLED_DIR", tmp_path / "nothing")
    Image.fromarray(photo).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 2
    assert "No usable generator checkpoint" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path, photo, tiny_checkpoint):
    Image.fromarray(photo).save(tmp_path / "a.png")
    result = subprocess.run(
        [sys.executable, "-m", "cartoon", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "1 of 1 files" in result.stderr


def test_weights_steer_a_conditioned_model_and_are_refused_by_a_plain_one(tiny_checkpoint, tmp_path, capsys):
    import torch

    from cartoon.checkpoint import save_generator
    from cartoon.models import UNetGenerator

    torch.manual_seed(1)
    generator = UNetGenerator(channels=4, num_blocks=1, condition_dim=3)
    torch.nn.init.normal_(generator.conditioning.mlp[-1].weight, std=0.5)
    save_generator(generator, tmp_path / "conditioned")
    photo = Path(__file__).resolve().parent.parent / "assets" / "examples" / "coffee.jpg"
    outputs = {}
    for name, weights in (("default", "1,1,1"), ("steered", "3,0.5,1")):
        assert main([str(photo), "-o", str(tmp_path / name), "--model", str(tmp_path / "conditioned"), "--device", "cpu",
                     "--weights", weights]) == 0
        outputs[name] = np.asarray(Image.open(tmp_path / name / "coffee.png"))
    assert np.abs(outputs["default"].astype(int) - outputs["steered"].astype(int)).mean() > 0.5
    assert main([str(photo), "-o", str(tmp_path / "plain"), "--model", str(tiny_checkpoint), "--weights", "2,1,1"]) == 2
    assert "fixed weights" in capsys.readouterr().err and not (tmp_path / "plain").exists()
    assert main([str(photo), "-o", str(tmp_path / "bad"), "--model", str(tiny_checkpoint), "--weights", "2,1"]) == 2
    assert "three comma-separated numbers" in capsys.readouterr().err and not (tmp_path / "bad").exists()
