"""Video: frames per second of the whole clip pipeline (decode, cartoonize, stabilise, encode) and flicker with
and without the stabiliser, on a clip made from an example photo (a slow pan with sensor-like noise and a tone).

    python benchmarks/video.py [--height 480] [--seconds 4] [--batch 4] [--model assets/model] [--json PATH]
    python benchmarks/video.py --stand-in-ms 5.5    # the pipeline alone: a "generator" that only waits (GIL free)

--stand-in-ms MS replaces the generator with a wait of MS per frame, as a GPU's generator leaves the host free:
it shows, on any machine, whether the three stages overlap (frames/s near 1000 / the busiest stage's ms) or run in
turn (near 1000 / their sum).

The generator is warmed up at the clip's size first; each setting runs twice: once for the speed, once with the
flicker meter. The busy columns say how long each of the pipeline's three overlapping stages worked per frame:
the largest bounds the frame rate. Writes runs/video/clip.mp4, the cartoons, and strip.png (every 8th frame: input | no stabiliser | stabiliser).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.timing import add_json_option, write_json  # noqa: E402
from cartoon.image import load_image  # noqa: E402
from cartoon.inference import Cartoonizer  # noqa: E402
from cartoon.video import DEFAULT_BATCH, add_h264_stream, cartoonize_video, frame_rgb, yuv420_frame  # noqa: E402
from tests.clips import add_tone  # noqa: E402


def make_clip(path: Path, height: int, seconds: float, fps: int = 24) -> None:
    """A slow pan across an example photo at ``height`` (16:9), with per-frame noise (sigma 3) and a 440 Hz tone."""
    photo = load_image(ROOT / "assets" / "examples" / "temple.jpg")
    width = round(height * 16 / 9) // 2 * 2
    scale = (height * 1.15) / photo.shape[0]
    big = cv2.resize(photo, (max(width + 64, round(photo.shape[1] * scale)), round(photo.shape[0] * scale)),
                     interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    frames = round(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18"}
        audio = out.add_stream("aac", rate=44100)
        for index in range(frames):
            left = int(index * (big.shape[1] - width) / max(frames - 1, 1) * 0.3)
            frame = big[:height, left : left + width].astype(np.float32) + rng.normal(0, 3, (height, width, 3))
            for packet in video.encode(av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")):
                out.mux(packet)
        add_tone(out, audio, seconds)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as clip:
        return [frame.to_ndarray(format="rgb24") for frame in clip.decode(video=0)]


def stages_alone(clip: Path, scratch: Path) -> dict[str, float]:
    """Milliseconds per frame that decoding (to upright RGB, as the pipeline's first stage) and encoding (H.264 with
    the pipeline's settings) take each alone on this thread: against the pipeline's busy times they show what
    running the stages side by side costs them."""
    with av.open(str(clip)) as reader:
        stream = reader.streams.video[0]
        stream.thread_type = "AUTO"
        width, height, rate = stream.codec_context.width, stream.codec_context.height, stream.average_rate
        start = time.perf_counter()
        frames = [frame_rgb(frame, width, height) for frame in reader.decode(stream)]
        decode = time.perf_counter() - start
    with av.open(str(scratch), "w", format="mp4") as writer:
        stream = add_h264_stream(writer, rate, width, height, 1 / rate)
        start = time.perf_counter()
        for index, rgb in enumerate(frames):
            frame = yuv420_frame(rgb)
            frame.pts = index
            writer.mux(stream.encode(frame))
        writer.mux(stream.encode())
        encode = time.perf_counter() - start
    scratch.unlink()
    return {"decode": 1000 * decode / len(frames), "encode": 1000 * encode / len(frames)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="frames per generator call")
    parser.add_argument("--stand-in-ms", type=float, default=None,
                        help="no generator: wait this long per frame instead (the pipeline's own overlap)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "video")
    add_json_option(parser)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clip = args.out / "clip.mp4"
    make_clip(clip, args.height, args.seconds)
    if args.stand_in_ms is not None:
        def cartoonize_frames(frames: np.ndarray) -> np.ndarray:
            time.sleep(args.stand_in_ms / 1000 * len(frames))
            return frames

        described = f"none: a wait of {args.stand_in_ms:g} ms per frame"
    else:
        cartoonizer = Cartoonizer.from_pretrained(args.model, device=args.device, max_side=None)
        cartoonize_frames, described = cartoonizer.cartoonize_frames, cartoonizer.describe()
        with av.open(str(clip)) as opened:
            size = opened.streams.video[0].codec_context.height, opened.streams.video[0].codec_context.width
        for _ in range(2):  # warm-up at the clip's size (cuDNN's algorithm search, lazy CUDA modules, oneDNN's kernels)
            cartoonize_frames(np.zeros((args.batch, *size, 3), np.uint8))
    rows = []
    alone = stages_alone(clip, args.out / "encoded-alone.mp4")
    print(f"# video, {args.height}p, {args.seconds:g} s at 24 fps, batches of {args.batch}, model {described}; "
          f"alone on one thread, ms per frame: decode {alone['decode']:.1f}, encode {alone['encode']:.1f}")
    print("| stabiliser | frames/s (whole pipeline) | ms per frame busy in: decode (+ flow) / cartoonize / encode (+ blend)"
          " | flicker (output change / input change where the input is still) |")
    print("|---|---|---|---|")
    outputs = {}
    for stabilize in (False, True):
        target = args.out / f"cartoon-{'stable' if stabilize else 'raw'}.mp4"
        # Speed without the flicker meter (its per-frame work sits on the encoding stage), then the flicker.
        result = cartoonize_video(clip, target, cartoonize_frames, max_side=None, stabilize=stabilize,
                                  batch_size=args.batch)
        flicker = cartoonize_video(clip, target, cartoonize_frames, max_side=None, stabilize=stabilize,
                                   batch_size=args.batch, measure_flicker=True).flicker
        outputs[stabilize] = frames_of(target)
        busy = {stage: 1000 * seconds / result.frames for stage, seconds in result.stage_seconds.items()}
        print(f"| {'on' if stabilize else 'off'} | {result.frames_per_second:.2f} | "
              f"{busy['decode']:.1f} / {busy['cartoonize']:.1f} / {busy['encode']:.1f} | {flicker:.2f} |", flush=True)
        rows.append({"stabilizer": stabilize, "fps": result.frames_per_second, "flicker": flicker,
                     "frames": result.frames, "busy_ms_per_frame": busy})
    inputs = frames_of(clip)
    picks = range(0, len(inputs), 8)
    strip = np.concatenate([np.concatenate([inputs[i], outputs[False][i], outputs[True][i]], axis=1) for i in picks][:6])
    Image.fromarray(strip[::2, ::2]).save(args.out / "strip.png")
    print(f"strip: {args.out / 'strip.png'} (rows: every 8th frame; input | no stabiliser | stabiliser)")
    write_json(args.json, "video", rows, height=args.height, seconds=args.seconds, batch=args.batch,
               alone_ms_per_frame=alone)


if __name__ == "__main__":
    main()
