"""The app serves nothing outside its folders, caps uploads, loads only safetensors, and keeps tokens secret."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import app
from tests.app_server import running_app

ROOT = Path(__file__).resolve().parent.parent
SECRET_FILES = ["/etc/passwd", str(ROOT / "app.py"), str(ROOT / "cartoon" / "checkpoint.py")]


VIDEO_LIMIT_MB = 24  # a small video limit keeps the over-the-cap upload below small


@pytest.fixture(scope="module")
def url():
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(app, "VIDEO_MAX_MB", VIDEO_LIMIT_MB)
        with running_app(monkeypatch) as address:
            yield address.rstrip("/")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd",
                                    str(ROOT / "app.py"), str(ROOT / "README.md"), str(app.EXAMPLES_DIR / ".." / ".." / "app.py")])
def test_file_route_refuses_paths_outside_the_app(url, target):
    response = httpx.get(f"{url}/gradio_api/file={target}", timeout=10)
    assert response.status_code in (403, 404), response.status_code
    assert "root:" not in response.text and "import gradio" not in response.text


def test_examples_are_served(url):
    response = httpx.get(f"{url}/gradio_api/file={app.EXAMPLES_DIR / 'coffee.jpg'}", timeout=10)
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"


@pytest.mark.parametrize("path", SECRET_FILES)
def test_api_payload_paths_outside_the_app_are_refused(url, path):
    """A hand-made request naming a server file as the 'upload' never reads it."""
    payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
    start = httpx.post(f"{url}/gradio_api/call/cartoonize", json=payload, timeout=10)
    assert start.status_code in (200, 400, 403, 422)
    if start.status_code != 200:  # refused up front
        return
    event_id = start.json()["event_id"]
    stream = httpx.get(f"{url}/gradio_api/call/cartoonize/{event_id}", timeout=60).text
    assert "event: error" in stream
    assert "root:" not in stream and "import" not in stream


def test_upload_size_is_capped(url, tmp_path):
    """The server refuses uploads over the larger of its two limits (videos'); a photo over the photos' limit but
    under that one is refused by the handler, with the limit in the message."""
    cap = max(app.MAX_UPLOAD_MB, VIDEO_LIMIT_MB)
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (cap * 1024 * 1024 + 1024)
    response = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.jpg", big, "image/jpeg")}, timeout=60)
    assert response.status_code in (400, 413), response.status_code
    from gradio_client import Client, handle_file

    photo = tmp_path / "large.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * (app.MAX_UPLOAD_MB * 1_000_000 + 1000))
    with pytest.raises(Exception, match="the limit for photos is 20 MB"):
        Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/cartoonize")


def test_the_page_states_the_limits(url):
    config = httpx.get(f"{url}/config", timeout=10).text
    assert f"{app.MAX_UPLOAD_MB} MB" in config and f"{app.MAX_MEGAPIXELS} megapixels" in config


def test_no_pickle_loading_anywhere():
    sources = [ROOT / "app.py", *ROOT.glob("cartoon/**/*.py"), *ROOT.glob("train/**/*.py"), *ROOT.glob("benchmarks/*.py")]
    pattern = re.compile(r"torch\.load\(|pickle\.loads?\(|import pickle|joblib|np\.load\([^)]*allow_pickle=True")
    assert [str(p) for p in sources if pattern.search(p.read_text())] == []


def test_hf_token_is_read_only_for_push():
    reads = re.compile(r"(environ|getenv)[^\n]{0,12}HF_TOKEN")
    users = [p.relative_to(ROOT).as_posix() for p in [ROOT / "app.py", *ROOT.glob("cartoon/**/*.py"), *ROOT.glob("train/**/*.py")]
             if reads.search(p.read_text())]
    assert users == ["train/export.py"]


def test_push_without_token_says_so_and_never_prints_it(tmp_path, monkeypatch, capsys):
    from train.export import push

    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="set HF_TOKEN"):
        push(tmp_path, "someone/model")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception) as error:
        push(tmp_path, "someone/model")
    assert "hf_secret_value_123" not in str(error.value) + capsys.readouterr().out
