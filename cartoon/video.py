"""Cartoonize video clips: decode with PyAV, cartoonize frames in batches, stabilise, encode H.264, keep the sound.

The output is an MP4 that browsers play (H.264, yuv420p) with the input's frame timing (variable frame rates
included: every frame keeps its timestamp), the short side scaled down to at most ``max_side`` and both sides
even, phone rotation applied to the pixels, and the first audio stream copied (AAC and MP3) or re-encoded
to AAC (anything else). It is written to ``<name>.part.mp4`` beside the target and renamed when complete:
a failure leaves nothing half-written. Decoding, the generator and encoding run as three overlapping stages on
their own threads (PyAV, OpenCV and torch release the GIL), so a GPU is not kept waiting on the host.

Per-frame cartoons flicker where the input is still (sensor noise and compression change the generator's
flat regions from frame to frame). :class:`Stabilizer` blends each cartoon with the previous one warped by
optical flow (OpenCV's DIS) where the flow explains the input well; :class:`FlickerMeter` measures what is
left: the mean change between consecutive output frames where the input barely changes, relative to the
input's own change there.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from cartoon.image import MAX_PIXELS, ImageError, resize_to

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"})
COPIED_AUDIO = frozenset({"aac", "mp3"})
"""Audio codecs an MP4 carries as they are; other audio is re-encoded to AAC."""
DEFAULT_BATCH = 4
FLOW_THREADS = max(1, min(4, (os.cpu_count() or 1) - 1))
"""Threads computing the stabiliser's optical flow ahead of the encoder (DIS releases the GIL)."""
T = TypeVar("T")
_END = object()


class VideoError(ImageError):
    """A clip that cannot be cartoonized; ``str(error)`` is meant for the person who gave it."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reads from a clip's headers (display size: rotation applied)."""

    width: int
    height: int
    fps: float
    duration_s: float
    frames: int
    has_audio: bool
    rotation: int

    def describe(self) -> str:
        sound = "with sound" if self.has_audio else "no sound"
        return f"{self.width}x{self.height}, {self.duration_s:.1f} s at {self.fps:.3g} fps, {sound}"


