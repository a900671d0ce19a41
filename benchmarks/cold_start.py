"""Cold start: `python app.py` to the first cartoon served, measured from outside the process.

    python benchmarks/cold_start.py [--runs 3] [--json runs/bench/cold_start.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import Timing, add_json_option, write_json  # noqa: E402
from tests.app_server import app_process, free_port  # noqa: E402


def once() -> tuple[float, float]:
    """Seconds from the start of ``python app.py`` until the page answers, and until the first cartoon."""
    from gradio_client import Client, handle_file

    port = free_port()
    start = time.perf_counter()
    with app_process(port, args=("--port", str(port))):
        ready = time.perf_counter() - start
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(handle_file(str(ROOT / "assets" / "examples" / "coffee.jpg")), api_name="/cartoonize")
        return ready, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    results = [once() for _ in range(args.runs)]
    page, cartoon = Timing.of([r[0] for r in results]), Timing.of([r[1] for r in results])
    print(f"# cold start over {args.runs} runs: median (quartiles), seconds")
    print("| event | s |\n|---|---|")
    print(f"| page served | {page.median:.1f} ({page.q1:.1f}-{page.q3:.1f}) |")
    print(f"| first cartoon | {cartoon.median:.1f} ({cartoon.q1:.1f}-{cartoon.q3:.1f}) |")
    write_json(args.json, "cold_start", [{"event": "page served", "seconds": page}, {"event": "first cartoon", "seconds": cartoon}])


if __name__ == "__main__":
    main()
