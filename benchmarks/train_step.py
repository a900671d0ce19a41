"""Training-step speed: the authors' literal step, the fast path and its structure-target paths, in one run.

    python benchmarks/train_step.py [--device cpu|cuda] [--patch 128] [--batch 8] [--steps 8] [--warmup 2]
                                    [--vgg-weights weights/vgg16_features.safetensors] [--json PATH]
                                    [--profile N] [--sync-check N] [--traffic] [--only 'TEXT|...']

Prints steps/s per variant and the share of each step spent waiting for its structure targets (the host
pool: blocked on the workers; the device path: its kernels, timed with the device synchronised around them,
which also serialises the step a little). ``--traffic`` counts, on any device, the kernels one step launches and
the bytes they read and write, by source line: what a GPU step costs, seen from a machine without one. Uses VGG16
conv4_3 (random weights if the extracted file is missing: the speed is the same) and scikit-image's sample photos
as data. Not a test: numbers depend on the
machine. On a GPU: ``--device cuda --patch 256 --batch 16`` is the issue's setting.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from skimage import data as samples  # noqa: E402

from benchmarks.timing import Timing, add_json_option, machine, write_json  # noqa: E402
from cartoon.representations import structure  # noqa: E402
from train.data import load_training_data  # noqa: E402
from train.options import parse  # noqa: E402
from train.perceptual import VGG16_CONV4_3, vgg_layers  # noqa: E402
from train.superpixels import DeviceStructure  # noqa: E402
from train.trainer import Trainer  # noqa: E402

VARIANTS = {
    "pretrain (L1 reconstruction)": ["pretrain"],
    "literal port (fp32, NCHW, G x3, superpixels inline, VGG per loss)": ["adversarial", "--literal"],
    "fast, fp32, host superpixels (2 workers)": ["adversarial", "--bf16", "off", "--structure-on", "host"],
    "fast, bf16, host superpixels (2 workers)": ["adversarial", "--bf16", "on", "--structure-on", "host"],
    "fast, bf16, host superpixels inline": ["adversarial", "--bf16", "on", "--structure-on", "host",
                                            "--superpixel-workers", "0"],
    "fast, bf16, structure on the device (torch SLIC)": ["adversarial", "--bf16", "on", "--structure-on", "device"],
    "fast, fp32 (TF32 convolutions on CUDA: no autocast casts), structure on the device": [
        "adversarial", "--bf16", "off", "--structure-on", "device"],
    "fast, bf16, structure on the device, cuDNN autotuned": ["adversarial", "--bf16", "on", "--structure-on", "device",
                                                            "+cudnn-benchmark"],
    "fast, bf16, structure on the device, torch.compile (G, Ds, VGG)": ["adversarial", "--bf16", "on", "--structure-on",
                                                                        "device", "+compile"],
    "fast, bf16, structure on the device, the step as one CUDA graph": ["adversarial", "--bf16", "on", "--structure-on",
                                                                         "device", "--cuda-graph", "on"],
    # Eagerly the autotuner measured slower (12.5 against 14.7 steps/s on one H200), perhaps through more launches
    # while the host bounded the step; a graph replays what the warm-up picked, so only the kernels' time counts.
    "fast, bf16, structure on the device, the step as one CUDA graph, cuDNN autotuned": [
        "adversarial", "--bf16", "on", "--structure-on", "device", "--cuda-graph", "on", "+cudnn-benchmark"],
}


def needs_cuda(extra: list[str]) -> bool:
    """Variants that replay a CUDA graph need CUDA: skipped (with a note) on the CPU."""
    return "--cuda-graph" in extra and extra[extra.index("--cuda-graph") + 1] == "on"


COMPILE = "+compile"
"""Not a trainer option: the benchmark wraps the trainer's networks in ``torch.compile`` (issue 14 asks to try it)."""
CUDNN_BENCHMARK = "+cudnn-benchmark"
"""Not a trainer option: ``torch.backends.cudnn.benchmark`` on for the variant (each convolution shape timed once,
the fastest algorithm kept; a run's shapes are fixed by its patch and batch)."""


def make_data(root: Path) -> None:
    photos = [samples.astronaut(), samples.coffee(), samples.chelsea(), samples.rocket()]
    for kind in ("photos", "cartoons"):
        (root / kind).mkdir(parents=True)
        for index, img in enumerate(photos):
            Image.fromarray(img if kind == "photos" else structure(img)).save(root / kind / f"{index}.png")


