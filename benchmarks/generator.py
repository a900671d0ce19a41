"""Generator speed against the CPU's fp32 peak, and the reduced-precision path's accuracy.

    python benchmarks/generator.py [--model assets/model] [--repeat 5] [--json runs/bench/generator.json]

Peak: a large fp32 matmul in the same run. Network FLOPs: counted from the convolutions (2 * MACs) at each
size. Variants: default memory format vs channels_last, fp32 vs bf16 autocast (on CPUs with avx512_bf16 /
AMX; fp16 on CUDA), and the backends the issue asked to try: ``torch.compile`` (inductor, fp32, channels_last),
ONNX Runtime (fp32, if ``onnxruntime`` is installed; it is not a dependency) and 1 vs 2 intra-op threads. Accuracy: max abs difference of the final uint8 cartoon, bf16 vs fp32, over the example
photos (the bf16 path is only enabled where it stays within 2/255).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from benchmarks.timing import Timing, add_json_option, measure, write_json  # noqa: E402
from cartoon.checkpoint import load_generator  # noqa: E402
from cartoon.image import load_image, scale_to_fit  # noqa: E402
from cartoon.inference import Cartoonizer  # noqa: E402
from cartoon.models import UNetGenerator  # noqa: E402


def conv_flops(model: nn.Module, height: int, width: int) -> float:
    total = 0.0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        total += 2.0 * module.in_channels * module.out_channels * k_h * k_w * output.shape[-2] * output.shape[-1] / module.groups

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, height, width))
    for handle in handles:
        handle.remove()
    return total




def matmul_peak(repeat: int) -> float:
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    return 2 * 4096**3 / measure(lambda: a @ b, repeat).median / 1e9


def compiled_time(net: nn.Module, x: torch.Tensor, repeat: int) -> tuple[str, Timing | None, str]:
    """``torch.compile`` (inductor) of the fp32 channels_last network; the first call compiles."""
    name = "fp32, channels_last, torch.compile"
    try:
        compiled = torch.compile(net)
        with torch.inference_mode():
            compiled(x)
            return name, measure(lambda: compiled(x), repeat), ""
    except Exception as error:  # noqa: BLE001 - a benchmark reports what it could not run
        return name, None, f"failed: {type(error).__name__}: {str(error)[:80]}"


def onnxruntime_time(net: nn.Module, x: torch.Tensor, repeat: int) -> tuple[str, Timing | None, str]:
    """The network exported to ONNX (TorchScript exporter) and run by ONNX Runtime's CPU provider, fp32."""
    name = "fp32, ONNX Runtime"
    try:
        import tempfile

        import onnxruntime

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "generator.onnx"
            torch.onnx.export(net, (x,), str(path), input_names=["photo"], output_names=["cartoon"], dynamo=False)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"photo": x.numpy()}
        with torch.inference_mode():
            reference = net(x).numpy()
        out = session.run(None, feed)[0]
        note = f"max diff to torch {np.abs(out - reference).max():.1e}"
        return f"{name} ({note})", measure(lambda: session.run(None, feed), repeat), ""
    except Exception as error:  # noqa: BLE001
        return name, None, f"unavailable: {type(error).__name__}: {str(error)[:80]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "assets" / "model")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", action="store_true", help="also time torch.compile, ONNX Runtime, 1 thread")
    add_json_option(parser)
    args = parser.parse_args()
    rows: list[dict] = []
    trained = (args.model / "model.safetensors").exists()
    model = load_generator(args.model) if trained else UNetGenerator().eval()
    peak = matmul_peak(args.repeat)
    print(f"# generator, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"fp32 matmul peak {peak:.0f} GFLOP/s; weights: {'trained ' + str(args.model) if trained else 'random (no model)'}")
    print("| size | variant | ms: median (quartiles) | GFLOP/s | % of fp32 peak |\n|---|---|---|---|---|")
    sizes = ((720, 720), (720, 1280))
    for height, width in sizes:
        flops = conv_flops(model, height, width)
        x = torch.rand(1, 3, height, width) * 2 - 1

        def report(name: str, timing: Timing | None, note: str = "") -> None:
            if timing is None:
                print(f"| {height}x{width} | {name} | - | - | {note} |", flush=True)
                return
            rate = flops / timing.median / 1e9
            print(f"| {height}x{width} ({flops / 1e9:.0f} GFLOP) | {name} | {timing.ms()} | {rate:.0f} | "
                  f"{100 * rate / peak:.0f}% |", flush=True)
            rows.append({"size": f"{height}x{width}", "variant": name, "seconds": timing, "gflops": rate})

        for name, memory_format, bf16 in (("fp32, NCHW", torch.contiguous_format, False),
                                          ("fp32, channels_last", torch.channels_last, False),
                                          ("bf16 autocast, channels_last", torch.channels_last, True)):
            net = model.to(memory_format=memory_format)
            inp = x.contiguous(memory_format=memory_format)

            def run() -> None:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    net(inp)

            report(name, measure(run, args.repeat))
        if args.backends:
            net = model.to(memory_format=torch.channels_last)
            inp = x.contiguous(memory_format=torch.channels_last)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            with torch.inference_mode():
                report("fp32, channels_last, 1 thread", measure(lambda: net(inp), args.repeat))
            torch.set_num_threads(threads)
            report(*compiled_time(net, inp, args.repeat))
            report(*onnxruntime_time(model.to(memory_format=torch.contiguous_format), x, args.repeat))
        model.to(memory_format=torch.contiguous_format)

    photos = [scale_to_fit(load_image(p), short_side=720) for p in sorted((ROOT / "assets" / "examples").glob("*.jpg"))]
    fp32 = Cartoonizer(model, device="cpu", precision="fp32")
    bf16 = Cartoonizer(model, device="cpu", precision="bf16")
    diffs = [np.abs(fp32(img).astype(int) - bf16(img).astype(int)) for img in photos]
    print(f"\nbf16 vs fp32 cartoons over {len(photos)} example photos: max abs diff {max(d.max() for d in diffs)}/255, "
          f"mean {np.mean([d.mean() for d in diffs]):.3f}/255, 99.9th percentile "
          f"{np.percentile(np.concatenate([d.ravel() for d in diffs]), 99.9):.0f}/255")
    write_json(args.json, "generator", rows, fp32_matmul_peak_gflops=peak,
               bf16_vs_fp32={"max": int(max(d.max() for d in diffs)), "mean": float(np.mean([d.mean() for d in diffs]))})


if __name__ == "__main__":
    main()
