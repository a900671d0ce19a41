"""Cold start: `python app.py` to the first cartoon served, measured from outside the process.

    python benchmarks/cold_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def once() -> tuple[float, float]:
    from gradio_client import Client, handle_file

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if time.perf_counter() - start > 120:
                    raise
                time.sleep(0.1)
        ready = time.perf_counter() - start
        client.predict(handle_file(str(ROOT / "assets" / "examples" / "coffee.jpg")), api_name="/cartoonize")
        return ready, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [once() for _ in range(args.runs)]
    print(f"# cold start over {args.runs} runs ({os.cpu_count()} CPUs): page served after "
          f"{statistics.median(r[0] for r in results):.1f} s, first cartoon after {statistics.median(r[1] for r in results):.1f} s "
          f"(median; all: {', '.join(f'{r[1]:.1f}' for r in results)})")


if __name__ == "__main__":
    main()
