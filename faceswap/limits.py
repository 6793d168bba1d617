"""What one input file may cost, stated once and checked before anything is allocated.

Every reader of files (images, EXR, numbered sequences, videos, audio, Content Credentials) asks an
`InputLimits` about what a file's header declares: its size on disk, its frame size, what it decodes
to, its frame count and its duration. A file beyond a limit is `LimitExceeded` (exit 2), one line
that names the limit and the flag that raises it.

Two sets of defaults, for two kinds of caller:
- VERIFY: `faceswap verify` reads files from strangers and promises to stay under 1 GB of memory
  and 60 s on two cores. Content Credentials are checked by c2pa, which holds the whole file in
  memory, so a file may be at most 512 MiB; videos are sampled and their frames downscaled as they
  are decoded, so 4K is the largest video frame (8K masters are not what people share); stills up to
  8192x8192 (phone and camera photos, 8K stills) that decode to at most 384 MiB.
- OPERATOR: extract, convert, dub and the other commands read an operator's own footage: VFX plates
  up to 8K (an 8K RGBA float EXR decodes to 566 MiB), stills up to 8192x8192, files read whole up to
  2 GiB; videos are streamed, so their size on disk is not limited, only their frames; four hours at
  most, since every frame is decoded and a dub's audio is held whole.
Both allow a million frames (verify demuxes every packet, which stays a few seconds).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from faceswap.errors import BadInput

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


class LimitExceeded(BadInput):
    """A file declares more than a stated limit allows: exit 2, naming the flag that raises it."""


@dataclass(frozen=True)
class Resolution:
    """The largest frame: at most width * height pixels, and no side longer than the longer of the two
    (so `8192x4320` admits a portrait 4320x8192 as well)."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def side(self) -> int:
        return max(self.width, self.height)

    def admits(self, width: int, height: int) -> bool:
        return 0 < width <= self.side and 0 < height <= self.side and width * height <= self.pixels

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class InputLimits:
    image: Resolution  # a still image, a sequence frame, every part of an EXR
    image_bytes: int  # what one image decodes to (all its channels and parts, at their own depth)
    video: Resolution  # a video frame, as declared and as decoded
    file_bytes: int  # a file read whole into memory: any image; for verify, any file (Content Credentials)
    frames: int  # frames a video declares or holds; files in a numbered sequence
    seconds: float  # a video's or an audio track's duration

    def check_file_size(self, path: Path, size: int) -> None:
        if size > self.file_bytes:
            allowed = f"the {format_bytes(self.file_bytes)} a file may be"
            exceeded(path, f"{format_bytes(size)} on disk", allowed, "file_bytes")

    def check_image(self, path: Path, width: int, height: int, decoded_bytes: int) -> None:
        """A still's declared size and what decoding it allocates."""
        if not self.image.admits(width, height):
            exceeded(path, f"{width}x{height} pixels", f"the {self.image} allowed for an image", "image")
        if decoded_bytes > self.image_bytes:
            exceeded(
                path,
                f"decodes to {format_bytes(decoded_bytes)}",
                f"the {format_bytes(self.image_bytes)} an image may decode to",
                "image_bytes",
            )

    def check_video_frame(self, path: Path, width: int, height: int) -> None:
        if not self.video.admits(width, height):
            exceeded(path, f"video frames of {width}x{height}", f"the {self.video} allowed for video", "video")

    def check_frames(self, path: Path, frames: int) -> None:
        """A declared frame count (a container's, or the files of a sequence)."""
        if frames > self.frames:
            exceeded(path, f"declares {frames} frames", f"the {self.frames} allowed", "frames")

    def check_frame_index(self, path: Path, index: int) -> None:
        """Frames counted as they are read (a container may declare fewer than it holds)."""
        if index >= self.frames:
            refuse(path, f"holds more than the {self.frames} frames allowed", "frames")

    def check_seconds(self, path: Path, seconds: float) -> None:
        if seconds > self.seconds:
            exceeded(path, f"declares {seconds:.0f} s", f"the {self.seconds:.0f} s allowed", "seconds")

    def check_time(self, path: Path, seconds: float) -> None:
        """A time reached while decoding."""
        if seconds > self.seconds:
            refuse(path, f"runs past the {self.seconds:.0f} s allowed", "seconds")


