"""Format writers for the output sink: each turns already-marked frames into bytes under a partial
path. They never choose names, tokens or ledger entries (the sink does), and nothing outside
provenance/ calls them, so every pixel they write was marked first.

A writer implements `begin(partial)`, `add(frame, marked)`, `finish() -> facts` and `files()`,
the files (relative to the partial path) that carry Content Credentials, and says through `display`
how float frames are seen (None: it takes 8/16-bit frames only). Adding a format is one class here
and one public write method (or one registry entry) in the sink.
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
from faceswap.colorspace import DisplayTransform
from faceswap.errors import BadInput


@dataclass(frozen=True)
class SinkFrame:
    """A frame to write, with the source timestamp it must keep (video), its matte, its number
    (sequences name files by it) and its timecode (EXR headers).

    `image` is uint8 or uint16 BGR, or float32 BGR in the writer's colour space (EXR). `original`:
    the picture it was made from (uint8 BGR, the swap's 8-bit view of the input frame), when there is
    one: what changed from it is recorded as the synthesized region of the output's content binding.
    Nothing a caller sets decides whether the sink marks a frame: it marks whatever does not measurably
    carry the output's mark already."""

    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    alpha: np.ndarray | None = None  # matte, same height/width: uint8, uint16, or float 0..1
    number: int | None = None
    timecode: str | None = None
    original: np.ndarray | None = None


def to8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
    raise BadInput(f"frames must be uint8 or uint16, got {image.dtype}")


def view8(image: np.ndarray, display: DisplayTransform | None) -> np.ndarray:
    """The 8-bit view of a frame: itself, its top byte, or (float) its display-referred render."""
    if image.dtype.kind == "f":
        if display is None:
            raise BadInput("float frames are written as EXR only")
        return display.view8(image)
    return to8(image)


class MediaWriter(Protocol):
    kind: str  # "image" | "sequence" | "video": the ledger entry's media
    display: DisplayTransform | None  # how float frames are seen and marked; None: integer frames only

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
    display: DisplayTransform | None = None
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
class NumberedFiles:
    """The names of a sequence's files: each frame's own number (or its position), never twice."""

    pattern: str
    names: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)

    def next(self, frame: SinkFrame) -> str:
        number = frame.number if frame.number is not None else len(self.names)
        if number < 0:
            raise BadInput(f"frame number {number} is negative")
        name = self.pattern.format(number)
        if name in self.names:
            raise BadInput(f"frame number {number} comes twice")
        self.names.append(name)
        self.numbers.append(number)
        return name

    def facts(self) -> dict[str, Any]:
        if not self.names:
            raise BadInput("no frames to write")
        return {
            "frames": len(self.names),
            "files": len(self.names),
            "first_frame": min(self.numbers),
            "last_frame": max(self.numbers),
        }


@dataclass
class PngSequenceWriter:
    """A folder of PNGs (8- or 16-bit, RGBA when a frame carries a matte), named by frame number."""

    pattern: str = "frame.{:06d}.png"
    kind: str = "sequence"
    display: DisplayTransform | None = None
    _partial: Path | None = None
    _files: NumberedFiles | None = None

    def begin(self, partial: Path) -> None:
        partial.mkdir(mode=0o755)  # fails on anything already there, links included
        self._partial = partial
        self._files = NumberedFiles(self.pattern)

    def add(self, frame: SinkFrame, marked: np.ndarray) -> None:
        import cv2

        assert self._partial is not None and self._files is not None
        pixels = marked
        if frame.alpha is not None:
            pixels = np.dstack([marked, _matte(frame.alpha, marked.dtype)])
        name = self._files.next(frame)
        ok, encoded = cv2.imencode(".png", pixels)
        if not ok:
            raise BadInput(f"could not encode {name}")
        with exclusive_file(self._partial / name) as handle:
            handle.write(encoded.tobytes())

    def finish(self) -> dict[str, Any]:
        assert self._files is not None
        return self._files.facts()

    def abort(self) -> None:
        return None

    def files(self) -> list[Path]:
        return [Path(name) for name in self._files.names] if self._files else []


