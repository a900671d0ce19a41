"""The Hub loop against a Hub stand-in on loopback (tests/hub_server.py), through huggingface_hub itself:
``python -m train push`` uploads, the app pulls at ``main`` or at a pinned commit, a second start offline uses the
cache, and every way the Hub can fail falls back to the bundled model quickly, with the status line saying why.

The app and the trainer run as processes with ``HF_ENDPOINT`` pointing at the stand-in, as a Space or a
maintainer would run them (``huggingface_hub`` reads its endpoint once, at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from cartoon.checkpoint import save_generator
from cartoon.inference import Cartoonizer
from tests.app_server import ROOT, app_process, free_port
from tests.conftest import make_tiny_generator
from tests.hub_server import FakeHub
from tests.train.conftest import _blobs, tiny_args
from train.__main__ import main as train_main

EXAMPLE = ROOT / "assets" / "examples" / "coffee.jpg"


def hub_env(hub: FakeHub, home: Path, offline: bool = False, **extra: str | None) -> dict[str, str | None]:
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1" if offline else "0",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "5",
            "CARTOON_MODEL_REVISION": None, **extra}


def checkpoint_files(seed: int, folder: Path) -> dict[str, bytes]:
    """The two files of a tiny checkpoint (seeded: different seeds, different models)."""
    folder = folder / f"checkpoint-{seed}"
    save_generator(make_tiny_generator(seed), folder)
    return {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}


def app_answers(port: int) -> tuple[str, np.ndarray]:
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    status = client.predict(api_name="/model_status")
    cartoon = np.asarray(Image.open(client.predict(handle_file(str(EXAMPLE)), api_name="/cartoonize")))
    return status, cartoon


def test_the_loop_train_export_push_then_the_app_serves_it(tmp_path):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for kind in ("photos", "cartoons"):
        (data / kind).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(_blobs(rng, 48, kind == "cartoons")).save(data / kind / f"{index}.png")
    run = tmp_path / "run"
    assert train_main(tiny_args(data, run, "pretrain", steps=2)) == 0
    assert train_main(["export", str(run), "-o", str(tmp_path / "export")]) == 0
    with FakeHub() as hub:
        push_env = {**os.environ, **{k: v for k, v in hub_env(hub, tmp_path / "hf").items() if v is not None},
                    "HF_TOKEN": "hf_test_token_not_secret"}
        pushed = subprocess.run([sys.executable, "-m", "train", "push", str(tmp_path / "export"), "--repo", "me/cartoons"],
                                cwd=ROOT, env=push_env, capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stderr[-2000:]
        sha = hub.repos["me/cartoons"].commits[-1][0]
        assert sha in pushed.stdout
        assert set(hub.repos["me/cartoons"].commits[-1][1]) == {"config.json", "model.safetensors", "README.md"}
        assert "hf_test_token_not_secret" not in pushed.stdout + pushed.stderr

        port = free_port()
        with app_process(port, hub_env(hub, tmp_path / "hf", CARTOON_MODEL_REPO="me/cartoons"), ("--port", str(port))):
            status, cartoon = app_answers(port)
        assert "me/cartoons@main (Hub)" in status
    # The cartoon is the pushed model's: the same as the exported folder gives here.
    local = Cartoonizer.from_pretrained(str(tmp_path / "export"), device="cpu")(EXAMPLE)
    assert cartoon.shape == local.shape and np.abs(cartoon.astype(int) - local.astype(int)).max() <= 2


RESOLVE = (
    "import hashlib, json, sys\n"
    "from cartoon.checkpoint import resolve_generator\n"
    "out = []\n"
    "for revision in sys.argv[2:]:\n"
    "    model, source = resolve_generator(sys.argv[1], revision or None)\n"
    "    digest = hashlib.sha256(b''.join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()\n"
    "    out.append([source.kind, source.describe(), digest])\n"
    "print(json.dumps(out))\n"
)


def resolve_in_a_fresh_process(env: dict[str, str | None], repo: str, *revisions: str) -> list[list[str]]:
    """What the app's loader picks, in a new interpreter (huggingface_hub reads HF_ENDPOINT and offline mode once)."""
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    result = subprocess.run([sys.executable, "-c", RESOLVE, repo, *revisions], cwd=ROOT, env=full, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pull_at_main_at_a_pinned_commit_and_offline_from_the_cache(tmp_path):
    home = tmp_path / "hf"
    with FakeHub() as hub:
        first = hub.commit("me/pinned", checkpoint_files(1, tmp_path))
        second = hub.commit("me/pinned", checkpoint_files(2, tmp_path))
        main, pinned = resolve_in_a_fresh_process(hub_env(hub, home), "me/pinned", "", first)
        gets = [r for r in hub.requests if r.startswith("GET /me/pinned/resolve/")]
    (offline,) = resolve_in_a_fresh_process(hub_env(hub, home, offline=True), "me/pinned", "")  # the server is gone
    assert main[:2] == ["hub", "me/pinned@main (Hub)"]
    assert pinned[:2] == ["hub", f"me/pinned@{first} (Hub)"]
    assert offline[0] == "cache" and offline[1].startswith("me/pinned@main (Hub cache")
    assert main[2] != pinned[2]  # two different models
    assert offline[2] == main[2]  # the cache serves what main served
    assert any(second in r for r in gets) and any(first in r for r in gets)


FAULTS = {
    "me/truncated": "damaged",  # model.safetensors cut in half
    "me/missing": None,  # no such repository: 404
    "me/failing": "error",  # HTTP 500
    "me/silent": "silent",  # accepts the connection, never answers
}


def test_every_hub_failure_falls_back_to_the_bundled_model_quickly_and_says_why(tmp_path):
    script = (
        "import json, sys, time\n"
        "from cartoon.checkpoint import resolve_generator\n"
        "out = {}\n"
        "for repo in sys.argv[1:]:\n"
        "    start = time.monotonic()\n"
        "    _, source = resolve_generator(repo)\n"
        "    out[repo] = [source.kind, source.describe(), time.monotonic() - start]\n"
        "print(json.dumps(out))\n"
    )
    with FakeHub() as hub:
        files = checkpoint_files(3, tmp_path)
        hub.commit("me/truncated", {**files, "model.safetensors": files["model.safetensors"][: len(files["model.safetensors"]) // 2]})
        for repo in ("me/failing", "me/silent"):
            hub.commit(repo, files)
        hub.repos["me/failing"].fault, hub.repos["me/silent"].fault = "error", "silent"
        env = {**os.environ, **{k: v for k, v in hub_env(hub, tmp_path / "hf").items() if v is not None}}
        env.pop("CARTOON_MODEL_REPO", None)
        result = subprocess.run([sys.executable, "-c", script, *FAULTS], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    for repo in FAULTS:
        kind, status, seconds = outcome[repo]
        assert kind == "bundled", (repo, status)
        assert status.startswith("bundled model (assets/model); ") and repo in status, status
        assert seconds < 15, (repo, seconds)  # bounded: the Hub timeouts are 2 s
    assert "corrupt or truncated" in outcome["me/truncated"][1]
    assert "not available on the Hub" in outcome["me/missing"][1]