@dataclass(frozen=True)
class LimitFlag:
    """How a limit is raised on the command line: one declaration, from which the CLI's options and
    the errors' hints are both made."""

    field: str
    flag: str
    metavar: str
    help: str


FLAGS = (
    LimitFlag("image", "--max-image-size", "WxH", "largest still image or sequence frame"),
    LimitFlag("image_bytes", "--max-image-memory", "SIZE", "most memory one image may decode to (e.g. 1G)"),
    LimitFlag("video", "--max-video-size", "WxH", "largest video frame"),
    LimitFlag("file_bytes", "--max-file-size", "SIZE", "largest file read whole into memory (e.g. 2G)"),
    LimitFlag("frames", "--max-frames", "N", "most frames a video or sequence may have"),
    LimitFlag("seconds", "--max-duration", "SECONDS", "longest video or audio track"),
)
FLAG_OF = {f.field: f.flag for f in FLAGS}

VERIFY = InputLimits(
    image=Resolution(8192, 8192),
    image_bytes=384 * MIB,
    video=Resolution(4096, 4096),
    file_bytes=512 * MIB,
    frames=1_000_000,
    seconds=12 * 3600.0,
)
OPERATOR = InputLimits(
    image=Resolution(8192, 8192),
    image_bytes=2 * GIB,
    video=Resolution(8192, 8192),
    file_bytes=2 * GIB,
    frames=1_000_000,
    seconds=4 * 3600.0,
)


def exceeded(path: Path, found: str, allowed: str, field: str) -> None:
    refuse(path, f"{found}, more than {allowed}", field)


def refuse(path: Path, what: str, field: str) -> None:
    raise LimitExceeded(f"{path}: {what} (raise it with {FLAG_OF[field]})")


def describe(limits: InputLimits, field: str) -> str:
    """A limit as a person would write it on the command line."""
    value = getattr(limits, field)
    if field.endswith("bytes"):
        return format_bytes(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_bytes(size: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
RESOLUTION = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes (binary units)."""
    match = SIZE.match(text)
    if match is None:
        raise BadInput(f"{text!r} is not a size (e.g. 512M, 2G, or a number of bytes)")
    scale = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1 << 40}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def parse_resolution(text: str) -> Resolution:
    match = RESOLUTION.match(text)
    if match is None or 0 in (int(match.group(1)), int(match.group(2))):
        raise BadInput(f"{text!r} is not a frame size (WIDTHxHEIGHT, e.g. 8192x4320)")
    return Resolution(int(match.group(1)), int(match.group(2)))


PARSERS = {"image": parse_resolution, "video": parse_resolution, "image_bytes": parse_bytes, "file_bytes": parse_bytes}


def with_overrides(base: InputLimits, given: dict[str, str | None]) -> InputLimits:
    """`base` with the limits given on the command line (by field name; None: not given)."""
    changes: dict[str, object] = {}
    for name, text in given.items():
        if text is None:
            continue
        if name in PARSERS:
            changes[name] = PARSERS[name](text)
        elif name == "frames":
            changes[name] = _positive(int, text, FLAG_OF[name])
        else:
            changes[name] = _positive(float, text, FLAG_OF[name])
    return dataclasses.replace(base, **changes)


def _positive(kind: type, text: str, flag: str):
    try:
        value = kind(text)
    except ValueError:
        raise BadInput(f"{flag} {text!r}: not a number") from None
    if value <= 0:
        raise BadInput(f"{flag} must be positive, got {text}")
    return value
