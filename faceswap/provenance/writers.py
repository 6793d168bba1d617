"""Format writers for the output sink: each turns already-marked frames into bytes under a partial
path. They never choose names, tokens or ledger entries (the sink does), and nothing outside
provenance/ calls them, so every pixel they write was marked first.

A writer implements `begin(partial)`, `add(frame, marked)`, `finish() -> facts` and `files()`,
the files (relative to the partial path) that carry Content Credentials. Adding a format is one
class here and one line in the sink's registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceswap.atomic import exclusive_file
from faceswap.errors import BadInput


@dataclass(frozen=True)
class SinkFrame:
    """A frame to write, with the source timestamp it must keep (video)."""

    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    alpha: np.ndarray | None = None  # matte for image sequences, same height/width, uint8 or uint16
    marked_token: int | None = None  # already watermarked with this token where it was made (the swap)


def to8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
    raise BadInput(f"frames must be uint8 or uint16, got {image.dtype}")


class MediaWriter(Protocol):
    kind: str  # "image" | "sequence" | "video": the ledger entry's media

    def begin(self, partial: Path) -> None: ...
    def add(self, frame: SinkFrame, marked: np.ndarray) -> None: ...
    def finish(self) -> dict[str, Any]: ...
    def abort(self) -> None: ...
    def files(self) -> list[Path]: ...


@dataclass
class ImageWriter:
    """One PNG or JPEG."""

    suffix: str  # ".png" | ".jpg"
    kind: str = "image"
    _partial: Path | None = None
    _shape: tuple[int, ...] = ()

    def begin(self, partial: Path) -> None:
        self._partial = partial

    def add(self, frame: SinkFrame, marked: np.ndarray) -> None:
        import cv2

        if self._shape:
            raise BadInput("an image output holds one frame")
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if self.suffix == ".jpg" else []
        ok, encoded = cv2.imencode(self.suffix, marked, params)
        if not ok:
            raise BadInput("could not encode the image")
        assert self._partial is not None
        with exclusive_file(self._partial) as handle:
            handle.write(encoded.tobytes())
        self._shape = marked.shape

    def finish(self) -> dict[str, Any]:
        if not self._shape:
            raise BadInput("no frames to write")
        return {"frames": 1, "width": int(self._shape[1]), "height": int(self._shape[0])}

    def abort(self) -> None:
        return None

    def files(self) -> list[Path]:
        return [Path()]


@dataclass
class PngSequenceWriter:
    """A folder of PNGs (8- or 16-bit, RGBA when a frame carries a matte)."""

    pattern: str = "frame.{:06d}.png"
    kind: str = "sequence"
    _partial: Path | None = None
    _names: list[str] = field(default_factory=list)

    def begin(self, partial: Path) -> None:
        partial.mkdir(mode=0o755)  # fails on anything already there, links included
        self._partial = partial

    def add(self, frame: SinkFrame, marked: np.ndarray) -> None:
        import cv2

        pixels = marked
        if frame.alpha is not None:
            alpha = frame.alpha.astype(marked.dtype) if frame.alpha.dtype != marked.dtype else frame.alpha
            pixels = np.dstack([marked, alpha])
        name = self.pattern.format(len(self._names))
        ok, encoded = cv2.imencode(".png", pixels)
        if not ok:
            raise BadInput(f"could not encode frame {len(self._names)}")
        assert self._partial is not None
        with exclusive_file(self._partial / name) as handle:
            handle.write(encoded.tobytes())
        self._names.append(name)

    def finish(self) -> dict[str, Any]:
        if not self._names:
            raise BadInput("no frames to write")
        return {"frames": len(self._names), "files": len(self._names)}

    def abort(self) -> None:
        return None

    def files(self) -> list[Path]:
        return [Path(name) for name in self._names]


VIDEO_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


@dataclass
class H264Writer:
    """H.264 (yuv420p) in MP4/MOV/MKV; source timestamps kept when frames carry pts; audio copied
    from `audio_from` without re-encoding."""

    container_format: str
    fps: Fraction
    audio_from: Path | None = None
    time_base: Fraction | None = None
    crf: int = 18
    kind: str = "video"
    _stack: contextlib.ExitStack | None = None
    _container: Any = None
    _stream: Any = None
    _count: int = 0
    _size: tuple[int, int] = (0, 0)
    _source: Any = None
    _audio: dict[int, Any] = field(default_factory=dict)

    def begin(self, partial: Path) -> None:
        import av

        self._stack = contextlib.ExitStack()
        handle = self._stack.enter_context(exclusive_file(partial))
        self._container = self._stack.enter_context(av.open(handle, mode="w", format=self.container_format))

    def add(self, frame: SinkFrame, marked: np.ndarray) -> None:
        import av

        if self._stream is None:
            self._open_streams(marked.shape[1], marked.shape[0], frame.time_base)
        video_frame = av.VideoFrame.from_ndarray(to8(marked), format="bgr24")
        if frame.pts is not None:
            video_frame.pts = frame.pts
            video_frame.time_base = frame.time_base or self.time_base
        else:
            video_frame.pts = self._count
            video_frame.time_base = Fraction(1, 1) / Fraction(self.fps)
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self._count += 1

    def _open_streams(self, width: int, height: int, frame_time_base: Fraction | None) -> None:
        """The video stream, and the audio streams copied from the source: all before the first
        packet, since the container writes its header then."""
        import av

        assert self._stack is not None
        self._stream = _open_h264(self._container, width, height, self.fps, self.time_base or frame_time_base, self.crf)
        self._size = (width, height)
        if self.audio_from is not None:
            self._source = self._stack.enter_context(av.open(str(self.audio_from)))
            self._audio = {s.index: self._container.add_stream_from_template(s) for s in self._source.streams.audio}

    def finish(self) -> dict[str, Any]:
        if self._stream is None:
            raise BadInput("no frames to write")
        assert self._stack is not None
        with self._stack:
            for packet in self._stream.encode():
                self._container.mux(packet)
            if self._audio:
                for packet in self._source.demux(*self._source.streams.audio):
                    if packet.dts is None:
                        continue
                    packet.stream = self._audio[packet.stream.index]
                    self._container.mux(packet)
        return {
            "frames": self._count,
            "width": self._size[0],
            "height": self._size[1],
            "fps": str(Fraction(self.fps)),
            "audio_streams": len(self._audio),
        }

    def abort(self) -> None:
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._stack.close()

    def files(self) -> list[Path]:
        return [Path()]


def _open_h264(container: Any, width: int, height: int, fps: Fraction, time_base: Fraction | None, crf: int):
    if width % 2 or height % 2:
        raise BadInput(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
    stream = container.add_stream("libx264", rate=Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": str(crf), "preset": "medium"}
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    return stream


def frame_names(partial: Path, writer: MediaWriter) -> Iterator[tuple[Path, Path]]:
    """(file on disk, path relative to the output) for every file of a written output."""
    for relative in writer.files():
        yield (partial / relative if relative != Path() else partial), relative
