"""What conversion reads: a video, a numbered image sequence or one image, decoded into `FrameIn`s
(an 8-bit sRGB view for analysis and the swap, the plate at its own depth beside it) on a reader
thread, and the `Source` that says what the outputs keep of the input (rate, timing, colour space,
depth, numbering). Dubbing decodes its videos with the same reader thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceswap.colorspace import Colour
from faceswap.convert.settings import ConvertOptions
from faceswap.errors import BadInput
from faceswap.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    ImageSequence,
    Plate,
    find_sequence,
    iter_video_frames,
    probe_video,
    read_plate,
)

DECODE_AHEAD_BYTES = 1 << 30  # decoded frames held ahead of the swap


@dataclass
class FrameIn:
    index: int
    image: np.ndarray  # uint8 BGR, sRGB: the view that analysis and the swap work on
    pts: int | None = None
    time_base: Fraction | None = None
    number: int | None = None  # the input's frame number: a sequence's file number, a video's decode index
    plate: np.ndarray | None = None  # the input's own pixels (16-bit, float) when they hold more than `image`
    timecode: str | None = None  # this frame's source timecode, where known


@dataclass
class Source:
    """What decode found: the frames (only those asked for) and what outputs keep of the input."""

    frames: Iterator[FrameIn]
    kind: str  # video | sequence | image
    fps: Fraction
    time_base: Fraction | None
    total: int  # frames that will come; 0 when unknown
    colour: Colour
    space: str  # the input's colour space (canonical name)
    is_float: bool  # plates are float (EXR): scene-linear unless told otherwise
    deep: bool  # plates hold more than 8 bits
    first_number: int  # the first frame's number
    timecode: str | None  # the first frame's timecode, where known


def decode(path: Path, options: ConvertOptions | None = None) -> Source:
    """Frames from a video (a reader thread keeps decoding ahead), a numbered image sequence
    (`plate.%04d.exr`, or a folder of one) or a single image; within `--frames` when given."""
    options = options or ConvertOptions()
    colour = options.colour()
    sequence = find_sequence(path, options.limits) if "%" in path.name or "#" in path.name or path.is_dir() else None
    if sequence is not None:
        return _decode_sequence(sequence, options, colour)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _decode_video(path, options, colour)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _decode_sequence(None, options, colour, single=path)
    if path.is_dir():
        raise BadInput(f"{path}: holds no numbered image sequence (NAME.####.exr|png|tif)")
    raise BadInput(f"{path}: not a video, image or image sequence this tool reads")


def _decode_video(path: Path, options: ConvertOptions, colour: Colour) -> Source:
    from faceswap.timecode import Timecode

    info = probe_video(path, options.limits)
    space = colour.space(options.input_colorspace) if options.input_colorspace else colour.srgb
    deep = info.bits > 8
    first, last = options.frames or (0, None)
    if info.frames and first >= info.frames:
        raise BadInput(f"--frames {first}-{last}: {path} has frames 0-{info.frames - 1}")
    start = Timecode.parse(info.timecode, info.fps) if info.timecode else None
    view = _viewer(colour, space)

    def frames() -> Iterator[FrameIn]:
        for f in iter_video_frames(path, deep=deep, limits=options.limits):
            if f.index < first:
                continue
            if last is not None and f.index > last:
                return
            image, plate = view(f.image)
            tc = str(start + f.index) if start else None
            yield FrameIn(f.index, image, f.pts, f.time_base, f.index, plate, tc)

    count = info.frames - first if info.frames else 0
    if last is not None:
        count = min(count, last - first + 1) if count else last - first + 1
    frame_bytes = info.width * info.height * (3 + (6 if deep else 0))  # the view, and the deep plate
    return Source(
        in_background(frames(), ahead(frame_bytes)),
        "video",
        info.fps,
        info.time_base,
        count,
        colour,
        space,
        False,
        deep,
        first,
        str(start + first) if start else None,
    )


def _decode_sequence(
    sequence: ImageSequence | None, options: ConvertOptions, colour: Colour, single: Path | None = None
) -> Source:
    """A numbered sequence's frames in number order (or one image as frame 0), at their own depth."""
    if sequence is not None:
        first, last = options.frames or (min(sequence.numbers), max(sequence.numbers))
        numbers = [n for n in sequence.numbers if first <= n <= last]
        if not numbers:
            raise BadInput(f"--frames {first}-{last}: {sequence.label} has no frames in that range")
        paths = [(n, sequence.path(n)) for n in numbers]
    else:
        assert single is not None
        paths = [(0, single)]
    head = read_plate(paths[0][1], options.limits)
    default = colour.linear if head.is_float else colour.srgb
    space = colour.space(options.input_colorspace, "--input-colorspace") if options.input_colorspace else default
    view = _viewer(colour, space)
    shape = head.pixels.shape

    def frames() -> Iterator[FrameIn]:
        for position, (number, file) in enumerate(paths):
            plate: Plate = head if position == 0 else read_plate(file, options.limits)
            if plate.pixels.shape != shape:
                raise BadInput(f"{file}: {plate.pixels.shape[1]}x{plate.pixels.shape[0]} differs from the first frame")
            image, deep = view(plate.pixels)
            yield FrameIn(position, image, None, None, number, deep, plate.timecode)

    kind = "sequence" if sequence is not None else "image"
    frame_bytes = head.pixels.nbytes + (head.alpha.nbytes if head.alpha is not None else 0) + head.pixels.size
    return Source(
        in_background(frames(), ahead(frame_bytes)),
        kind,
        default_fps(head.fps),
        None,
        len(paths),
        colour,
        space,
        head.is_float,
        head.pixels.dtype != np.uint8,
        paths[0][0],
        head.timecode,
    )


def _viewer(colour: Colour, space: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """pixels -> (8-bit sRGB view, the pixels themselves when the view does not hold all of them)."""
    display = colour.display(space)

    def view(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if pixels.dtype == np.uint8 and display.identity:
            return pixels, None
        if pixels.dtype == np.uint16 and display.identity:
            return np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8), pixels
        scale = 1.0 if pixels.dtype.kind == "f" else float(np.iinfo(pixels.dtype).max)
        return display.view8(pixels.astype(np.float32) / scale), pixels

    return view


def ahead(frame_bytes: int) -> int:
    """How many decoded frames the reader thread may hold: up to 16, within DECODE_AHEAD_BYTES (an 8K
    float plate is half a GiB), never fewer than 2."""
    return max(2, min(16, DECODE_AHEAD_BYTES // max(1, frame_bytes)))


def in_background(items: Iterator, depth: int = 16) -> Iterator:
    """Run an iterator in its own thread, a few items ahead: decoding, swapping and the sink's
    watermarking and encoding overlap (the heavy parts release the GIL). When the consumer stops
    early (a refusal, an error), the thread stops too and closes the source (no decoder left open)."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises
            offer(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    threading.Thread(target=worker, daemon=True).start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def default_fps(fps: Fraction | None) -> Fraction:
    """Image sequences without a recorded rate play at 24 fps (film)."""
    return Fraction(fps) if fps else Fraction(24)
