"""Reading inputs: images, numbered image sequences (`plate.%04d.exr`, PNG, TIFF) at their own bit
depth, and videos with their timecode. Writing generated pixels belongs to provenance/sink.py alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import BadInput

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"})
SEQUENCE_SUFFIXES = frozenset({".exr", ".png", ".tif", ".tiff"})
EXR_COLORSPACE = "faceswap.colorspace"  # header attributes the EXR writer sets and readers use
EXR_OCIO = "faceswap.ocioConfig"


@dataclass(frozen=True)
class Plate:
    """One image as stored: BGR pixels in the file's own type (uint8, uint16, or float32 for EXR and
    float TIFF), its alpha if any, and what an EXR header says about it."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    timecode: str | None = None
    fps: Fraction | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def is_float(self) -> bool:
        return self.pixels.dtype.kind == "f"


def read_plate(path: str | Path) -> Plate:
    """Decode an image at its own depth, or raise BadInput naming the file."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    if path.suffix.lower() == ".exr":
        return read_exr(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise BadInput(f"{path}: not a readable image")
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise BadInput(f"{path}: {image.dtype} pixels are not supported (8/16-bit or float)")
    alpha = None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image, alpha = image[..., :3], image[..., 3]
    return Plate(np.ascontiguousarray(image), alpha)


def read_exr(path: Path) -> Plate:
    """An EXR's RGB(A) (or Y) channels as float32 BGR, with its timecode, rate and attributes."""
    import OpenEXR

    try:
        exr = OpenEXR.File(str(path), separate_channels=True)
        header, channels = exr.header(), exr.channels()
    except Exception as error:  # noqa: BLE001 - OpenEXR raises plain exceptions for damaged files
        raise BadInput(f"{path}: not a readable EXR ({' '.join(str(error).split())})") from None
    if all(c in channels for c in "RGB"):
        planes = [channels[c].pixels for c in "BGR"]
    elif "Y" in channels:
        planes = [channels["Y"].pixels] * 3
    else:
        raise BadInput(f"{path}: no R, G, B or Y channels (has {', '.join(sorted(channels))})")
    pixels = np.ascontiguousarray(np.dstack(planes).astype(np.float32))
    alpha = channels["A"].pixels.astype(np.float32) if "A" in channels else None
    fps = header.get("framesPerSecond")
    return Plate(
        pixels,
        alpha,
        timecode=_exr_timecode(header.get("timeCode")),
        fps=Fraction(fps) if fps else None,
        attributes={k: v for k, v in header.items() if isinstance(v, str | int | float)},
    )


def _exr_timecode(value: Any) -> str | None:
    if value is None or not hasattr(value, "hours"):
        return None
    sep = ";" if value.dropFrame else ":"
    return f"{value.hours:02d}:{value.minutes:02d}:{value.seconds:02d}{sep}{value.frame:02d}"


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to its uint8 BGR view, or raise BadInput naming the file. A float image
    (EXR) is seen through its colour space (the header's, else scene-linear Rec.709) as 8-bit sRGB."""
    plate = read_plate(path)
    if plate.is_float:
        return display_view(plate)
    image = plate.pixels
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    return np.ascontiguousarray(image)


def display_view(plate: Plate, space: str | None = None, config: str | None = None) -> np.ndarray:
    """A float plate's 8-bit sRGB render: `space` in `config` if given, else what its header records."""
    from faceswap.colorspace import BUILTIN_CONFIG, Colour

    recorded = str(plate.attributes.get(EXR_OCIO) or "")
    usable = recorded.startswith("ocio://") or (recorded != "" and Path(recorded).is_file())
    colour = Colour(config or (recorded if usable else BUILTIN_CONFIG))
    name = space or str(plate.attributes.get(EXR_COLORSPACE) or "")
    try:
        source = colour.space(name) if name else colour.linear
    except BadInput:
        source = colour.linear  # a space this config lacks: read as scene-linear Rec.709
    return colour.display(source).view8(plate.pixels)


SEQUENCE_NAME = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<suffix>\.[A-Za-z]+)$")
PRINTF = re.compile(r"%0?(\d*)d")