def time_variant(root: Path, weights: Path, extra: list[str], args: argparse.Namespace) -> tuple[Timing, float | None]:
    """Seconds per step (each timed on its own after the warm-up) and the share spent waiting for structure."""
    command, *flags = extra
    compiled, autotuned = COMPILE in flags, CUDNN_BENCHMARK in flags
    flags = [flag for flag in flags if flag not in (COMPILE, CUDNN_BENCHMARK)]
    torch.backends.cudnn.benchmark = autotuned
    options = [command, "--photos", str(root / "photos"), "--patch-size", str(args.patch), "--batch-size",
               str(args.batch), "--run-dir", str(root / "run"), "--no-tensorboard", "--device", args.device, *flags]
    if command == "adversarial":
        options += ["--cartoons", str(root / "cartoons"), "--perceptual", "vgg16", "--vgg-weights", str(weights)]
        if "--cuda-graph" not in flags:  # the trainer's default (auto) replays a graph on CUDA: these rows are eager
            options += ["--cuda-graph", "off"]
    trainer = Trainer(parse(options))
    if compiled:
        trainer.g_train = torch.compile(trainer.g_train)
        trainer.d_surface_train = torch.compile(trainer.d_surface_train)
        trainer.d_texture_train = torch.compile(trainer.d_texture_train)
        trainer.perceptual = torch.compile(trainer.perceptual)
    data = load_training_data(trainer.args)
    data.place(trainer.device)
    captured = getattr(trainer, "_captured", None)
    if isinstance(getattr(trainer, "superpixels", None), DeviceStructure) and captured is None:
        trainer.superpixels.synchronize = True  # a graph cannot hold host waits: its SLIC share goes untimed
    sync = trainer.device.type == "cuda"
    try:
        seconds, waited = [], 0.0
        for index in range(args.warmup + args.steps):
            if index == args.warmup and hasattr(trainer, "superpixels"):
                trainer.superpixels.waited_s = 0.0
            start = time.perf_counter()
            losses = trainer.step(data.batch(index, args.batch, args.patch, trainer.data_rng))
            if sync:
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
        trainer.verify_finite()
        if captured is not None:
            print(f"# CUDA graph: {'captured' if captured.captured else f'not captured ({captured.failed})'}", flush=True)
        if args.profile:
            profile_steps(trainer, data, args)
        if args.sync_check:
            sync_report(trainer, data, args)
        if args.traffic:
            traffic_report(trainer, data, args, replayed=captured is not None and captured.captured)
        del losses
        if hasattr(trainer, "superpixels"):
            waited = trainer.superpixels.waited_s
        timing = Timing.of(seconds[args.warmup:])
        # the literal step computes them inline; a replayed graph does not run its body on the host (nothing to time)
        uses_targets = command == "adversarial" and "--literal" not in flags and captured is None
        return timing, (waited / sum(seconds[args.warmup:]) if uses_targets else None)
    finally:
        if hasattr(trainer, "superpixels"):
            trainer.superpixels.close()


def profile_steps(trainer: Trainer, data, args: argparse.Namespace) -> None:
    """``--profile N``: N more steps under torch.profiler; prints where the host and the device spend the step
    and how many device kernels one step launches (launch-bound when the host time per step exceeds the device's)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for index in range(args.profile):
            trainer.step(data.batch(index, args.batch, args.patch, trainer.data_rng))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    if trainer.device.type == "cuda":
        kernels = sum(e.count for e in prof.events() if e.device_type.name == "CUDA") / args.profile
        print(f"# {kernels:.0f} device kernels per step")
        print(events.table(sort_by="self_cuda_time_total", row_limit=15))
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))


def sync_report(trainer: Trainer, data, args: argparse.Namespace) -> None:
    """``--sync-check N`` (CUDA): N more steps with torch's sync debug mode on; prints how many times a step made the
    host wait for the device, and where (the step should not: issue 14), e.g. a blocking host-to-device copy."""
    if trainer.device.type != "cuda":
        print("# --sync-check: CUDA only (on the CPU nothing waits for a device)")
        return
    import warnings
    from collections import Counter

    timed = getattr(trainer, "superpixels", None)
    if isinstance(timed, DeviceStructure):
        timed.synchronize = False  # the benchmark's own timing syncs are not the step's
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for index in range(args.sync_check):
                trainer.step(data.batch(index, args.batch, args.patch, trainer.data_rng))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    places = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
    print(f"# host waits for the device per step: {sum(places.values()) / args.sync_check:.1f}"
          + "".join(f"\n#   {place}: {count / args.sync_check:.1f}" for place, count in places.most_common()))


ALLOCATIONS = frozenset({"empty", "empty_strided", "empty_like", "detach", "lift_fresh", "set_", "resize_"})
"""Ops that launch no kernel (views are told apart by ``OpOverload.is_view``)."""


def storage_bytes(tensor: torch.Tensor) -> int:
    """The bytes of memory a tensor's elements span: an expanded (stride 0) dimension is read once, not per index."""
    if tensor.numel() == 0:
        return 0
    span = 1 + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride()) if stride > 0)
    return min(span, tensor.numel()) * tensor.element_size()


