"""Reading input images. Writing generated pixels belongs to provenance/sink.py alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceswap.errors import BadInput

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 BGR, or raise BadInput naming the file."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise BadInput(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    frames: int  # from the container; 0 when unknown
    fps: Fraction
    time_base: Fraction
    has_audio: bool
    codec: str


@dataclass(frozen=True)
class DecodedFrame:
    index: int
    image: np.ndarray  # uint8 BGR
    pts: int | None
    time_base: Fraction | None


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video's header, or raise BadInput naming the file."""
    import av

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInput(f"{path}: has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            return VideoInfo(
                path=path,
                width=ctx.width,
                height=ctx.height,
                frames=int(stream.frames or 0),
                fps=Fraction(stream.average_rate or stream.guessed_rate or 25),
                time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 25),
                has_audio=bool(container.streams.audio),
                codec=ctx.name,
            )
    except av.FFmpegError as error:
        raise BadInput(f"{path}: not a readable video ({error.strerror or error})") from None


def iter_video_frames(path: str | Path, every: int = 1, limit: int | None = None) -> Iterator[DecodedFrame]:
    """Decode frames in order as BGR; a corrupt stream ends in BadInput, never a traceback."""
    import av

    path = Path(path)
    yielded = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index % every:
                    continue
                yield DecodedFrame(
                    index=index,
                    image=frame.to_ndarray(format="bgr24"),
                    pts=frame.pts,
                    time_base=Fraction(frame.time_base) if frame.time_base else None,
                )
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
    except av.FFmpegError as error:
        raise BadInput(f"{path}: video is corrupt or unreadable ({error.strerror or error})") from None
    except IndexError:
        raise BadInput(f"{path}: has no video stream") from None
