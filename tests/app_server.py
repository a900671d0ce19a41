"""Start the app for tests and benchmarks: in-process with a tiny test generator (:func:`running_app`), or as
``python app.py`` in a child process, as a user or a Space starts it (:func:`app_process`). Loopback only; no
weights are downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from cartoon.inference import Cartoonizer
from tests.conftest import make_tiny_generator


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def app_process(port: int, env: Mapping[str, str | None] | None = None, args: tuple[str, ...] = (),
                timeout_s: float = 120.0) -> Iterator[subprocess.Popen]:
    """``python app.py *args`` with ``env`` added to this environment (a None value unsets that variable; the Hub
    is offline); yields once the page answers on ``http://127.0.0.1:<port>/``, and stops the process on exit. Its
    output goes to a log file that is shown when it fails to start."""
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"app-{port}.log"
    merged = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    full_env = {name: value for name, value in merged.items() if value is not None}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app.py did not answer on port {port} within {timeout_s:.0f} s:\n"
                                       f"{log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log_path.unlink(missing_ok=True)


@contextmanager
def running_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import app

    cartoonizer = Cartoonizer(make_tiny_generator(), device="cpu")
    monkeypatch.setattr(app, "get_cartoonizer", lambda *_: cartoonizer)
    demo = app.build_demo()
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        demo.close()
