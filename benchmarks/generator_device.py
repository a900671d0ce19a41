"""The generator alone on an accelerator: milliseconds per 720x1280 frame by precision, batch and CUDA graphs.

    python benchmarks/generator_device.py [--device cuda] [--height 720 --width 1280] [--batches 1,8] [--json PATH]

Variants: fp32, fp16 and bf16 autocast, channels_last, each at every batch size; on CUDA the network in fp16
(no casts in the forward) and fp16 autocast with cuDNN's autotuner; with ``--stage`` the video pipeline's whole generator stage
(``Cartoonizer.cartoonize_frames``: uint8 frames up, pad, generator, guided post-filter, uint8 down) and its parts;
with ``--graphs`` also both fp16 forwards captured once as CUDA graphs and replayed (no per-kernel launch cost); with
``--compile`` the fp16 network through ``torch.compile``. Graphs and compilation come last in each batch (a failed
capture can leave the device unusable). Times are medians of synchronised repeats after a warm-up. Not a test: issue 18 asks for <= 1.2 ms per 720p frame in batches on a GPU.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.timing import add_json_option, machine, measure, write_json  # noqa: E402
from cartoon.checkpoint import load_generator  # noqa: E402
from cartoon.image import to_tensor, to_uint8  # noqa: E402
from cartoon.inference import POST_FILTER_EPS, POST_FILTER_RADIUS, Cartoonizer, pad_to_multiple  # noqa: E402
from cartoon.representations.surface import guided_filter  # noqa: E402
from cartoon.models import UNetGenerator  # noqa: E402


def graphed(net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None):
    """The forward of ``net`` on ``x``'s shape captured as one CUDA graph (under autocast to ``dtype``; ``None``:
    the network's own precision); returns a function that replays it."""
    static = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    # No autocast weight cache: its casts are dropped when autocast exits; made inside the capture they must stay.
    autocast = dict(device_type="cuda", dtype=dtype or torch.float32, enabled=dtype is not None, cache_enabled=False)
    with torch.cuda.stream(stream), torch.inference_mode(), torch.autocast(**autocast):
        for _ in range(3):
            net(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode(), torch.autocast(**autocast):
        out = net(static)

    def replay() -> None:
        graph.replay()
    # The graph reads `static` and writes `out` at fixed addresses: both must live as long as it. Returning
    # graph.replay alone let the input's memory be freed and reused; whether that caused the illegal-address errors
    # on the H200 (2026-11-26) is not known yet.
    replay.buffers = (static, out)
    return replay


def stage_variants(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> dict[str, object]:
    """The generator stage of the video pipeline on ``x``'s frames as uint8, whole and in its parts (upload and
    conversion, post-filter, conversion and download; the generator's own row is above)."""
    cartoonizer = Cartoonizer(model, device, max_side=None)
    frames = to_uint8(x)
    padded, _ = pad_to_multiple(to_tensor(frames, device=device))  # NCHW, as the stage has it
    out = padded.clone()
    return {
        f"stage: cartoonize_frames ({cartoonizer.precision}, uint8 in and out)": lambda: cartoonizer.cartoonize_frames(frames),
        "stage part: upload + to_tensor": lambda: to_tensor(frames, device=device),
        "stage part: guided post-filter (fp32)": lambda: guided_filter(padded, out, POST_FILTER_RADIUS, POST_FILTER_EPS),
        "stage part: to_uint8 + download": lambda: to_uint8(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", type=Path, default=ROOT / "assets" / "model")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--stage", action="store_true",
                        help="also the video's generator stage (uint8 in and out, at the device's default precision) and its parts")
    parser.add_argument("--graphs", action="store_true", help="also replay a captured CUDA graph (CUDA only)")
    parser.add_argument("--compile", action="store_true",
                        help="also the fp16 network through torch.compile (reduce-overhead: fused elementwise kernels "
                             "replayed as CUDA graphs; CUDA only; compiles for a minute or more)")
    parser.add_argument("--compile-mode", default="reduce-overhead",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile's mode for --compile (max-autotune also times Triton convolution templates "
                             "against cuDNN's, for several minutes)")
    add_json_option(parser)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = load_generator(args.model) if (args.model / "model.safetensors").exists() else UNetGenerator().eval()
    model = model.to(device, memory_format=torch.channels_last)
    half = copy.deepcopy(model).half() if device.type == "cuda" else None
    info = machine()
    print(f"# generator alone, {args.height}x{args.width}, {device} | {info['cuda'] or info['cpu']} | torch {info['torch']}")
    print("| variant | batch | ms per batch: median (quartiles) | ms per frame |\n|---|---|---|---|")
    rows = []
    precisions = {"fp32": None, "fp16 autocast": torch.float16, "bf16 autocast": torch.bfloat16}
    for batch in (int(b) for b in args.batches.split(",")):
        x = (torch.rand(batch, 3, args.height, args.width, device=device) * 2 - 1).contiguous(
            memory_format=torch.channels_last)
        variants = {}
        for name, dtype in precisions.items():
            def run(dtype=dtype) -> None:
                with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                            enabled=dtype is not None):
                    model(x)
            variants[f"{name}, channels_last"] = run
        if device.type == "cuda":  # fp16 weights and input: no casts in the forward
            x_half = x.half()

            def run_half() -> None:
                with torch.inference_mode():
                    half(x_half)
            variants["fp16 weights, channels_last"] = run_half

            def run_autotuned() -> None:  # cuDNN times each convolution shape once and keeps the fastest algorithm
                torch.backends.cudnn.benchmark = True
                try:
                    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                        model(x)
                finally:
                    torch.backends.cudnn.benchmark = False
            variants["fp16 autocast, channels_last, cuDNN autotuned"] = run_autotuned
        if args.stage:
            variants.update(stage_variants(model, x, device))
        if args.graphs and device.type == "cuda":
            variants["fp16, channels_last, CUDA graph"] = graphed(model, x, torch.float16)
            variants["fp16 weights, channels_last, CUDA graph"] = graphed(half, x_half, None)
        if args.compile and device.type == "cuda":
            compiled = torch.compile(half, mode=args.compile_mode)

            def run_compiled() -> None:
                with torch.inference_mode():
                    compiled(x_half)
            variants[f"fp16 weights, torch.compile {args.compile_mode}"] = run_compiled
        for name, run in variants.items():
            try:
                timing = measure(run, args.repeat, warmup=3, sync=device.type == "cuda")
            except Exception as error:  # noqa: BLE001 - a variant this device cannot run is reported, not fatal
                print(f"| {name} | {batch} | unavailable: {type(error).__name__}: {str(error)[:60]} | - |", flush=True)
                continue
            print(f"| {name} | {batch} | {timing.ms()} | {1000 * timing.median / batch:.2f} |", flush=True)
            rows.append({"variant": name, "batch": batch, "seconds_per_batch": timing})
    write_json(args.json, "generator_device", rows, height=args.height, width=args.width, device=str(device))


if __name__ == "__main__":
    main()