@dataclass(frozen=True)
class VideoResult:
    """What :func:`cartoonize_video` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    seconds: float
    flicker: float | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """How long each stage (decode, cartoonize, encode) was busy: they overlap, so the largest bounds the rate."""

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"No such file: {path.name}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path.name} is empty (0 bytes).")
    try:
        return av.open(str(path))
    except (av.error.InvalidDataError, av.error.EOFError, UnicodeDecodeError):
        raise VideoError(f"{path.name} is not a video this app can read (try MP4, MOV or WebM).") from None
    except av.error.FFmpegError as error:
        raise VideoError(f"{path.name} could not be opened as a video ({error.strerror or error}).") from None


def probe(path: str | os.PathLike, max_seconds: float | None = None, max_pixels: int | None = MAX_PIXELS) -> VideoInfo:
    """Read a clip's size, rate, duration and streams without decoding it; refuse what cannot or may not be done.

    Raises:
        VideoError: not a video, no video stream, no frames, larger than ``max_pixels`` per frame, or longer than
            ``max_seconds``; the message names the file and the limit.
    """
    path = Path(path)
    with _open(path) as container:
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            raise VideoError(f"{path.name} is a picture, not a video: cartoonize it as a photo.")
        if not container.streams.video:
            raise VideoError(f"{path.name} has no video stream" + (" (only sound)." if container.streams.audio else "."))
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError(f"{path.name}: the video stream has no picture size (damaged?).")
        if max_pixels is not None and width * height > max_pixels:
            raise VideoError(f"{path.name} is {width}x{height} per frame; the limit is {max_pixels / 1e6:.0f} megapixels.")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        frames = stream.frames or round(duration * float(rate))
        rotation = _stream_rotation(container, stream)
        if max_seconds is not None and duration > max_seconds:
            raise VideoError(f"{path.name} lasts {duration:.1f} s; the limit is {max_seconds:g} s. Trim it first.")
        if rotation % 180:
            width, height = height, width
        return VideoInfo(width, height, float(rate), duration, int(frames), bool(container.streams.audio), rotation)


def _stream_rotation(container, stream) -> int:
    """The clip's display rotation in degrees counterclockwise (0, 90, 180, 270), from its first frame."""
    try:
        frame = next(container.decode(stream))
    except StopIteration:
        raise VideoError(f"{Path(container.name).name} has no frames.") from None
    except Exception as error:  # noqa: BLE001 - any decoding failure of the first frame
        raise VideoError(f"{Path(container.name).name} looks damaged or truncated ({type(error).__name__}).") from None
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The encoded size: short side scaled down (never up) to ``max_side``, both sides even (yuv420p needs it)."""
    factor = 1.0 if not max_side else min(1.0, max_side / min(width, height))
    return max(2, int(width * factor) // 2 * 2), max(2, int(height * factor) // 2 * 2)


class Stabilizer:
    """Temporal smoothing of per-frame cartoons by the previous cartoon warped along the input's optical flow.

    Where the previous input, warped the same way, matches the current input within ``tolerance`` grey levels,
    the output is ``strength * warped previous cartoon + (1 - strength) * current cartoon``; elsewhere
    (occlusions, cuts, fast motion the flow misses) the current cartoon is kept as it is.

    The flow depends on the inputs only, so :meth:`flow` may run ahead on other threads (one DIS instance per
    thread); :meth:`blend` is the sequential part. Calling the stabiliser does both for one frame.
    """

    def __init__(self, strength: float = 0.6, tolerance: float = 12.0) -> None:
        if not 0 <= strength < 1:
            raise ValueError(f"strength must be in [0, 1), got {strength}")
        self.strength, self.tolerance = strength, tolerance
        self._per_thread = threading.local()  # each thread's DIS instance (not thread-safe)
        # The previous output and its grey input as one (H, W, 4) image: one remap warps both.
        self._previous: np.ndarray | None = None
        self._grid: np.ndarray | None = None  # (H, W, 2) pixel coordinates, kept per frame size
        errors = np.arange(256, dtype=np.float32)  # the blend weight of each grey-level error, as 256-entry tables
        self._weights = (strength * np.clip(1.0 - errors / tolerance, 0.0, 1.0)).astype(np.float32)
        self._keeps = 1.0 - self._weights  # the current cartoon's share

    def flow(self, grey: np.ndarray, previous_grey: np.ndarray) -> np.ndarray:
        """``(H, W, 2)`` float32: where each pixel of ``grey`` was in ``previous_grey`` (both ``(H, W)`` uint8)."""
        dis = getattr(self._per_thread, "dis", None)
        if dis is None:
            dis = self._per_thread.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        return dis.calc(grey, previous_grey, None)

    def __call__(self, photo: np.ndarray, cartoon: np.ndarray) -> np.ndarray:
        """One frame: ``photo`` and its ``cartoon``, both ``(H, W, 3)`` uint8; returns the stabilised cartoon."""
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        previous = self._previous
        same_size = previous is not None and previous.shape[:2] == grey.shape
        flow = self.flow(grey, cv2.extractChannel(previous, 3)) if same_size else None
        return self.blend(grey, cartoon, flow)

    def blend(self, grey: np.ndarray, cartoon: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
        """One frame, its flow to the previous input given (:meth:`flow`; ``None`` for a clip's first frame):
        ``grey`` ``(H, W)`` and ``cartoon`` ``(H, W, 3)`` uint8 -> the stabilised cartoon."""
        if flow is None or self._previous is None or self._previous.shape[:2] != grey.shape:
            self._remember(grey, cartoon)
            return cartoon
        height, width = grey.shape
        if self._grid is None or self._grid.shape[:2] != grey.shape:
            self._grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
        where = cv2.add(self._grid, flow)  # (H, W, 2): where each pixel was in the previous frame
        warped = cv2.remap(self._previous, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = cv2.absdiff(grey, cv2.extractChannel(warped, 3))
        # OpenCV's per-pixel blend: one multithreaded pass with uint8 rounding (NumPy's float passes took 3x as long).
        out = cv2.blendLinear(cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB), cartoon, cv2.LUT(error, self._weights),
                              cv2.LUT(error, self._keeps))
        self._remember(grey, out)
        return out

    def _remember(self, grey: np.ndarray, out: np.ndarray) -> None:
        self._previous = cv2.merge([*cv2.split(out), grey])


class FlickerMeter:
    """Flicker of an output clip relative to its input, over the pixels where the input barely changes.

    For consecutive frames, "still" pixels are those whose grey level changes by less than ``still`` in the
    input; the result is mean |output change| / mean |input change| over all still pixels of the clip
    (1: the output changes as much as the input there; more: it flickers).
    """

    def __init__(self, still: float = 3.0) -> None:
        self.still = still
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._output_change = self._input_change = 0.0

    def update(self, photo: np.ndarray, cartoon: np.ndarray) -> None:
        grey_in = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey_out = cv2.cvtColor(cartoon, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if self._previous is not None and self._previous[0].shape == grey_in.shape:
            change_in = np.abs(grey_in - self._previous[0])
            mask = change_in < self.still
            self._input_change += float(change_in[mask].sum())
            self._output_change += float(np.abs(grey_out - self._previous[1])[mask].sum())
        self._previous = (grey_in, grey_out)

    def result(self) -> float | None:
        return None if self._input_change == 0 else self._output_change / self._input_change


@dataclass
class _Frames:
    """One batch on its way through the pipeline: ``photos`` ``(B, H, W, 3)`` uint8 at the output size, their
    output timestamps, (with the stabiliser) their grey levels and flows to the frame before, and the audio packets
    demuxed since the batch before (``B`` is 0 for the audio after the last frame).

    The audio rides with the frames so that the stages' queues count batches only: queued on their own, a
    third of a second of AAC packets filled a queue two items deep and kept the stages from running ahead."""

    photos: np.ndarray
    stamps: list[int | None]
    audio: list = field(default_factory=list)
    greys: list[np.ndarray] | None = None
    flows: list[Future | None] | None = None  # each frame's flow to the one before, computed on the flow threads
    cartoons: np.ndarray | None = None


def cartoonize_video(
    source: str | os.PathLike,
    target: str | os.PathLike,
    cartoonize_frames: Callable[[np.ndarray], np.ndarray],
    max_side: int | None = 720,
    stabilize: bool = True,
    batch_size: int = DEFAULT_BATCH,
    max_seconds: float | None = None,
    max_pixels: int | None = MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
    measure_flicker: bool = False,
) -> VideoResult:
    """Cartoonize a clip into an H.264 MP4 with the same timing and sound.

    Three stages overlap, each on its own thread, two batches apart at most: decoding (with the stabiliser's
    optical flow, which needs the inputs only, on a few more threads), the generator, and encoding (with the
    stabiliser's blend and the sound). :attr:`VideoResult.stage_seconds` says how busy each stage was: the
    busiest one bounds the frame rate.

    Args:
        source: the clip (anything FFmpeg reads).
        target: the MP4 to write (its folder must exist); replaced only when the new one is complete.
        cartoonize_frames: ``(B, H, W, 3)`` uint8 -> the same shape, e.g. :meth:`Cartoonizer.cartoonize_frames`.
        max_side: the short side of the output, at most (``None``: the input's size, made even).
        stabilize: apply :class:`Stabilizer`.
        batch_size: frames per generator call.
        max_seconds, max_pixels: limits, checked before anything is decoded (:func:`probe`).
        progress: called as ``progress(frames_done, frames_expected)`` after each batch (on the calling thread).
        measure_flicker: also return :class:`FlickerMeter`'s result.

    Raises:
        VideoError: for anything wrong with the clip (see :func:`probe`), or when decoding fails midway.
    """
    import av

    source, target = Path(source), Path(target)
    info = probe(source, max_seconds, max_pixels)
    width, height = output_size(info.width, info.height, max_side)
    partial = target.with_name(target.stem + ".part.mp4")
    stabilizer = Stabilizer() if stabilize else None
    meter = FlickerMeter() if measure_flicker else None
    busy = {"decode": 0.0, "cartoonize": 0.0, "encode": 0.0}
    start, done = time.perf_counter(), 0
    try:
        with _open(source) as reader, av.open(str(partial), "w", format="mp4") as writer, \
                ThreadPoolExecutor(FLOW_THREADS, thread_name_prefix="flow") as flow_pool:
            video_in = reader.streams.video[0]
            video_in.thread_type = "AUTO"
            rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
            video_out = add_h264_stream(writer, rate, width, height, video_in.time_base or Fraction(1, 90000))
            audio_in = reader.streams.audio[0] if reader.streams.audio else None
            audio_out, resampler = _audio_output(writer, audio_in)

            def decoded() -> Iterator[_Frames]:
                """Batches of decoded frames, each with the audio packets demuxed since the one before."""
                first_pts: int | None = None
                photos: list[np.ndarray] = []
                stamps: list[int | None] = []
                audio: list[av.Packet] = []
                last_grey: list[np.ndarray] = []  # the previous batch's last grey frame, for the next flow

                def batch() -> _Frames:
                    stacked = np.stack(photos) if photos else np.zeros((0, height, width, 3), np.uint8)
                    frames = _Frames(stacked, list(stamps), list(audio))
                    audio.clear()
                    if stabilizer is not None and photos:
                        frames.greys = [cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) for photo in photos]
                        before = last_grey + frames.greys[:-1]
                        first = len(frames.greys) - len(before)  # 1 for the clip's first frame: no flow
                        frames.flows = [None] * first + [flow_pool.submit(stabilizer.flow, grey, previous)
                                                         for grey, previous in zip(frames.greys[first:], before)]
                        last_grey[:] = frames.greys[-1:]
                    photos.clear()
                    stamps.clear()
                    return frames

                for packet in reader.demux(*([video_in] + ([audio_in] if audio_in is not None else []))):
                    if packet.stream is audio_in:
                        audio.append(packet)
                        continue
                    for frame in packet.decode():
                        if frame.pts is not None and first_pts is None:
                            first_pts = frame.pts
                        pts = None if frame.pts is None else frame.pts - (first_pts or 0)
                        if max_seconds is not None and pts is not None and video_in.time_base is not None \
                                and float(pts * video_in.time_base) > max_seconds:
                            raise VideoError(f"{source.name} runs past the {max_seconds:g} s limit. Trim it first.")
                        photos.append(frame_rgb(frame, width, height))
                        stamps.append(pts)
                        if len(photos) >= batch_size:
                            yield batch()
                if photos or audio:
                    yield batch()

            def cartoonized(items: Iterator[_Frames]) -> Iterator[_Frames]:
                for item in items:
                    if item.stamps:
                        clock = time.perf_counter()
                        item.cartoons = cartoonize_frames(item.photos)
                        busy["cartoonize"] += time.perf_counter() - clock
                    yield item

            # Both stages are closed (their threads stopped and joined) before the containers they read close.
            decoding = _in_background(_timed(decoded(), busy, "decode"))
            with closing(decoding), closing(_in_background(cartoonized(decoding))) as items:
                for item in items:
                    clock = time.perf_counter()
                    for packet in item.audio:
                        _mux_audio(writer, packet, audio_out, resampler)
                    cartoons = item.cartoons if item.cartoons is not None else item.photos  # no frames: audio only
                    for index, (photo, cartoon, pts) in enumerate(zip(item.photos, cartoons, item.stamps)):
                        if stabilizer is not None:
                            flow = item.flows[index]
                            cartoon = stabilizer.blend(item.greys[index], cartoon, flow and flow.result())
                        if meter is not None:
                            meter.update(photo, cartoon)
                        frame = yuv420_frame(cartoon)
                        frame.pts, frame.time_base = pts, video_out.codec_context.time_base
                        for packet in video_out.encode(frame):
                            writer.mux(packet)
                    done += len(item.stamps)
                    busy["encode"] += time.perf_counter() - clock
                    if progress is not None:
                        progress(done, max(info.frames, done))
            if done == 0:
                raise VideoError(f"{source.name} has no frames that could be decoded.")
            for packet in video_out.encode():
                writer.mux(packet)
            if audio_out is not None and resampler is not None:
                for packet in audio_out.encode():
                    writer.mux(packet)
        os.replace(partial, target)
    except VideoError:
        partial.unlink(missing_ok=True)
        raise
    except av.error.FFmpegError as error:
        partial.unlink(missing_ok=True)
        raise VideoError(f"{source.name} looks damaged or truncated ({error.strerror or type(error).__name__}).") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return VideoResult(target, done, width, height, time.perf_counter() - start, meter.result() if meter else None,
                       busy)


def _timed(items: Iterator[T], busy: dict[str, float], stage: str) -> Iterator[T]:
    """``items``, adding the time spent producing each one to ``busy[stage]`` (not the time its consumer holds it);
    closing this iterator closes ``items``."""
    try:
        while True:
            clock = time.perf_counter()
            item = next(items, _END)
            busy[stage] += time.perf_counter() - clock
            if item is _END:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _in_background(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced on a thread of their own at most ``depth`` ahead of the consumer; the producer's
    exception is raised here, and closing this iterator stops the producer (and closes ``items``)."""
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                results.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put((False, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="video-stage", daemon=True)
    thread.start()
    try:
        while True:
            more, value = results.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        thread.join()


def add_h264_stream(writer, rate: Fraction, width: int, height: int, time_base: Fraction):
    """The output's video stream on an open PyAV ``writer``: H.264 in yuv420p (plays in browsers), CRF 20, x264's
    ``veryfast`` preset, x264's frame threads (PyAV's default asks for slice threads, which keep latency low and
    scale less: 720p encoding 10.3-11.8 -> 8.8-10.3 ms per frame on a 2-core CPU, the same quality)."""
    stream = writer.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = time_base
    stream.codec_context.thread_type = "AUTO"
    stream.options = {"crf": "20", "preset": "veryfast"}
    return stream


def yuv420_frame(rgb: np.ndarray):
    """``(H, W, 3)`` uint8 RGB, H and W even -> a yuv420p ``av.VideoFrame`` for the H.264 encoder (BT.601, limited
    range, as FFmpeg's own conversion), converted by OpenCV: 0.25 instead of 6-9 ms per 720p frame on this CPU, where
    FFmpeg's conversion was most of the encoder stage. The luma is the same within a level; the chroma is the mean
    of each 2x2 block where FFmpeg filters wider (decoded back to RGB: mean error 1.43 instead of 1.37 levels on a
    720p photo, more only at sharp colour edges)."""
    import av

    return av.VideoFrame.from_ndarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420), format="yuv420p")


def frame_rgb(frame, width: int, height: int) -> np.ndarray:
    """A decoded frame as upright ``(height, width, 3)`` uint8 RGB at the output size."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4
    if turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
    return resize_to(rgb, height, width)


def _audio_output(writer, audio_in):
    """The output audio stream: a copy of the input's when MP4 carries its codec, else AAC (with a resampler)."""
    import av

    if audio_in is None:
        return None, None
    if audio_in.codec_context.name in COPIED_AUDIO:
        return writer.add_stream_from_template(audio_in), None
    rate = audio_in.codec_context.sample_rate or 44100
    out = writer.add_stream("aac", rate=rate)
    layout = audio_in.codec_context.layout.name if audio_in.codec_context.layout else "stereo"
    out.layout = layout
    return out, av.AudioResampler(format="fltp", layout=layout, rate=rate)


def _mux_audio(writer, packet, audio_out, resampler) -> None:
    if audio_out is None or packet.dts is None:
        return
    if resampler is None:  # stream copy
        packet.stream = audio_out
        writer.mux(packet)
        return
    for frame in packet.decode():
        for resampled in resampler.resample(frame):
            for out_packet in audio_out.encode(resampled):
                writer.mux(out_packet)