def _matte(alpha: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A matte in the pixels' own type (float mattes are 0..1)."""
    if alpha.dtype == dtype:
        return alpha
    if alpha.dtype.kind == "f":
        top = 65535 if dtype == np.uint16 else 255
        return np.clip(np.rint(alpha * top), 0, top).astype(dtype)
    if alpha.dtype == np.uint8 and dtype == np.uint16:
        return alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint16 and dtype == np.uint8:
        return to8(alpha)
    raise BadInput(f"a {alpha.dtype} matte cannot go with {dtype} pixels")


EXR_FRAME = "faceswap.frame"  # header attributes of every EXR frame (colour ones: faceswap.media)
EXR_TOKEN = "faceswap.token"


@dataclass
class ExrSequenceWriter:
    """A folder of `NAME.####.exr`: half-float RGB, RGBA with a matte (straight, not premultiplied:
    the whole swapped plate, A the swap matte). Each header carries the frame number, the timecode
    where known, the output token, and the colour space with its OCIO config, so that `verify`
    renders it through the same transform the watermark was applied in."""

    name: str
    display: DisplayTransform
    token: str
    ocio: str  # the config reference, recorded in every header
    fps: Fraction | None = None
    padding: int = 4
    kind: str = "sequence"
    _partial: Path | None = None
    _files: NumberedFiles | None = None
    _timecode: str | None = None

    def begin(self, partial: Path) -> None:
        partial.mkdir(mode=0o755)
        self._partial = partial
        self._files = NumberedFiles(f"{self.name}.{{:0{self.padding}d}}.exr")

    def add(self, frame: SinkFrame, marked: np.ndarray) -> None:
        import OpenEXR

        from faceswap.media import EXR_COLORSPACE, EXR_OCIO

        assert self._partial is not None and self._files is not None
        if marked.dtype.kind != "f":
            raise BadInput("EXR frames must be float")
        rgb = marked[..., ::-1].astype(np.float16)
        channels = {"RGB": np.ascontiguousarray(rgb)}
        if frame.alpha is not None:
            alpha = frame.alpha.astype(np.float32)
            if frame.alpha.dtype.kind != "f":
                alpha /= float(np.iinfo(frame.alpha.dtype).max)
            channels = {"RGBA": np.ascontiguousarray(np.dstack([rgb, alpha.astype(np.float16)]))}
        name = self._files.next(frame)
        header: dict[str, Any] = {
            "compression": OpenEXR.ZIP_COMPRESSION,
            "type": OpenEXR.scanlineimage,
            EXR_FRAME: int(self._files.numbers[-1]),
            EXR_TOKEN: self.token,
            EXR_COLORSPACE: self.display.space,
            EXR_OCIO: self.ocio,
        }
        if self.fps:
            header["framesPerSecond"] = Fraction(self.fps)
        if frame.timecode:
            header["timeCode"] = _exr_timecode(frame.timecode)
            self._timecode = self._timecode or frame.timecode
        with exclusive_file(self._partial / name) as handle:
            OpenEXR.File(header, channels).write(handle)

    def finish(self) -> dict[str, Any]:
        assert self._files is not None
        return {
            **self._files.facts(),
            "format": "exr",
            "colorspace": self.display.space,
            "ocio_config": self.ocio,
            "timecode": self._timecode,
        }

    def abort(self) -> None:
        return None

    def files(self) -> list[Path]:
        return [Path(name) for name in self._files.names] if self._files else []


SEQUENCE_FORMATS = ("png", "exr")  # the image sequences written: PngSequenceWriter, ExrSequenceWriter


def _exr_timecode(text: str) -> Any:
    import OpenEXR

    from faceswap.timecode import PATTERN

    match = PATTERN.match(text)
    if match is None:
        raise BadInput(f"timecode {text!r} is not HH:MM:SS:FF")
    code = OpenEXR.TimeCode()
    code.hours, code.minutes, code.seconds, code.frame = (int(match.group(i)) for i in (1, 2, 3, 5))
    code.dropFrame = match.group(4) in ";,"
    return code


VIDEO_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


@dataclass(frozen=True)
class VideoCodec:
    """How one `--codec` is encoded. 10-bit codecs take 16-bit frames without an 8-bit round trip
    and are converted to Y'CbCr with the BT.709 matrix, tagged so."""

    encoder: str
    pix_fmt: str
    alpha_pix_fmt: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    containers: frozenset[str] = frozenset(VIDEO_CONTAINERS.values())
    deep: bool = False


VIDEO_CODECS = {
    "h264": VideoCodec("libx264", "yuv420p", options=(("preset", "medium"),)),
    "prores4444": VideoCodec(
        "prores_ks",
        "yuv444p10le",
        alpha_pix_fmt="yuva444p10le",
        options=(("profile", "4444"), ("vendor", "apl0"), ("alpha_bits", "16")),
        containers=frozenset({"mov"}),
        deep=True,
    ),
    "prores422hq": VideoCodec(
        "prores_ks",
        "yuv422p10le",
        options=(("profile", "hq"), ("vendor", "apl0")),
        containers=frozenset({"mov"}),
        deep=True,
    ),
}


@dataclass
class VideoWriter:
    """A video in MP4/MOV/MKV (`VIDEO_CODECS`): source timestamps kept when frames carry pts, audio
    copied from `audio_from` without re-encoding, the start timecode written as a tmcd track.
    `rebase`: a range of the source, so timestamps start at zero and the audio is cut to the range."""

    container_format: str
    fps: Fraction
    audio_from: Path | None = None
    time_base: Fraction | None = None
    crf: int = 18
    codec: str = "h264"
    alpha: bool = False
    timecode: str | None = None
    rebase: bool = False
    kind: str = "video"
    display: DisplayTransform | None = None
    _stack: contextlib.ExitStack | None = None
    _container: Any = None
    _stream: Any = None
    _count: int = 0
    _size: tuple[int, int] = (0, 0)
    _source: Any = None
    _audio: dict[int, Any] = field(default_factory=dict)
    _origin: Fraction | None = None  # first frame's time when rebasing
    _end: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        spec = VIDEO_CODECS.get(self.codec)
        if spec is None:
            raise BadInput(f"--codec must be one of {', '.join(VIDEO_CODECS)}")
        if self.container_format not in spec.containers:
            raise BadInput(f"{self.codec} is written in .mov, not {self.container_format}")
        if self.alpha and spec.alpha_pix_fmt is None:
            raise BadInput(f"{self.codec} carries no alpha; --alpha needs --codec prores4444 or --sequence")

    @property
    def spec(self) -> VideoCodec:
        return VIDEO_CODECS[self.codec]

    @property
    def pix_fmt(self) -> str:
        return (self.spec.alpha_pix_fmt if self.alpha else None) or self.spec.pix_fmt

    def begin(self, partial: Path) -> None:
        import av

        self._stack = contextlib.ExitStack()
        handle = self._stack.enter_context(exclusive_file(partial))
        self._container = self._stack.enter_context(av.open(handle, mode="w", format=self.container_format))

    def add(self, frame: SinkFrame, marked: np.ndarray) -> None:
        if self._stream is None:
            self._open_streams(marked.shape[1], marked.shape[0], frame.time_base)
        video_frame = self._frame(frame, marked)
        time_base = (frame.time_base or self.time_base) if frame.pts is not None else Fraction(1) / self.fps
        pts = frame.pts if frame.pts is not None else self._count
        if self.rebase:
            when = pts * Fraction(time_base)
            self._origin = when if self._origin is None else self._origin
            pts = int(round((when - self._origin) / Fraction(time_base)))
            self._end = max(self._end, when + 1 / Fraction(self.fps))
        video_frame.pts, video_frame.time_base = pts, time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self._count += 1

    def _frame(self, frame: SinkFrame, marked: np.ndarray) -> Any:
        """The encoder's frame: 8-bit BGR for H.264 (as before); for 10-bit codecs 16-bit BGR(A)
        converted with the BT.709 matrix into limited-range Y'CbCr."""
        import av

        if not self.spec.deep:
            return av.VideoFrame.from_ndarray(to8(marked), format="bgr24")
        deep = marked if marked.dtype == np.uint16 else marked.astype(np.uint16) * 257
        if self.alpha:
            matte = _matte(frame.alpha, np.uint16) if frame.alpha is not None else np.full(deep.shape[:2], 65535)
            source = av.VideoFrame.from_ndarray(np.dstack([deep, matte]).astype(np.uint16), format="bgra64le")
        else:
            source = av.VideoFrame.from_ndarray(np.ascontiguousarray(deep), format="bgr48le")
        return source.reformat(format=self.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")

    def _open_streams(self, width: int, height: int, frame_time_base: Fraction | None) -> None:
        """The video stream, and the audio streams copied from the source: all before the first
        packet, since the container writes its header then."""
        import av

        assert self._stack is not None
        self._stream = _open_video(
            self._container, self.spec, self.pix_fmt, width, height, self.fps, self.time_base or frame_time_base
        )
        if self.codec == "h264":
            self._stream.options = {**self._stream.options, "crf": str(self.crf)}
        if self.timecode:
            self._stream.metadata["timecode"] = self.timecode  # FFmpeg's mov/mp4 muxers add a tmcd track
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
                    if packet.dts is None or not self._keep_audio(packet):
                        continue
                    packet.stream = self._audio[packet.stream.index]
                    self._container.mux(packet)
        return {
            "frames": self._count,
            "width": self._size[0],
            "height": self._size[1],
            "fps": str(Fraction(self.fps)),
            "audio_streams": len(self._audio),
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "alpha": self.alpha,
            "timecode": self.timecode,
        }

    def _keep_audio(self, packet: Any) -> bool:
        """Every packet, or (rebased) those within the frames' span, moved to start with them."""
        if not self.rebase or self._origin is None or packet.pts is None:
            return True
        time_base = Fraction(packet.time_base)
        when = packet.pts * time_base
        if not self._origin <= when < self._end:
            return False
        shift = int(round(self._origin / time_base))
        packet.pts -= shift
        packet.dts -= shift
        return True

    def abort(self) -> None:
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._stack.close()

    def files(self) -> list[Path]:
        return [Path()]


def _open_video(
    container: Any, spec: VideoCodec, pix_fmt: str, width: int, height: int, fps: Fraction, time_base: Fraction | None
) -> Any:
    if width % 2 or height % 2:
        raise BadInput(f"{spec.encoder} {pix_fmt} needs even frame sizes, got {width}x{height}")
    stream = container.add_stream(spec.encoder, rate=Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.options = dict(spec.options)
    if spec.deep:
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc, context.color_range = 1, 1, 1, 1  # BT.709
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    return stream


def frame_names(partial: Path, writer: MediaWriter) -> Iterator[tuple[Path, Path]]:
    """(file on disk, path relative to the output) for every file of a written output."""
    for relative in writer.files():
        yield (partial / relative if relative != Path() else partial), relative