def traffic_report(trainer: Trainer, data, args: argparse.Namespace, replayed: bool) -> None:
    """``--traffic``: one more step with every op counted; prints its kernels (each op but views and allocations)
    and the bytes of its inputs and outputs, in all, by file and for the lines that move the most. An op of a
    backward pass counts for the forward line it differentiates (``backward of file:line``: autograd's anomaly
    mode records where each node was made). On a GPU both bound a step: launches while the host is the slower
    side, bytes for the elementwise work (convolutions are compute). The CPU's Adam is the foreach one (many ops;
    CUDA's fused: one per parameter group), and the host superpixel pool's work happens in other processes:
    neither is what a GPU step counts."""
    import re
    import traceback
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    from train.graphed_step import caller, project_frame

    def forward_line(node) -> str:
        """Where the autograd ``node`` was made, from anomaly mode's formatted stack."""
        frames = [traceback.FrameSummary(match[1], int(match[2]), "")
                  for entry in node.metadata.get("traceback_", [])
                  if (match := re.search(r'File "([^"]+)", line (\d+)', entry))]
        return f"backward of {project_frame(frames)}" if frames else f"backward at {caller()}"

    if replayed:
        print("# --traffic: a replayed CUDA graph runs no op on the host to count (see the same variant without it)")
        return

    class Counting(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.kernels: Counter = Counter()
            self.bytes: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not func.is_view and func.overloadpacket.__name__ not in ALLOCATIONS:
                node = torch._C._current_autograd_node()
                key = f"{caller() if node is None else forward_line(node)} {func.overloadpacket.__name__}"
                self.kernels[key] += 1
                self.bytes[key] += sum(storage_bytes(t) for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor))
            return out

    batch = data.batch(0, args.batch, args.patch, trainer.data_rng)
    with torch.autograd.set_detect_anomaly(True, check_nan=False), Counting() as counted:
        trainer.step(batch)
    print(f"# one step: {sum(counted.kernels.values())} kernels, {sum(counted.bytes.values()) / 1e9:.2f} GB read and "
          f"written; by file (forward and backward):")
    files: Counter = Counter()
    file_kernels: Counter = Counter()
    for key, moved in counted.bytes.items():
        name = key.removeprefix("backward of ").split(":")[0]
        files[name] += moved
        file_kernels[name] += counted.kernels[key]
    for name, moved in files.most_common(10):
        print(f"#   {moved / 1e9:6.2f} GB {file_kernels[name]:5d}x {name}")
    print("# the lines that move the most:")
    for key, moved in counted.bytes.most_common(12):
        print(f"#   {moved / 1e6:8.0f} MB {counted.kernels[key]:4d}x {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", type=int, default=0, help="profile this many more steps of each variant")
    parser.add_argument("--sync-check", type=int, default=0,
                        help="CUDA: this many more steps with torch's sync debug mode on; prints where the step waits")
    parser.add_argument("--traffic", action="store_true",
                        help="one more step with its ops counted: kernels and bytes per step, by source line")
    parser.add_argument("--only", default=None,
                        help="texts separated by '|' (variant names hold commas): run only the variants whose name "
                             "contains one of them, e.g. 'bf16, host superpixels (2 workers)|CUDA graph'")
    parser.add_argument("--vgg-weights", type=Path, default=Path("weights/vgg16_features.safetensors"))
    add_json_option(parser)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root)
        weights = args.vgg_weights
        if not weights.exists():
            weights = root / "vgg16-random.safetensors"
            save_file(vgg_layers("vgg16", VGG16_CONV4_3).state_dict(), str(weights))
        info = machine()
        print(f"# train step, {args.patch}x{args.patch} x batch {args.batch} on {args.device} | {info['cpu']} | "
              f"{info['cuda'] or 'no GPU'} | torch {info['torch']} | {info['threads']} threads | {info['cpus']} CPUs")
        print("| variant | steps/s (median) | s/step: median (quartiles) | waiting for structure |\n|---|---|---|---|")
        for name, extra in VARIANTS.items():
            if args.only and not any(text in name for text in args.only.split("|")):
                continue
            if args.device == "cpu" and needs_cuda(extra):
                print(f"| {name} | - | - | CUDA only |")
                continue
            timing, waiting = time_variant(root, weights, extra, args)
            print(f"| {name} | {1 / timing.median:.2f} | {timing.median:.3f} ({timing.q1:.3f}-{timing.q3:.3f}) | "
                  f"{'-' if waiting is None else f'{100 * waiting:.0f}%'} |", flush=True)
            rows.append({"variant": name, "seconds_per_step": timing, "structure_wait_share": waiting})
    write_json(args.json, "train_step", rows, patch=args.patch, batch=args.batch, device=args.device)


if __name__ == "__main__":
    main()
