"""Load test: 16 concurrent clients against `python app.py` on loopback, for a bounded time.

    python benchmarks/load_test.py [--clients 16] [--seconds 60] [--model assets/model]

Phase 1: each client loops /cartoonize and /representations over the example photos until time is up;
reports latency percentiles and failures. Phase 2: a burst larger than the queue, to show that a full queue
rejects politely. Memory: the server's RSS before, at peak and after. Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import add_json_option, write_json  # noqa: E402
from tests.app_server import app_process, free_port  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tiny_model(folder: Path) -> Path:
    import torch

    from cartoon.checkpoint import save_generator
    from cartoon.models import UNetGenerator

    torch.manual_seed(0)
    save_generator(UNetGenerator(), folder)  # full-size architecture, random weights: same cost as a real one
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--burst", type=int, default=64, help="requests fired at once in phase 2")
    parser.add_argument("--model", type=Path, default=ROOT / "assets" / "model")
    add_json_option(parser)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp())
    model = args.model if (args.model / "model.safetensors").exists() else tiny_model(tmp / "model")
    port = free_port()
    env = {"CARTOON_MODEL_REPO": str(model), "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    url = f"http://127.0.0.1:{port}/"
    with app_process(port, env, ("--port", str(port))) as server:
        photos = sorted((ROOT / "assets" / "examples").glob("*.jpg"))
        warm = Client(url, verbose=False)
        warm.predict(handle_file(str(photos[0])), api_name="/cartoonize")
        baseline = rss_mb(server.pid)

        latencies: dict[str, list[float]] = {"/cartoonize": [], "/representations": []}
        failures: list[str] = []
        peak = [baseline]
        stop_at = time.time() + args.seconds
        lock = threading.Lock()

        def user(index: int) -> None:
            client = Client(url, verbose=False)
            turn = index
            while time.time() < stop_at:
                photo = handle_file(str(photos[turn % len(photos)]))
                endpoint = "/cartoonize" if turn % 2 == 0 else "/representations"
                start = time.perf_counter()
                try:
                    client.predict(photo, api_name=endpoint)  # /representations: every control at its default
                    with lock:
                        latencies[endpoint].append(time.perf_counter() - start)
                except Exception as error:  # noqa: BLE001
                    with lock:
                        failures.append(f"{endpoint}: {error}")
                turn += 1

        def watch() -> None:
            while time.time() < stop_at + 5:
                peak.append(rss_mb(server.pid))
                time.sleep(0.5)

        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)] + [threading.Thread(target=watch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # Phase 2: a burst bigger than the queue.
        burst_clients = [Client(url, verbose=False) for _ in range(8)]
        jobs = [burst_clients[i % 8].submit(handle_file(str(photos[i % len(photos)])), api_name="/cartoonize")
                for i in range(args.burst)]
        done, rejected, other = 0, 0, []
        for job in jobs:
            try:
                job.result(timeout=600)
                done += 1
            except Exception as error:  # noqa: BLE001
                if "queue is full" in str(error).lower():
                    rejected += 1
                else:
                    other.append(str(error)[:120])
        time.sleep(3)
        after = rss_mb(server.pid)

        print(f"# load test: {args.clients} clients x {args.seconds:.0f} s on 127.0.0.1, model {model}, "
              f"{os.cpu_count()} CPUs")
        print("| endpoint | requests | p50 s | p90 s | p99 s | max s |\n|---|---|---|---|---|---|")
        for endpoint, values in latencies.items():
            if values:
                p = np.percentile(values, [50, 90, 99])
                print(f"| {endpoint} | {len(values)} | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} | {max(values):.2f} |")
        print(f"\nfailures in phase 1: {len(failures)}" + (f" (first: {failures[0]})" if failures else ""))
        print(f"burst of {args.burst}: {done} served, {rejected} rejected politely (queue full), {len(other)} other errors"
              + (f" (first: {other[0]})" if other else ""))
        print(f"server RSS: baseline {baseline:.0f} MB, peak {max(peak):.0f} MB, after {after:.0f} MB")
        rows = [{"endpoint": endpoint, "requests": len(values), "p50_s": float(np.percentile(values, 50)),
                 "p90_s": float(np.percentile(values, 90)), "p99_s": float(np.percentile(values, 99)), "max_s": max(values)}
                for endpoint, values in latencies.items() if values]
        write_json(args.json, "load_test", rows, clients=args.clients, seconds=args.seconds, phase1_failures=len(failures),
                   burst={"size": args.burst, "served": done, "rejected": rejected, "other": len(other)},
                   rss_mb={"baseline": baseline, "peak": max(peak), "after": after})


if __name__ == "__main__":
    main()
