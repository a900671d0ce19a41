"""Sound for the clips that the video tests and benchmarks make (PyAV: its FFmpeg encodes AAC)."""

from __future__ import annotations

import numpy as np


def add_tone(container, stream, seconds: float, hertz: float = 440.0, rate: int = 44100) -> None:
    """Encode and mux ``seconds`` of a sine tone into ``stream`` (an AAC stream of ``container``); the caller
    flushes the stream when the clip is complete."""
    import av

    samples = np.arange(round(seconds * rate))
    for start in range(0, len(samples), 1024):
        chunk = (0.2 * np.sin(2 * np.pi * hertz * samples[start : start + 1024] / rate)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
