"""Reading inputs: images, numbered image sequences (`plate.%04d.exr`, PNG, TIFF) at their own bit
depth, and videos with their timecode. Writing generated pixels belongs to provenance/output/sink.py alone.

Every reader takes the caller's `InputLimits` (faceswap/limits.py) and checks what a file declares
(size on disk, frame size, decoded bytes, frame count, duration) before a decoder allocates; a video
decoder is also told the largest frame it may make, so a stream that grows mid-way is refused too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import BadInput
from faceswap.image_header import ImageHeader, header_of, read_header
from faceswap.limits import OPERATOR, InputLimits

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"})
SEQUENCE_SUFFIXES = frozenset({".exr", ".png", ".tif", ".tiff"})
EXR_COLORSPACE = "faceswap.colorspace"  # header attributes the EXR writer sets and readers use
EXR_OCIO = "faceswap.ocioConfig"
PLATE_COST = attrgetter("plate_bytes")  # what reading an image at its own depth allocates
VIEW_COST = attrgetter("view_bytes")  # ... and as an 8-bit view


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


def read_plate(path: str | Path, limits: InputLimits = OPERATOR) -> Plate:
    """Decode an image at its own depth, or raise BadInput naming the file."""
    path = Path(path)
    header = checked_header(path, limits, PLATE_COST)
    if header.format == "EXR":
        return _exr_plate(path)
    return _cv2_plate(path, header)


def _cv2_plate(path: Path, header: ImageHeader) -> Plate:
    import cv2

    image = _decode(path, header, cv2.IMREAD_UNCHANGED)
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise BadInput(f"{path}: {image.dtype} pixels are not supported (8/16-bit or float)")
    alpha = None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image, alpha = image[..., :3], image[..., 3]
    return Plate(np.ascontiguousarray(image), alpha)


def checked_header(path: Path, limits: InputLimits, cost: Callable[[ImageHeader], int] = PLATE_COST) -> ImageHeader:
    """The image's header, once its size on disk, its frame size and what reading it allocates (`cost`
    of the header: as a plate at its own depth, or as an 8-bit view) are within `limits`: nothing is
    allocated for a file beyond them."""
    checked_size(path, limits)
    header = read_header(path)
    limits.check_image(path, header.width, header.height, cost(header))
    return header


def decode_grey_bytes(data: bytes, name: Path, limits: InputLimits = OPERATOR) -> np.ndarray:
    """A single-channel image held in memory (a LabelMe mask's PNG): its header read and checked
    against `limits` before it is decoded, the decode no larger than the header said."""
    import cv2

    limits.check_file_size(name, len(data))
    header = header_of(data, name)
    limits.check_image(name, header.width, header.height, header.width * header.height)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        image = None
    if image is None:
        raise BadInput(f"{name}: not a readable image")
    if image.shape[:2] != (header.height, header.width):
        raise BadInput(f"{name}: decoded to {image.shape[1]}x{image.shape[0]}, not the size its header says")
    return image


def checked_size(path: Path, limits: InputLimits) -> int:
    """The size of a regular file that may be read whole into memory, or BadInput."""
    try:
        size = path.stat().st_size if path.is_file() else -1
    except OSError:
        size = -1
    if size < 0:
        raise BadInput(f"{path}: no such file")
    limits.check_file_size(path, size)
    return size


def _decode(path: Path, header: ImageHeader, flags: int) -> np.ndarray:
    """OpenCV's decode of a file whose header was checked; the result must be no larger than the header
    said (a decoder that disagreed with the header would be caught here, not trusted)."""
    import cv2

    try:
        if not path.stat().st_size:
            image = None
        elif _utf8(str(path)):
            image = cv2.imread(str(path), flags)  # streamed from disk: the file is never held whole
        else:  # a name OpenCV cannot be given: through memory
            image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), flags)
    except (cv2.error, OSError):
        image = None
    if image is None:
        raise BadInput(f"{path}: not a readable image")
    height, width = image.shape[:2]
    side = max(header.width, header.height)
    if width * height > header.width * header.height or max(width, height) > side:
        raise BadInput(f"{path}: decoded to {width}x{height}, not the {header.width}x{header.height} its header says")
    return image


def read_exr(path: str | Path, limits: InputLimits = OPERATOR) -> Plate:
    """An EXR's RGB(A) (or Y) channels as float32 BGR, with its timecode, rate and attributes."""
    path = Path(path)
    if checked_header(path, limits).format != "EXR":
        raise BadInput(f"{path}: not an EXR")
    return _exr_plate(path)


def _exr_channels(path: Path) -> tuple[dict[str, Any], list[np.ndarray], np.ndarray | None]:
    """An EXR whose header was checked: its header, its picture's planes (B, G, R as stored) and alpha."""
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
    alpha = channels["A"].pixels if "A" in channels else None
    shape = planes[0].shape
    if len(shape) != 2 or any(p.shape != shape for p in [*planes, *([alpha] if alpha is not None else [])]):
        raise BadInput(f"{path}: its channels differ in size (subsampled channels are not read)")
    return header, planes, alpha


def _exr_plate(path: Path) -> Plate:
    """The float32 BGR plate, its channels copied in one by one (no intermediate stack)."""
    header, planes, alpha = _exr_channels(path)
    pixels = np.empty((*planes[0].shape, 3), np.float32)
    for index, plane in enumerate(planes):
        pixels[..., index] = plane
    return Plate(
        pixels,
        alpha.astype(np.float32) if alpha is not None else None,
        timecode=_exr_timecode(header.get("timeCode")),
        fps=_exr_rate(header.get("framesPerSecond")),
        attributes=_exr_attributes(header),
    )


def _exr_view(path: Path) -> np.ndarray:
    """The 8-bit display view of an EXR, made from its planes as stored: no float32 plate is built."""
    header, planes, _ = _exr_channels(path)
    return _display(_exr_attributes(header)).view8(np.dstack(planes))


def _exr_attributes(header: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items() if isinstance(v, str | int | float)}


def _exr_rate(value: Any) -> Fraction | None:
    try:
        return Fraction(value) if value else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _exr_timecode(value: Any) -> str | None:
    if value is None or not hasattr(value, "hours"):
        return None
    sep = ";" if value.dropFrame else ":"
    return f"{value.hours:02d}:{value.minutes:02d}:{value.seconds:02d}{sep}{value.frame:02d}"


def read_image(path: str | Path, limits: InputLimits = OPERATOR) -> np.ndarray:
    """Decode an image file to its uint8 BGR view, or raise BadInput naming the file. A float image
    (EXR) is seen through its colour space (the header's, else scene-linear Rec.709) as 8-bit sRGB."""
    path = Path(path)
    header = checked_header(path, limits, VIEW_COST)
    if header.format == "EXR":
        return _exr_view(path)
    plate = _cv2_plate(path, header)
    if plate.is_float:
        return display_view(plate)
    image = plate.pixels
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    return np.ascontiguousarray(image)


def read_view(path: str | Path, limits: InputLimits, max_pixels: int) -> np.ndarray:
    """`read_image`, at most `max_pixels` large: an image within that is read exactly as read_image
    reads it; a larger one is decoded straight to 8-bit BGR (a JPEG at a reduced scale, which its
    decoder does for little cost) and shrunk by area averaging, so it is never held at its own depth."""
    path = Path(path)

    def exact(header: ImageHeader) -> bool:
        return header.width * header.height <= max_pixels or header.format == "EXR"

    def cost(header: ImageHeader) -> int:
        return header.view_bytes if exact(header) else 3 * header.width * header.height + header.extra_bytes

    header = checked_header(path, limits, cost)
    image = read_image(path, limits) if exact(header) else _decode(path, header, _reduced_flags(header, max_pixels))
    return shrink_to(image, max_pixels)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reduced_flags(header: ImageHeader, max_pixels: int) -> int:
    import cv2

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    if header.format != "JPEG":
        return flags
    reductions = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
    for factor, reduced in reductions:
        if (header.width // factor) * (header.height // factor) >= max_pixels:
            return reduced | cv2.IMREAD_IGNORE_ORIENTATION
    return flags


def fit_within(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) scaled down, keeping the aspect, to at most `max_pixels`; unchanged if within."""
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def shrink_to(image: np.ndarray, max_pixels: int) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    size = fit_within(width, height, max_pixels)
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def display_view(plate: Plate, space: str | None = None, config: str | None = None) -> np.ndarray:
    """A float plate's 8-bit sRGB render: `space` in `config` if given, else what its header records."""
    return _display(plate.attributes, space, config).view8(plate.pixels)


def _display(attributes: dict[str, Any], space: str | None = None, config: str | None = None) -> Any:
    """The display transform of a float image: `space` in `config`, else what its attributes record,
    else scene-linear Rec.709 in the built-in config."""
    from faceswap.colorspace import BUILTIN_CONFIG, Colour

    recorded = str(attributes.get(EXR_OCIO) or "")
    usable = recorded.startswith("ocio://") or (recorded != "" and Path(recorded).is_file())
    colour = Colour(config or (recorded if usable else BUILTIN_CONFIG))
    name = space or str(attributes.get(EXR_COLORSPACE) or "")
    try:
        source = colour.space(name) if name else colour.linear
    except BadInput:
        source = colour.linear  # a space this config lacks: read as scene-linear Rec.709
    return colour.display(source)


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


def find_sequence(path: str | Path, limits: InputLimits = OPERATOR) -> ImageSequence | None:
    """The sequence `path` names: a pattern (`plate.%04d.exr`, `plate.####.exr`) or a folder holding
    exactly one numbered sequence. None when `path` is neither. More numbered files than
    `limits.frames` is LimitExceeded (each frame's own size is checked when it is read)."""
    path = Path(path)
    if path.is_dir():
        return _sequence_in_folder(path, limits)
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
            limits.check_frame_index(path, len(numbers))
            numbers.append(int(found[1]))
    if not numbers:
        raise BadInput(f"{path}: no frames match this pattern")
    return ImageSequence(folder, prefix, suffix, padding, tuple(sorted(numbers)))


def _numbered(name: str) -> tuple[str, str, str] | None:
    match = SEQUENCE_NAME.match(name)
    if match is None or name.startswith(".") or match.group("suffix").lower() not in SEQUENCE_SUFFIXES:
        return None
    return match.group("prefix"), match.group("digits"), match.group("suffix")


def _sequence_in_folder(folder: Path, limits: InputLimits) -> ImageSequence | None:
    groups: dict[tuple[str, str], list[str]] = {}
    seen = 0
    for item in folder.iterdir():
        found = _numbered(item.name)
        if found and item.is_file():
            limits.check_frame_index(folder, seen)
            groups.setdefault((found[0], found[2]), []).append(found[1])
            seen += 1
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
    seconds: float = 0.0  # the declared duration; 0 when unknown


@dataclass(frozen=True)
class DecodedFrame:
    index: int
    image: np.ndarray  # uint8 BGR (uint16 BGR when decoded deep)
    pts: int | None
    time_base: Fraction | None


def decoder_options(limits: InputLimits) -> dict[str, str]:
    """What every video decoder is told: the largest frame it may allocate (FFmpeg refuses larger ones,
    as declared or as a stream grows), both while the container is probed and while it is decoded."""
    return {"max_pixels": str(limits.video.pixels)}


def probe_video(path: str | Path, limits: InputLimits = OPERATOR) -> VideoInfo:
    """Open a video's header and check what it declares against `limits`, or raise BadInput naming
    the file."""
    import av

    from faceswap.timecode import container_timecode

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        with av.open(str(path), options=decoder_options(limits)) as container:
            if not container.streams.video:
                raise BadInput(f"{path}: has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if ctx is None:
                raise BadInput(f"{path}: its video stream names no codec FFmpeg can decode")
            fmt = ctx.format
            info = VideoInfo(
                path=path,
                width=ctx.width,
                height=ctx.height,
                frames=int(stream.frames or 0),
                fps=_rate(stream),
                time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 25),
                has_audio=bool(container.streams.audio),
                codec=ctx.name,
                bits=max((c.bits for c in fmt.components), default=8) if fmt is not None else 8,
                timecode=container_timecode(container),
                pix_fmt=fmt.name if fmt is not None else None,
                seconds=_declared_seconds(container, stream),
            )
    except av.FFmpegError as error:
        raise BadInput(f"{path}: not a readable video ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a readable video (its metadata is not text)") from None
    check_video(info, limits)
    return info


def check_video(info: VideoInfo, limits: InputLimits) -> None:
    if info.width <= 0 or info.height <= 0:
        raise BadInput(f"{info.path}: its video stream declares no frame size")
    limits.check_video_frame(info.path, info.width, info.height)
    limits.check_frames(info.path, info.frames)
    limits.check_seconds(info.path, info.seconds)


def _rate(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate and rate > 0 else Fraction(25)


def _declared_seconds(container: Any, stream: Any) -> float:
    """The longest duration the container or the video stream declares (seconds)."""
    seconds = [float(container.duration) / 1_000_000] if container.duration and container.duration > 0 else []
    if stream.duration and stream.time_base and stream.duration > 0:
        seconds.append(float(stream.duration * stream.time_base))
    return max(seconds, default=0.0)


def check_decoded(path: Path, frame: Any, index: int, limits: InputLimits) -> None:
    """A decoded frame against `limits`: a container may declare less than its stream holds."""
    limits.check_video_frame(path, frame.width, frame.height)
    limits.check_frame_index(path, index)
    if frame.time is not None:
        limits.check_time(path, float(frame.time))


def iter_video_frames(
    path: str | Path, every: int = 1, limit: int | None = None, deep: bool = False, limits: InputLimits = OPERATOR
) -> Iterator[DecodedFrame]:
    """Decode frames in order as BGR (uint16 when `deep`); a corrupt stream ends in BadInput, never
    a traceback. `index` counts decoded frames, so it never drifts with a variable frame rate."""
    import av

    path = Path(path)
    yielded = 0
    try:
        with av.open(str(path), options=decoder_options(limits)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.options = decoder_options(limits)
            for index, frame in enumerate(container.decode(stream)):
                check_decoded(path, frame, index, limits)
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