@dataclass(frozen=True)
class ImageSequence:
    """Numbered images `PREFIX NUMBER SUFFIX` in one folder; frame numbers come from the names."""

    folder: Path
    prefix: str
    suffix: str
    padding: int  # digits of zero-padded names; 0: unpadded
    numbers: tuple[int, ...]

    def path(self, number: int) -> Path:
        return self.folder / f"{self.prefix}{number:0{self.padding}d}{self.suffix}"

    @property
    def label(self) -> str:
        return str(self.folder / f"{self.prefix}%0{self.padding}d{self.suffix}")


def find_sequence(path: str | Path) -> ImageSequence | None:
    """The sequence `path` names: a pattern (`plate.%04d.exr`, `plate.####.exr`) or a folder holding
    exactly one numbered sequence. None when `path` is neither."""
    path = Path(path)
    if path.is_dir():
        return _sequence_in_folder(path)
    name = path.name
    printf, hashes = PRINTF.search(name), re.search(r"#+", name)
    if printf is None and hashes is None:
        return None
    match = printf or hashes
    assert match is not None
    prefix, suffix = name[: match.start()], name[match.end() :]
    padding = int(printf.group(1) or 0) if printf else len(match.group(0))
    if suffix.lower() not in SEQUENCE_SUFFIXES:
        raise BadInput(f"{path}: sequences are {', '.join(sorted(SEQUENCE_SUFFIXES))} images")
    folder = path.parent
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such folder")
    numbers = []
    for item in folder.iterdir():
        found = _numbered(item.name)
        if found and found[0] == prefix and found[2] == suffix and (not padding or len(found[1]) == padding):
            numbers.append(int(found[1]))
    if not numbers:
        raise BadInput(f"{path}: no frames match this pattern")
    return ImageSequence(folder, prefix, suffix, padding, tuple(sorted(numbers)))


def _numbered(name: str) -> tuple[str, str, str] | None:
    match = SEQUENCE_NAME.match(name)
    if match is None or name.startswith(".") or match.group("suffix").lower() not in SEQUENCE_SUFFIXES:
        return None
    return match.group("prefix"), match.group("digits"), match.group("suffix")


def _sequence_in_folder(folder: Path) -> ImageSequence | None:
    groups: dict[tuple[str, str], list[str]] = {}
    for item in folder.iterdir():
        found = _numbered(item.name)
        if found and item.is_file():
            groups.setdefault((found[0], found[2]), []).append(found[1])
    if not groups:
        return None
    if len(groups) > 1:
        names = ", ".join(sorted(f"{p}#{s}" for p, s in groups))
        raise BadInput(f"{folder}: holds several sequences ({names}); name one as PREFIX.%04d.SUFFIX")
    (prefix, suffix), digits = next(iter(groups.items()))
    widths = {len(d) for d in digits}
    padding = widths.pop() if len(widths) == 1 else 0
    return ImageSequence(folder, prefix, suffix, padding, tuple(sorted(int(d) for d in digits)))


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
    bits: int = 8  # bits per component of the decoded pixel format
    timecode: str | None = None  # start timecode (tmcd track or metadata)
    pix_fmt: str | None = None


@dataclass(frozen=True)
class DecodedFrame:
    index: int
    image: np.ndarray  # uint8 BGR (uint16 BGR when decoded deep)
    pts: int | None
    time_base: Fraction | None


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video's header, or raise BadInput naming the file."""
    import av

    from faceswap.timecode import probe_timecode

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInput(f"{path}: has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            fmt = ctx.format
            return VideoInfo(
                path=path,
                width=ctx.width,
                height=ctx.height,
                frames=int(stream.frames or 0),
                fps=Fraction(stream.average_rate or stream.guessed_rate or 25),
                time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 25),
                has_audio=bool(container.streams.audio),
                codec=ctx.name,
                bits=max((c.bits for c in fmt.components), default=8) if fmt is not None else 8,
                timecode=probe_timecode(str(path)),
                pix_fmt=fmt.name if fmt is not None else None,
            )
    except av.FFmpegError as error:
        raise BadInput(f"{path}: not a readable video ({error.strerror or error})") from None


def iter_video_frames(
    path: str | Path, every: int = 1, limit: int | None = None, deep: bool = False
) -> Iterator[DecodedFrame]:
    """Decode frames in order as BGR (uint16 when `deep`); a corrupt stream ends in BadInput, never
    a traceback. `index` counts decoded frames, so it never drifts with a variable frame rate."""
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
                    image=frame.to_ndarray(format="bgr48le" if deep else "bgr24"),
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
