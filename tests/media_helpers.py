"""Real media files for tests, encoded with FFmpeg through PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from faceswap.faces.samples import insightface_t1
from faceswap.media import read_image
from faceswap.synthetic import write_input_clip


def panning_frames(count: int, size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    """A slow pan over insightface's t1.jpg: natural content, a little motion."""
    source = read_image(insightface_t1())
    w, h = size
    scale = max(w / source.shape[1], h / source.shape[0]) * 1.15
    big = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        x = int((big.shape[1] - w) * i / max(count - 1, 1))
        frames.append(np.ascontiguousarray(big[:h, x : x + w]))
    return frames


def make_clip(
    path: Path, count: int = 20, size: tuple[int, int] = (640, 360), fps: int = 25, audio: bool = True
) -> Path:
    """An H.264 clip (FFmpeg picks a 1/12800 time base for mp4) and an AAC tone."""
    t = np.arange(int(48000 * count / fps)) / 48000
    tone = 0.2 * np.sin(2 * np.pi * 330 * t) if audio else None
    return write_input_clip(path, panning_frames(count, size), fps, audio=tone)


def reencode(source: Path, out: Path, codec: str = "libx264", crf: int = 23, crop: float = 0.0) -> Path:
    """Re-encode a video's frames (yuv420p) as an attacker or a platform would; `crop`: the share cut
    from each side first (the size kept even)."""
    with av.open(str(source)) as src, av.open(str(out), mode="w") as dst:
        stream_in = src.streams.video[0]
        top, left = int(stream_in.height * crop), int(stream_in.width * crop)
        height, width = (stream_in.height - 2 * top) // 2 * 2, (stream_in.width - 2 * left) // 2 * 2
        stream = dst.add_stream(codec, rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in src.decode(stream_in):
            pixels = frame.to_ndarray(format="bgr24")[top : top + height, left : left + width]
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgr24")
            for packet in stream.encode(new):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out
