"""Launch the app in-process on a free loopback port with a tiny test generator (no weights are downloaded)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cartoon.inference import Cartoonizer
from tests.conftest import make_tiny_generator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import app

    cartoonizer = Cartoonizer(make_tiny_generator(), device="cpu")
    monkeypatch.setattr(app, "get_cartoonizer", lambda: cartoonizer)
    demo = app.build_demo()
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        demo.close()
