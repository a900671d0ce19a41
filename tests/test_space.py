"""The app started as a Hugging Face Space starts it, and as a user starts it locally: what it listens on (read
from the kernel's socket table, not the log), whether it serves, and what ``spaces.GPU`` wraps.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from tests.app_server import ROOT, app_process, free_port

EXAMPLE = ROOT / "assets" / "examples" / "coffee.jpg"

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")

# A stand-in for the `spaces` package (preinstalled on Spaces): it records what it decorates and each call.
# Gradio itself passes every event function through gradio_auto_wrap on a Space; the real one wraps nothing
# unless auto-wrapping is switched on, and neither does this one.
FAKE_SPACES = '''
import functools, os

def gradio_auto_wrap(function):
    return function

def _record(line):
    with open(os.environ["FAKE_SPACES_LOG"], "a") as handle:
        handle.write(line + "\\n")

def GPU(fn=None, **options):
    def decorate(function):
        _record(f"decorate {function.__name__}")
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            _record(f"call {function.__name__}")
            return function(*args, **kwargs)
        return wrapper
    return decorate(fn) if fn is not None else decorate
'''


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            if width == 4:
                host = ".".join(str(b) for b in raw[::-1])
            else:
                words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
                host = ":".join(b"".join(words)[i : i + 2].hex() for i in range(0, 16, 2))
            found.add((host, int(port, 16)))
    return found


@pytest.fixture()
def fake_spaces(tmp_path) -> tuple[Path, Path]:
    """A folder with the stand-in ``spaces`` module, and the file it records to."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "spaces.py").write_text(FAKE_SPACES)
    return folder, tmp_path / "spaces.log"


def space_env(port: int, fake: tuple[Path, Path], zero_gpu: bool) -> dict[str, str | None]:
    folder, log = fake
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port), "SYSTEM": "spaces",
           "SPACE_ID": "someone/whitebox-cartoonizer", "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}",
           "FAKE_SPACES_LOG": str(log), "CARTOON_HOST": None, "CARTOON_PORT": None}
    if zero_gpu:
        env["SPACES_ZERO_GPU"] = "true"
    return env


def cartoon_of(port: int) -> np.ndarray:
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    views = client.predict(handle_file(str(EXAMPLE)), api_name="/representations")
    assert len(views) == 4
    return np.asarray(Image.open(client.predict(handle_file(str(EXAMPLE)), api_name="/cartoonize")))


def test_a_zero_gpu_space_listens_where_the_space_says_and_wraps_only_the_generator_calls(fake_spaces):
    port = free_port()
    with app_process(port, space_env(port, fake_spaces, zero_gpu=True)) as process:
        assert ("0.0.0.0", port) in listening(process.pid)
        with Image.open(EXAMPLE) as photo:
            assert cartoon_of(port).shape == (photo.height, photo.width, 3)
    records = fake_spaces[1].read_text().splitlines()
    # Only the generator call and the video frame loop hold a GPU; the explorer's views never ask for one.
    assert sorted(r for r in records if r.startswith("decorate")) == ["decorate run_generator", "decorate run_video"]
    assert records.count("call run_generator") == 1  # /cartoonize went through it; /representations did not


def test_a_cpu_space_with_spaces_importable_uses_no_gpu_decorator(fake_spaces):
    port = free_port()
    with app_process(port, space_env(port, fake_spaces, zero_gpu=False)) as process:
        assert ("0.0.0.0", port) in listening(process.pid)
        assert cartoon_of(port).ndim == 3
    records = fake_spaces[1].read_text().splitlines() if fake_spaces[1].exists() else []
    assert records == []  # spaces.GPU never decorated anything, nothing went through it


def test_a_local_start_listens_on_loopback_only():
    port = free_port()
    env = {"CARTOON_PORT": str(port), "CARTOON_HOST": None, "GRADIO_SERVER_NAME": None, "GRADIO_SERVER_PORT": None}
    with app_process(port, env) as process:
        assert listening(process.pid) == {("127.0.0.1", port)}


@pytest.mark.parametrize(
    "flags,environ,expected",
    [((None, None), {}, ("127.0.0.1", 7860)),
     ((None, None), {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}, ("0.0.0.0", 7861)),
     ((None, None), {"CARTOON_HOST": "10.0.0.5", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"},
      ("10.0.0.5", 7861)),
     ((None, None), {"CARTOON_PORT": "8000", "GRADIO_SERVER_PORT": "7861"}, ("127.0.0.1", 8000)),
     (("::1", 9000), {"CARTOON_HOST": "0.0.0.0", "CARTOON_PORT": "8000"}, ("::1", 9000)),
     ((None, None), {"CARTOON_HOST": "", "GRADIO_SERVER_NAME": "0.0.0.0"}, ("0.0.0.0", 7860))],
)
def test_address_resolution_order(flags, environ, expected):
    assert app.server_address(*flags, environ=environ) == expected


@pytest.mark.parametrize("port", ["http", "0", "70000", "-1"])
def test_a_bad_port_is_refused_and_names_its_source(port):
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT"):
        app.server_address(environ={"GRADIO_SERVER_PORT": port})


def test_readme_front_matter_matches_requirements():
    readme = (ROOT / "README.md").read_text()
    front = readme.split("---")[1]
    fields = dict(re.findall(r"^(\w+):\s*(.+)$", front, flags=re.M))
    pins = dict(re.findall(r"^([\w-]+)==([\w.+]+)", (ROOT / "requirements.txt").read_text(), flags=re.M))
    assert fields["sdk"] == "gradio" and fields["sdk_version"] == pins["gradio"]
    assert fields["app_file"] == "app.py"
    assert fields["python_version"].strip('"') == f"{sys.version_info.major}.{sys.version_info.minor}"
    from cartoon.checkpoint import DEFAULT_REPO_ID

    # The Hub lists a Space under the models it names: the published repo once there is one, nothing before.
    assert fields["models"] == (f"[{DEFAULT_REPO_ID}]" if DEFAULT_REPO_ID else "[]")
