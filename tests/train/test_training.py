import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cartoon.checkpoint import load_generator
from cartoon.image import to_tensor
from cartoon.inference import Cartoonizer
from train import checkpoints
from train.__main__ import main
from train.data import list_images, load_training_data
from train.losses import grey_variation
from train.options import EXTRA_WEIGHTS, parse
from tests.train.conftest import ROOT, run_module, tiny_args


def generator_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_generator(checkpoints.latest_checkpoint(run_dir) / "generator").state_dict()


def test_pretrain_writes_checkpoint_samples_and_metrics(tiny_data, tmp_path):
    run = tmp_path / "pre"
    assert main(tiny_args(tiny_data, run, "pretrain", steps=4)) == 0
    assert [p.name for p in checkpoints.list_checkpoints(run)] == ["checkpoint-0000002", "checkpoint-0000004"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all(np.isfinite(r["reconstruction"]) for r in records)
    grid = np.asarray(Image.open(run / "samples" / "step-0000004.png"))
    assert grid.shape == (4 * 32, 5 * 32, 3)  # 4 fixed samples x (photo|surface|structure|texture|output)
    assert json.loads((run / "options.json").read_text())["steps"] == 4


def test_pretraining_reduces_the_reconstruction_loss(tiny_data, tmp_path):
    run = tmp_path / "pre"
    assert main(tiny_args(tiny_data, run, "pretrain", steps=30, save_every=30, sample_every=30, lr=2e-3)) == 0
    losses = [json.loads(line)["reconstruction"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_adversarial_from_pretrained_with_superpixel_workers(tiny_data, tmp_path):
    pre, adv = tmp_path / "pre", tmp_path / "adv"
    assert main(tiny_args(tiny_data, pre, "pretrain", steps=2)) == 0
    assert main(tiny_args(tiny_data, adv, steps=2, init=pre, superpixel_workers=1)) == 0
    records = [json.loads(line) for line in (adv / "metrics.jsonl").read_text().splitlines()]
    for key in ("g_surface", "g_texture", "content", "structure", "tv", "g_total", "d_surface", "d_texture"):
        assert np.isfinite(records[-1][key]), key
    assert (adv / "samples" / "step-0000002.png").is_file()


@pytest.mark.parametrize("command", ["pretrain", "adversarial"])
def test_resume_latest_continues_exactly(tiny_data, tmp_path, command):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main(tiny_args(tiny_data, straight, command, steps=4)) == 0
    assert main(tiny_args(tiny_data, interrupted, command, steps=2)) == 0
    assert main(tiny_args(tiny_data, interrupted, command, steps=4, resume="latest")) == 0
    a, b = generator_state(straight), generator_state(interrupted)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # continued at the exact next step


def test_sigkill_between_checkpoints_resumes_from_the_last_complete_one(tiny_data, tmp_path):
    run = tmp_path / "killed"
    args = ["-m", "train", *tiny_args(tiny_data, run, "pretrain", steps=100_000, save_every=3, sample_every=10_000)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(checkpoints.list_checkpoints(run)) < 2:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    complete = checkpoints.list_checkpoints(run)
    assert complete, "no checkpoint written before the kill"
    last_step = int(complete[-1].name.removeprefix("checkpoint-"))
    for folder in complete:  # every folder with the final name is whole and loadable
        load_generator(folder / "generator")
        checkpoints.load_checkpoint(folder)
    result = run_module(["-m", "train", *tiny_args(tiny_data, run, "pretrain", steps=last_step + 3, save_every=3, resume="latest")])
    assert result.returncode == 0, result.stderr
    assert f"at step {last_step}" in result.stderr
    assert checkpoints.latest_checkpoint(run).name == f"checkpoint-{last_step + 3:07d}"
    assert not list((run / "checkpoints").glob("*.tmp-*"))


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tiny_data, tmp_path, monkeypatch):
    run = tmp_path / "full"
    assert main(tiny_args(tiny_data, run, "pretrain", steps=2)) == 0
    before = generator_state(run)

    def full_disk(tensors, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", full_disk)
    with pytest.raises(OSError, match="previous checkpoint is intact"):
        main(tiny_args(tiny_data, run, "pretrain", steps=4, resume="latest"))
    assert checkpoints.latest_checkpoint(run).name == "checkpoint-0000002"
    after = generator_state(run)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not list((run / "checkpoints").glob("*.tmp-*"))


def test_nan_loss_stops_with_a_clear_message_and_saves_nothing(tiny_data, tmp_path, monkeypatch, capsys):
    import train.trainer as trainer

    monkeypatch.setattr(trainer, "reconstruction_l1", lambda out, photo: (out * float("nan")).mean())
    assert main(tiny_args(tiny_data, tmp_path / "nan", "pretrain", steps=4)) == 3
    assert "became NaN/inf at step 1" in capsys.readouterr().err
    assert checkpoints.list_checkpoints(tmp_path / "nan") == []


def test_export_loads_in_the_apps_loader(tiny_data, tmp_path):
    run, out = tmp_path / "run", tmp_path / "export"
    assert main(tiny_args(tiny_data, tmp_path / "pre", "pretrain", steps=3)) == 0
    assert main([*tiny_args(tiny_data, run, steps=2), "--init", str(tmp_path / "pre")]) == 0
    assert main(["export", str(run), "-o", str(out), "--data-note", "tiny synthetic test data", "--notes", "two steps only"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    assert "tiny synthetic test data" in card and "adversarial to step 2" in card and "CC BY 4.0" in card
    assert "pretrain to step 3" in card and "two steps only" in card  # the run it started from, the notes
    assert "| conditioning | none: trained with fixed loss weights" in card
    expected = generator_state(run)
    loaded = load_generator(out).state_dict()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    assert Cartoonizer.from_pretrained(str(out), device="cpu")(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30, 3)


def test_discriminators_travel_alone_and_start_a_new_run(tiny_data, tmp_path):
    from train.trainer import Trainer

    trained, pretrained = tmp_path / "adv", tmp_path / "pre"
    assert main(tiny_args(tiny_data, trained, steps=2)) == 0
    assert main(tiny_args(tiny_data, pretrained, "pretrain", steps=2)) == 0
    packed = tmp_path / "discriminators.safetensors"
    checkpoints.save_discriminators(trained, packed)
    saved = load_file(str(checkpoints.resolve_checkpoint(trained) / "training.safetensors"))
    kept = load_file(str(packed))
    assert kept and all(key.startswith(("d_surface/", "d_texture/")) for key in kept)
    assert packed.stat().st_size < 0.5 * (checkpoints.resolve_checkpoint(trained) / "training.safetensors").stat().st_size
    for source in (packed, trained):  # the packed file, or the run's checkpoint itself
        trainer = Trainer(parse(tiny_args(tiny_data, tmp_path / "next", steps=1, init_discriminators=source)))
        for name in ("d_surface", "d_texture"):
            state = getattr(trainer, name).state_dict()
            assert all(torch.equal(state[key].cpu(), saved[f"{name}/{key}"]) for key in state)
    fresh = Trainer(parse(tiny_args(tiny_data, tmp_path / "fresh", steps=1))).d_surface.state_dict()
    assert not all(torch.equal(value.cpu(), saved[f"d_surface/{key}"]) for key, value in fresh.items())
    with pytest.raises(ValueError, match="no d_surface or d_texture"):
        checkpoints.save_discriminators(pretrained, tmp_path / "none.safetensors")
    with pytest.raises(SystemExit):
        parse(tiny_args(tiny_data, tmp_path / "x", init_discriminators=tmp_path / "missing.safetensors"))


def test_harvest_brings_back_every_checkpoints_generator_in_half_the_bytes_and_the_last_discriminators(tiny_data, tmp_path):
    from train.gpu_harvest import main as harvest_main

    run, target = tmp_path / "adv", tmp_path / "harvest"
    assert main(tiny_args(tiny_data, run, steps=4)) == 0
    found = checkpoints.list_checkpoints(run)
    assert harvest_main([str(run), str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted([p.name for p in found] + ["discriminators.safetensors"])
    photo = to_tensor(np.asarray(Image.open(next(iter(list_images(tiny_data / "photos")))).convert("RGB")))
    for checkpoint in found:
        full, half = checkpoint / "generator" / "model.safetensors", target / checkpoint.name / "model.safetensors"
        assert half.stat().st_size < 0.6 * full.stat().st_size
        exact, kept = load_generator(checkpoint / "generator"), load_generator(target / checkpoint.name)
        assert all(value.dtype == torch.float32 for value in kept.state_dict().values())
        with torch.no_grad():
            assert (exact(photo) - kept(photo)).abs().max() < 2 / 255
    packed, last = load_file(str(target / "discriminators.safetensors")), checkpoints.discriminator_tensors(found[-1])
    assert packed.keys() == last.keys() and all(torch.equal(packed[key], last[key]) for key in last)
    with pytest.raises(SystemExit, match="2"):
        harvest_main([str(tmp_path / "empty"), str(tmp_path / "nothing")])


def test_dry_run_prints_resolved_options_with_defaults_marked(tiny_data, capsys):
    assert main([*tiny_args(tiny_data, Path("unused"), steps=7), "--dry-run", "--w-texture", "2"]) == 0
    out = capsys.readouterr().out
    assert "w_texture: 2.0\t[default: 1.0]" in out and "w_structure: 200.0\n" in out and "steps: 7\t[default: 100000]" in out
    assert not Path("unused").exists()


def test_paper_loss_weight_defaults():
    args = parse(["adversarial", "--photos", "p", "--cartoons", "c"])
    assert (args.w_surface, args.w_texture, args.w_structure, args.w_content, args.w_tv) == (0.1, 1.0, 200.0, 200.0, 1e4)
    assert (args.lr, args.beta1, args.beta2, args.batch_size, args.patch_size) == (2e-4, 0.5, 0.99, 16, 256)
    assert all(getattr(args, f"w_{name}") == 0.0 for name in EXTRA_WEIGHTS)  # each has its option, off by default


def test_bad_options_are_refused():
    for device in ("cpu", "auto") if not torch.cuda.is_available() else ("cpu",):  # a CUDA graph needs a GPU
        with pytest.raises(SystemExit):
            parse(["adversarial", "--photos", "p", "--cartoons", "c", "--cuda-graph", "on", "--device", device])
    with pytest.raises(SystemExit):
        parse(["pretrain", "--photos", "p", "--patch-size", "30"])
    with pytest.raises(SystemExit):
        parse(["pretrain", "--photos", "p", "--resume", "/no/such/checkpoint"])


def test_the_step_is_a_cuda_graph_wherever_it_can_be():
    """``--cuda-graph auto`` (the default) replays the step as a graph exactly where ``on`` is allowed: CUDA, the
    fast step, one process, the structure targets on the device; ``on`` elsewhere is an error, ``off`` is off."""
    from train.graphed_step import resolve_cuda_graph

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_cuda_graph("auto", cuda, literal=False, world=1, structure_on="device")
    assert resolve_cuda_graph("on", cuda, literal=False, world=1, structure_on="device")
    assert not resolve_cuda_graph("off", cuda, literal=False, world=1, structure_on="device")
    for device, literal, world, structure_on in ((cpu, False, 1, "device"), (cuda, True, 1, "device"),
                                                 (cuda, False, 2, "device"), (cuda, False, 1, "host")):
        assert not resolve_cuda_graph("auto", device, literal, world, structure_on)
        with pytest.raises(ValueError, match="--cuda-graph on needs"):
            resolve_cuda_graph("on", device, literal, world, structure_on)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_cuda_graph("yes", cuda, literal=False, world=1, structure_on="device")
    assert parse(["adversarial", "--photos", "p", "--cartoons", "c"]).cuda_graph == "auto"


def test_two_process_ddp_on_cpu(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "train",
            *tiny_args(tiny_data, run, steps=3, save_every=3, sample_every=3)]
    result = run_module(args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x 2 process(es)" in result.stdout
    records = (run / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 3  # one logger
    assert [p.name for p in checkpoints.list_checkpoints(run)] == ["checkpoint-0000003"]  # one writer


def test_literal_step_computes_the_same_losses(tiny_data, tmp_path):
    """The benchmark's literal port runs and logs the same named losses as the fast path."""
    assert main(tiny_args(tiny_data, tmp_path / "literal", steps=2, literal=True)) == 0
    assert main(tiny_args(tiny_data, tmp_path / "fast", steps=2)) == 0
    literal, fast = ([json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
                     for run in ("literal", "fast"))
    assert set(literal[0]) == set(fast[0])
    # Same data, same initial weights: the first step's G losses agree (the fast path's bf16 aside).
    for key in ("g_surface", "g_texture", "tv"):
        assert abs(literal[0][key] - fast[0][key]) <= 0.05 * abs(literal[0][key]) + 1e-6, key


def test_evaluate_and_export_of_a_run_without_checkpoint_say_so(tmp_path, capsys):
    empty_run = tmp_path / "run"
    (empty_run / "checkpoints").mkdir(parents=True)
    assert main(["evaluate", "--model", str(empty_run), "--out", str(tmp_path / "eval")]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    assert main(["export", str(empty_run), "-o", str(tmp_path / "export")]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()


def test_one_resolver_from_run_checkpoint_or_export_to_the_generator(tiny_data, tmp_path):
    run = tmp_path / "pre"
    assert main(tiny_args(tiny_data, run, "pretrain", steps=2)) == 0
    latest = checkpoints.latest_checkpoint(run)
    export_dir = tmp_path / "export"
    assert main(["export", str(run), "-o", str(export_dir)]) == 0
    for given, expected in ((run, latest / "generator"), (latest, latest / "generator"), (export_dir, export_dir)):
        assert checkpoints.generator_folder(given) == expected


def test_structure_targets_on_the_device_path_train_and_resume(tiny_data, tmp_path):
    """The CUDA path's structure targets (batched torch SLIC), run here on the CPU: trains, logs, resumes exactly."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main(tiny_args(tiny_data, straight, steps=4, structure_on="device")) == 0
    assert main(tiny_args(tiny_data, interrupted, steps=2, structure_on="device")) == 0
    assert main(tiny_args(tiny_data, interrupted, steps=4, structure_on="device", resume="latest")) == 0
    a, b = generator_state(straight), generator_state(interrupted)
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["structure"]) and r["structure"] > 0 for r in records)


def test_device_structure_needs_slic(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_args(tiny_data, tmp_path / "run", steps=1, structure_on="device", structure="felzenszwalb"))
    assert exit_info.value.code == 2 and "needs SLIC" in capsys.readouterr().err


def test_recipe_trains_exports_within_its_budget_and_resumes(tiny_data, tmp_path, capsys):
    run = tmp_path / "recipe"
    args = ["recipe", "--minutes", "0.12", "--run-dir", str(run), "--photos", str(tiny_data / "photos"),
            "--cartoons", str(tiny_data / "cartoons"), "--perceptual", "tiny", "--device", "cpu", "--patch-size", "32",
            "--batch-size", "2", "--reserve-minutes", "0.02", "--no-evaluate",
            "--pretrain-args", "--channels 4 --num-blocks 1 --no-tensorboard --threads 1",
            "--adversarial-args", "--superpixel-workers 0 --no-tensorboard --threads 1"]
    start = time.monotonic()
    assert main(args) == 0
    assert time.monotonic() - start < 0.12 * 60 + 15  # the budget, plus start-up and export
    assert sorted(p.name for p in (run / "export").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (run / "export" / "README.md").read_text()
    assert "python -m train recipe --minutes 0.12" in card and "CPU" in card and "batch 2 x 32^2" in card
    adversarial_steps = int(checkpoints.latest_checkpoint(run / "adversarial").name.removeprefix("checkpoint-"))
    assert adversarial_steps > 0
    assert main(args) == 0  # again: the stages are done, nothing retrains
    record = json.loads((run / "recipe.json").read_text())
    assert record["sessions"][-1]["stages"] == {"pretrain": "done before", "adversarial": "done before"}
    assert int(checkpoints.latest_checkpoint(run / "adversarial").name.removeprefix("checkpoint-")) == adversarial_steps


def test_loss_conditional_training_exports_a_model_the_weights_steer(tiny_data, tmp_path):
    pre, adv, out = tmp_path / "pre", tmp_path / "adv", tmp_path / "export"
    assert main(tiny_args(tiny_data, pre, "pretrain", steps=2)) == 0
    assert main(tiny_args(tiny_data, adv, steps=4, init=pre, conditional=True, lr=2e-3, w_surface_prior=3)) == 0
    assert "surface_prior" in json.loads((adv / "metrics.jsonl").read_text().splitlines()[-1])  # in the real step
    assert main(["export", str(adv), "-o", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["condition_dim"] == 3
    card = (out / "README.md").read_text()
    assert "loss-conditional (FiLM" in card and "[1/4.0, 4.0]" in card
    assert "surface prior 3.0" in card and "the surface prior is scaled with the surface weight" in card
    cartoonizer = Cartoonizer.from_pretrained(str(out), device="cpu")
    assert cartoonizer.conditioned
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    default = cartoonizer.cartoonize_tensor(x)
    assert torch.equal(default, cartoonizer.cartoonize_tensor(x, cartoonizer.condition((1, 1, 1))))
    steered = cartoonizer.cartoonize_tensor(x, cartoonizer.condition((4, 0.25, 1)))
    assert not torch.equal(default, steered)  # the trained FiLM layers respond to the weights
    with pytest.raises(ValueError, match=r"\[1/16, 16\]"):
        cartoonizer.condition((100, 1, 1))


def test_condition_smoothness_scales_tv_and_chroma_with_the_surface_factor(tiny_data, tmp_path):
    """``--condition-smoothness``: G's total weights TV and chroma by the step's surface factor too."""
    from train.trainer import Trainer

    losses = {"g_surface": torch.tensor(0.3), "g_texture": torch.tensor(0.2), "content": torch.tensor(0.01),
              "tv": torch.tensor(1e-4), "colour": torch.tensor(0.02), "chroma": torch.tensor(0.05),
              "structure": torch.tensor(0.001)}
    totals = {}
    for run, extra in (("plain", {}), ("smooth", {"condition_smoothness": True})):
        trainer = Trainer(parse(tiny_args(tiny_data, tmp_path / run, steps=1, conditional=True, w_chroma=3, **extra)))
        trainer._factors = {"surface": 2.5, "structure": 1.0, "texture": 1.0}
        weighted = {name: value.clone().requires_grad_() for name, value in losses.items()}
        totals[run] = float(trainer._generator_update(weighted)["g_total"].detach())
    w_tv = trainer.weights["tv"]
    extra_smoothing = (2.5 - 1) * (w_tv * 1e-4 + 3 * 0.05)
    assert totals["smooth"] - totals["plain"] == pytest.approx(extra_smoothing, rel=1e-4)
    with pytest.raises(SystemExit):
        parse(["adversarial", "--photos", "p", "--cartoons", "c", "--condition-smoothness"])  # needs --conditional


def test_surface_prior_is_weighted_with_the_surface_factor(tiny_data, tmp_path):
    """``--w-surface-prior``: the grey L1 TV term joins G's total at its weight times the step's surface factor,
    and gets a gradient into G."""
    from train.trainer import Trainer

    trainer = Trainer(parse(tiny_args(tiny_data, tmp_path / "prior", steps=1, conditional=True, w_surface_prior=2.0)))
    assert trainer.weights["surface_prior"] == 2.0
    output = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    losses = {"g_surface": torch.tensor(0.3), "g_texture": torch.tensor(0.2), "content": torch.tensor(0.01),
              "tv": torch.tensor(0.0), "colour": torch.tensor(0.0), "structure": torch.tensor(0.0)}
    totals = {}
    for factor in (0.5, 3.0):
        trainer._factors = {"surface": factor, "structure": 1.0, "texture": 1.0}
        prior = grey_variation(output)
        totals[factor] = float(trainer._generator_update({**losses, "surface_prior": prior})["g_total"].detach())
        without = trainer.weights["surface"] * factor * 0.3 + trainer.weights["texture"] * 0.2 + trainer.weights["content"] * 0.01
        assert totals[factor] - without == pytest.approx(2.0 * factor * prior.item(), rel=1e-4)
    assert output.grad is not None and output.grad.abs().sum() > 0


def test_surface_measures_tell_outlines_from_fine_texture():
    """The plain surface measure counts outlines; the smooth-area one counts only grain (what "smoother" means)."""
    from train.weight_effects import surface_fine_texture, surface_high_frequency

    flat = np.full((96, 96, 3), 128, np.uint8)
    outlined = flat.copy()
    outlined[:, 48:] = 20  # one sharp, dark edge
    grain = np.clip(flat + np.random.default_rng(0).normal(0, 6, flat.shape), 0, 255).astype(np.uint8)
    assert surface_high_frequency(outlined) > surface_high_frequency(flat)
    assert surface_fine_texture(outlined) < 0.5  # the edge is not fine texture
    assert surface_fine_texture(grain) > surface_fine_texture(flat) + 0.01


def test_weight_effects_table_and_grid_for_a_conditioned_model(tmp_path, capsys):
    from cartoon.checkpoint import save_generator
    from cartoon.models import UNetGenerator

    torch.manual_seed(1)
    generator = UNetGenerator(channels=4, num_blocks=1, condition_dim=3)
    torch.nn.init.normal_(generator.conditioning.mlp[-1].weight, std=0.5)
    save_generator(generator, tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(ROOT / "assets" / "examples" / "coffee.jpg").save(photos / "coffee.png")
    assert main(["weight-effects", "--model", str(tmp_path / "model"), "--held-out", str(photos), "--side", "64",
                 "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    effects = json.loads((tmp_path / "out" / "effects.json").read_text())
    assert set(effects) == {"surface", "surface (smooth areas)", "structure", "texture"}
    assert len(effects["texture"]["values"]) == 5 and effects["surface (smooth areas)"]["weight"] == "surface"
    assert len(set(effects["structure"]["values"].values())) > 1  # the weights change the cartoons measured
    grid = np.asarray(Image.open(tmp_path / "out" / "grid.png"))
    assert grid.shape[0] > 3 * 64 and grid.shape[1] > 3 * 64
    curves = np.asarray(Image.open(tmp_path / "out" / "curves.png"))
    assert curves.shape[1] == 4 * 300 and (np.abs(curves.astype(int) - [200, 60, 30]).sum(-1) == 0).sum() > 100  # drawn

    save_generator(UNetGenerator(channels=4, num_blocks=1), tmp_path / "plain")
    assert main(["weight-effects", "--model", str(tmp_path / "plain"), "--held-out", str(photos)]) == 2
    assert "not a loss-conditional model" in capsys.readouterr().out


def test_evaluate_ranks_several_models_against_the_same_references(tiny_data, tmp_path):
    """``evaluate --model A B``: one row per model (named after its run), the baselines once, one sheet column each."""
    from safetensors.torch import save_file

    from train.evaluate import POOL_LAYER
    from train.perceptual import vgg_layers

    rng = np.random.default_rng(1)
    folders = {}
    for kind in ("held_out", "photos", "cartoons"):
        folders[kind] = tmp_path / kind
        folders[kind].mkdir()
        for index in range(2):
            img = rng.integers(0, 256, (1, 1, 3)) + rng.normal(0, 20, (160, 200, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folders[kind] / f"{index}.png")
    weights = tmp_path / "vgg16.safetensors"
    save_file(vgg_layers("vgg16", POOL_LAYER).state_dict(), str(weights))
    models = []
    for name, seed in (("first", 0), ("second", 1)):
        run = tmp_path / name
        assert main(tiny_args(tiny_data, run, "pretrain", steps=2, seed=seed)) == 0
        assert main(["export", str(run), "-o", str(run / "export")]) == 0
        models.append(str(run / "export"))
    from cartoon.checkpoint import save_generator
    from cartoon.models import UNetGenerator

    torch.manual_seed(1)
    steerable = UNetGenerator(channels=4, num_blocks=1, condition_dim=3)
    torch.nn.init.normal_(steerable.conditioning.mlp[-1].weight, std=0.5)
    save_generator(steerable, tmp_path / "steerable")
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", *models, str(tmp_path / "steerable"), "--held-out", str(folders["held_out"]),
                 "--photos", str(folders["photos"]), "--cartoons", str(folders["cartoons"]), "--vgg-weights",
                 str(weights), "--side", "160", "--crops", "4", "--reference-crops", "8", "--seeds", "2",
                 "--weights", "1,1,1", "1,4,0.5", "--out", str(out)]) == 0
    rows = json.loads((out / "quality.json").read_text())
    # The conditioned model gets one row per setting, the others one row each; the settings give different cartoons.
    assert {"ours: steerable @ 1,1,1", "ours: steerable @ 1,4,0.5"} <= set(rows) and "ours: steerable" not in rows
    assert rows["ours: steerable @ 1,1,1"]["fd_to_cartoons"] != rows["ours: steerable @ 1,4,0.5"]["fd_to_cartoons"]
    assert all(row["fd_to_cartoons_sd"] > 0 and row["fd_to_photos_sd"] > 0 for row in rows.values())  # two draws differ
    assert {"ours: first", "ours: second", "photo (input)", "bilateral x3"} <= set(rows)
    assert rows["ours: first"]["fd_to_cartoons"] != rows["ours: second"]["fd_to_cartoons"]  # each row is its model
    assert rows["photo (input)"]["colour_noise"] == pytest.approx(1.0)
    assert rows["photo (input)"]["colour_cast"] == 0.0 and rows["bilateral x3"]["colour_cast"] >= 0.0
    assert Image.open(out / "comparison.png").width == 360 * 6  # photo, cv2, the two models, the two settings


def test_structure_smoothing_trains_on_both_step_paths_and_changes_the_structure_loss(tiny_data, tmp_path):
    for run, extra in (("plain", {}), ("smooth", {"structure_smoothing": 0.03}),
                       ("smooth-literal", {"structure_smoothing": 0.03, "literal": True}),
                       ("smooth-by-output", {"structure_smoothing": 0.03, "structure_smoothing_guide": "output"})):
        assert main(tiny_args(tiny_data, tmp_path / run, steps=1, **extra)) == 0
    first = {run: json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0])
             for run in ("plain", "smooth", "smooth-literal", "smooth-by-output")}
    assert all(np.isfinite(record["structure"]) and record["structure"] > 0 for record in first.values())
    assert first["smooth"]["structure"] != first["plain"]["structure"]
    assert first["smooth"]["structure"] != first["smooth-by-output"]["structure"]  # the guide is the photo by default
    assert main(["export", str(tmp_path / "smooth"), "-o", str(tmp_path / "export")]) == 0
    assert "guided by the photo" in (tmp_path / "export" / "README.md").read_text()
    with pytest.raises(SystemExit):
        parse(["adversarial", "--photos", "p", "--cartoons", "c", "--structure-smoothing", "-1"])


def test_chroma_weight_adds_its_loss_to_g_on_both_step_paths_and_the_card_says_so(tiny_data, tmp_path):
    for run, extra in (("plain", {}), ("chroma", {"w_chroma": 3}), ("chroma-literal", {"w_chroma": 3, "literal": True})):
        assert main(tiny_args(tiny_data, tmp_path / run, steps=2, **extra)) == 0
    first = {run: json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0])
             for run in ("plain", "chroma", "chroma-literal")}
    assert "chroma" not in first["plain"]
    chroma = first["chroma"]["chroma"]
    assert chroma > 0 and first["chroma-literal"]["chroma"] == pytest.approx(chroma, rel=0.05)
    # Same seed, same first batch and weights: the only difference in G's total is 3 x the chroma term.
    assert first["chroma"]["g_total"] - first["plain"]["g_total"] == pytest.approx(3 * chroma, rel=0.02)
    assert main(["export", str(tmp_path / "chroma"), "-o", str(tmp_path / "export")]) == 0
    assert "chroma 3.0" in (tmp_path / "export" / "README.md").read_text()


def test_face_structure_factor_scales_the_structure_weight_on_face_steps_only(tiny_data, tmp_path):
    faces = {"photo_faces": tiny_data / "photos", "face_every": 2, "w_structure": 200}
    for run, extra in (("plain", faces), ("factor", {**faces, "face_structure_factor": 0.25})):
        assert main(tiny_args(tiny_data, tmp_path / run, steps=1, **extra)) == 0
    first = {run: json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0]) for run in ("plain", "factor")}
    # Step 0 is a face step; same seed and batch, so G's totals differ by (1 - 0.25) x 200 x the structure loss.
    structure = first["plain"]["structure"]
    assert structure > 0 and first["factor"]["structure"] == pytest.approx(structure)
    assert first["plain"]["g_total"] - first["factor"]["g_total"] == pytest.approx(0.75 * 200 * structure, rel=0.02)
    assert main(["export", str(tmp_path / "factor"), "-o", str(tmp_path / "export")]) == 0
    assert "on face steps (1 in 2) its weight x 0.25" in (tmp_path / "export" / "README.md").read_text()
    data = load_training_data(parse(tiny_args(tiny_data, tmp_path / "x", **faces)))
    assert [data.is_face_step(step) for step in range(5)] == [True, False, True, False, True]
    without = load_training_data(parse(tiny_args(tiny_data, tmp_path / "x")))
    assert not any(without.is_face_step(step) for step in range(5))  # no face folders: never
    with pytest.raises(SystemExit):
        parse(["adversarial", "--photos", "p", "--cartoons", "c", "--face-structure-factor", "-1"])


def test_face_prior_factor_scales_the_surface_prior_on_face_steps_and_cast_joins_g(tiny_data, tmp_path):
    """``--face-prior-factor`` scales the surface prior on face steps only; ``--w-cast`` adds its term to G."""
    base = {"photo_faces": tiny_data / "photos", "face_every": 2, "w_surface_prior": 2.0}
    runs = {"plain": base, "factor": {**base, "face_prior_factor": 0.25}, "cast": {**base, "w_cast": 50.0}}
    for run, extra in runs.items():
        assert main(tiny_args(tiny_data, tmp_path / run, steps=2, **extra)) == 0
    records = {run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
               for run in runs}
    prior = records["plain"][0]["surface_prior"]
    assert prior > 0 and records["factor"][0]["surface_prior"] == pytest.approx(prior)
    # Step 0 is a face step: G's totals differ by (1 - 0.25) x 2 x the prior; step 1 is not: nothing else differs.
    assert records["plain"][0]["g_total"] - records["factor"][0]["g_total"] == pytest.approx(0.75 * 2 * prior, rel=0.02)
    assert "cast" not in records["plain"][0]
    cast = records["cast"][0]["cast"]
    assert cast > 0 and records["cast"][0]["g_total"] - records["plain"][0]["g_total"] == pytest.approx(50 * cast, rel=0.02)
    assert main(["export", str(tmp_path / "factor"), "-o", str(tmp_path / "export")]) == 0
    assert "on face steps the surface prior's weight x 0.25" in (tmp_path / "export" / "README.md").read_text()
    assert main(["export", str(tmp_path / "cast"), "-o", str(tmp_path / "export-cast")]) == 0
    assert "cast 50.0" in (tmp_path / "export-cast" / "README.md").read_text()
    with pytest.raises(SystemExit):
        parse(["adversarial", "--photos", "p", "--cartoons", "c", "--face-prior-factor", "-1"])


def test_discriminator_warmup_keeps_the_generator_frozen_then_trains_it(tiny_data, tmp_path):
    assert main(tiny_args(tiny_data, tmp_path / "pre", "pretrain", steps=2)) == 0
    run = tmp_path / "warm"
    assert main(tiny_args(tiny_data, run, steps=4, init=tmp_path / "pre", d_warmup=2)) == 0
    start = generator_state(tmp_path / "pre")
    after_warmup = load_file(str(run / "checkpoints" / "checkpoint-0000002" / "generator" / "model.safetensors"))
    after = generator_state(run)
    assert all(torch.equal(start[k], after_warmup[k]) for k in start)  # G frozen for the first two steps
    assert any(not torch.equal(start[k], after[k]) for k in start)  # and trained after them
    ds = [load_file(str(run / "checkpoints" / f"checkpoint-000000{s}" / "training.safetensors")) for s in (2, 4)]
    assert any(k.startswith("d_surface/") and not torch.equal(ds[0][k], ds[1][k]) for k in ds[0])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert ["g_total" in r for r in records] == [False, False, True, True] and all("d_texture" in r for r in records)


def test_loss_gradient_report_covers_every_weighted_loss_and_smoothing_terms_remove_detail(tiny_data, tmp_path, capsys):
    from train.loss_gradients import main as report_main, report, trainer_for, training_crops

    run = tmp_path / "run"
    assert main(tiny_args(tiny_data, run, steps=2, w_chroma=1, w_colour=5)) == 0
    checkpoint = checkpoints.latest_checkpoint(run)
    trainer, options = trainer_for(checkpoint, None)
    assert options.w_chroma == 1 and options.patch_size == 32  # the run's own options, not the parser's defaults
    photo = to_tensor(training_crops(list_images(tiny_data / "photos"), 3, options, seed=0))
    rows = report(trainer, photo)
    assert set(rows) == {"g_surface", "g_texture", "content", "structure", "tv", "colour", "chroma"}
    for name, row in rows.items():
        shares = sum(value for key, value in row.items() if key.endswith("share"))
        assert shares == pytest.approx(1.0, abs=1e-4) and row["gradient norm"] > 0, name
    # A descent step on a total-variation term smooths: it removes the high frequencies the output has.
    assert rows["tv"]["grey cos"] < 0 and rows["tv"]["colour cos"] < 0 and rows["chroma"]["colour cos"] < 0
    assert report_main([str(run), "--crops", "2"]) == 0
    assert "| chroma |" in capsys.readouterr().out


def _step_inputs(trainer, faces: bool = False):
    data = load_training_data(trainer.args)
    batch = data.batch(0, trainer.args.batch_size, trainer.args.patch_size, trainer.data_rng)
    return trainer._prepare(batch["photo"]), trainer._prepare(batch["cartoon"]), trainer._draw(faces)


def test_the_fast_step_reads_no_host_value_so_that_a_cuda_graph_can_replay_it(tiny_data, tmp_path, monkeypatch):
    """What ``--cuda-graph on`` records must hold no host value, checked here on the CPU: the step body (device
    structure targets, conditioned G, every optional loss) reads no device value on the host, builds no tensor
    from host values and draws from no host generator (its optimisers aside: on CUDA they are capturable)."""
    from train.graphed_step import HostTraffic
    from train.trainer import Trainer

    import importlib

    surface = importlib.import_module("cartoon.representations.surface")  # the module (the package exports a function)
    # On CUDA the guided filter is torch ops; on the CPU a no-grad call goes through OpenCV: take CUDA's path here.
    monkeypatch.setattr(surface, "_guided_filter_opencv", surface._guided_filter_torch)
    options = dict(structure_on="device", conditional=True, w_chroma=1, w_surface_prior=1, w_cast=1, structure_smoothing=0.03)
    trainer = Trainer(parse(tiny_args(tiny_data, tmp_path / "run", **options)))
    photo, cartoon, draws = _step_inputs(trainer)
    trainer._captured_body(photo, cartoon, draws.packed)  # the first call builds the cached constants
    rngs = (trainer.shift_rng, trainer.condition_rng, trainer.data_rng)
    before = [g.get_state() for g in rngs] + [torch.get_rng_state()]
    with HostTraffic() as traffic:
        for optimizer in (trainer.g_opt, trainer.d_opt):
            monkeypatch.setattr(optimizer, "step", lambda _step=optimizer.step: _run_outside(traffic, _step))
        losses = trainer._captured_body(photo, cartoon, draws.packed)
    assert traffic.events == []
    assert all(torch.equal(a, g.get_state()) for a, g in zip(before, rngs)) and torch.equal(before[-1], torch.get_rng_state())
    assert set(losses) >= {"g_total", "structure", "chroma", "surface_prior", "cast", "d_surface", "d_texture"}
    # The checker is not blind: a host read in the body is reported with its place.
    with HostTraffic() as traffic:
        float(losses["g_total"].detach())
        torch.tensor([1.0])
        values = torch.stack(list(losses.values())).detach()
        values[values > 0]  # a boolean mask: CUDA's kernel counts the hits on the host
        values.nonzero()
    assert [op for op, _ in traffic.events] == ["__float__", "lift_fresh", "index", "nonzero"]
    assert traffic.events[0][1].startswith("train/test_training.py:")


def _run_outside(traffic, step):
    from train.graphed_step import outside

    with outside(traffic):
        return step()


def test_the_step_takes_what_varies_from_its_draws(tiny_data, tmp_path):
    """Everything a replayed step must vary comes in the draws tensor: the colour shift changes the texture loss,
    the loss weights change G's total and nothing else, the condition changes G's output."""
    from train.trainer import Trainer

    def first_losses(edit) -> dict[str, float]:
        trainer = Trainer(parse(tiny_args(tiny_data, tmp_path / "run", structure_on="device", conditional=True)))
        with torch.no_grad():  # a FiLM that responds (a new one starts as the identity)
            weight = trainer.generator.conditioning.mlp[-1].weight  # on CUDA where there is one: draw there
            torch.nn.init.normal_(weight, std=0.5, generator=torch.Generator(weight.device).manual_seed(1))
        photo, cartoon, draws = _step_inputs(trainer)
        packed = draws.packed.clone()
        edit(packed, len(trainer.g_loss_names))
        return {name: float(value.detach()) for name, value in trainer._captured_body(photo, cartoon, packed).items()}

    base = first_losses(lambda packed, n: None)
    assert first_losses(lambda packed, n: packed[:3].copy_(torch.tensor([1.0, 0.0, 0.0])))["g_texture"] != base["g_texture"]
    weighted = first_losses(lambda packed, n: packed[3 : 3 + n].mul_(2))
    assert weighted["g_total"] == pytest.approx(2 * base["g_total"], rel=1e-5)
    assert all(weighted[name] == base[name] for name in ("g_surface", "g_texture", "content", "structure"))
    steered = first_losses(lambda packed, n: packed[3 + n :].fill_(1.0))
    assert steered["content"] != base["content"] and steered["colour"] != base["colour"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (the CPU checks are the two tests above)")
def test_cuda_graph_steps_train_like_eager_steps(tiny_data, tmp_path, caplog):
    """``--cuda-graph on``: 3 eager steps, then the captured step replayed. Without augmentation (no random draw in
    the step) its losses follow the eager run's from the same seed up to the device's non-deterministic sums; with
    DiffAugment (its generator registered with the graph) they stay close, and change from step to step."""
    import logging

    def run(name: str, graph: str, **extra) -> list[dict]:
        assert main(tiny_args(tiny_data, tmp_path / name, steps=8, structure_on="device", device="cuda",
                              conditional=True, w_chroma=1, cuda_graph=graph, **extra)) == 0
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    keys = ("g_surface", "g_texture", "content", "structure", "g_total", "d_surface", "d_texture")
    with caplog.at_level(logging.INFO, logger="train"):
        plain = run("eager", "off", diffaugment="none"), run("graph", "on", diffaugment="none")
        augmented = run("eager-aug", "off"), run("graph-aug", "on")
    assert caplog.text.count("captured the step as a CUDA graph") == 2 and "capture failed" not in caplog.text
    for eager, graph in zip(*plain):
        for key in keys:
            assert graph[key] == pytest.approx(eager[key], rel=0.01, abs=1e-6), (eager["step"], key)
    for eager, graph in zip(*augmented):
        for key in keys:
            assert graph[key] == pytest.approx(eager[key], rel=0.25, abs=1e-5), (eager["step"], key)
    replayed = augmented[1][4:]
    assert len({record["g_texture"] for record in replayed}) == len(replayed)
    assert len({record["g_total"] for record in replayed}) == len(replayed)
