"""Inputs the framework makes for itself: the demo's synthetic subjects, the doctor's audio track,
clips for tests and benchmarks. These are the only pixels written outside the output sink, because
they are inputs a swap starts from, never outputs a swap produced (tests/test_architecture.py keeps
the list of such writers short)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceswap.atomic import temp_path, write_atomic


def write_input_clip(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: int | Fraction,
    audio: np.ndarray | None = None,
    audio_rate: int = 48000,
    crf: int = 18,
) -> Path:
    """H.264 (yuv420p) of BGR frames, with an optional mono float32 audio track as AAC; atomic."""
    import av

    tmp = temp_path(Path(path))
    try:
        with av.open(str(tmp), mode="w") as container:
            video = None
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=audio_rate)
                sound.layout = "mono"
            for i, image in enumerate(frames):
                if video is None:
                    video = container.add_stream("libx264", rate=Fraction(fps))
                    video.width, video.height, video.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
                    video.options = {"crf": str(crf), "preset": "medium"}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
                frame.pts, frame.time_base = i, Fraction(1) / Fraction(fps)
                for packet in video.encode(frame):
                    container.mux(packet)
            if video is not None:
                for packet in video.encode():
                    container.mux(packet)
            if sound is not None and audio is not None:
                _encode_audio(container, sound, np.asarray(audio, np.float32), audio_rate)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(path)


def write_input_audio(path: Path, samples: np.ndarray, rate: int = 48000) -> Path:
    """A mono AAC track (an .m4a), e.g. a tone that stands for a source's sound; atomic."""
    import av

    tmp = temp_path(Path(path))
    try:
        with av.open(str(tmp), mode="w") as container:
            sound = container.add_stream("aac", rate=rate)
            sound.layout = "mono"
            _encode_audio(container, sound, np.asarray(samples, np.float32), rate)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(path)


def write_input_image(path: Path, image: np.ndarray) -> Path:
    """A PNG or JPEG still (reference photos of synthetic subjects); atomic."""
    import cv2

    ok, data = cv2.imencode(Path(path).suffix or ".png", image)
    if not ok:
        raise ValueError(f"could not encode {path}")
    return write_atomic(Path(path), data.tobytes())


def _encode_audio(container, stream, samples: np.ndarray, rate: int, chunk: int = 1024) -> None:
    for start in range(0, samples.size, chunk):
        block = samples[start : start + chunk][None]
        frame = av_audio_frame(block, rate, start)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def av_audio_frame(block: np.ndarray, rate: int, pts: int):
    import av

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, np.float32), format="flt", layout="mono")
    frame.sample_rate, frame.pts = rate, pts
    return frame
