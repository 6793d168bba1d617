"""Hostile files for the bounds tests and the hostile-input benchmark: decompression bombs, headers
that declare far more than the file holds, and sparse giant files. Each is small on disk (or sparse)
and built in well under a second, except where a real encode is needed (a few flat frames)."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int = 30000, height: int = 30000, bit_depth: int = 8, colour: int = 0) -> Path:
    """A valid PNG of `width` x `height` flat pixels (grey by default): a few hundred KB that decode
    to width * height * channels bytes. Rows are compressed as they are made, never held whole."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = bytes(1 + width * channels * bit_depth // 8)  # filter byte 0, then zeros
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    data = b"".join(parts)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
    )
    return path


def sparse_file(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that takes no disk: `head`, then a hole."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def small_png_bytes(width: int = 16, height: int = 16) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def jpeg_declaring(path: Path, width: int, height: int) -> Path:
    """A small real JPEG whose frame header (SOF0) is rewritten to declare `width` x `height`."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    raw = bytearray(data.tobytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(raw))
    return path


def gif_declaring(path: Path, width: int, height: int) -> Path:
    """A one-frame GIF whose logical screen and image are `width` x `height` (LZW data for one pixel)."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    path.write_bytes(header + image + b"\x3b")
    return path


def exr_declaring(path: Path, width: int, height: int) -> Path:
    """A real 16 x 16 half-float EXR whose header's dataWindow (and displayWindow) is rewritten to
    `width` x `height`: the header says gigabytes, the file holds a few hundred bytes."""
    import OpenEXR

    pixels = np.full((16, 16), 0.5, np.float16)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {c: pixels for c in "RGB"}).write(str(path))
    raw = bytearray(path.read_bytes())
    for name in (b"dataWindow\x00box2i\x00", b"displayWindow\x00box2i\x00"):
        at = raw.index(name) + len(name) + 4  # the attribute's size field, then xMin yMin xMax yMax
        raw[at : at + 16] = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    path.write_bytes(bytes(raw))
    return path


def flat_video(
    path: Path,
    width: int,
    height: int,
    frames: int,
    codec: str = "libx264",
    fps: int = 25,
    pix_fmt: str = "yuv420p",
) -> Path:
    """`frames` flat grey frames: an 8K clip of a few frames is a few hundred KB."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "30"}
        image = np.full((height, width, 3), 100, np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _mp4_boxes(raw: bytes | bytearray, start: int, end: int):
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", raw[at : at + 8])
        if size < 8:
            return
        yield at, size, kind
        at += size


def _find_box(raw: bytearray, path: list[bytes]) -> tuple[int, int]:
    start, end = 0, len(raw)
    found = (0, 0)
    for kind in path:
        found = next((at, size) for at, size, k in _mp4_boxes(raw, start, end) if k == kind)
        start, end = found[0] + 8, found[0] + found[1]
    return found


def mp4_claiming_frames(source: Path, path: Path, frames: int) -> Path:
    """`source` (an MP4) with its video track's time-to-sample table rewritten to claim `frames`
    frames (one entry: `frames` samples of the first delta), and the media/track/movie durations
    to match. The sample data stays as it was."""
    raw = bytearray(source.read_bytes())
    stbl = [b"moov", b"trak", b"mdia", b"minf", b"stbl"]
    stts, _ = _find_box(raw, [*stbl, b"stts"])
    delta = struct.unpack(">I", raw[stts + 20 : stts + 24])[0]
    raw[stts + 12 : stts + 24] = struct.pack(">III", 1, frames, delta)  # entry count, count, delta
    mdhd, _ = _find_box(raw, [b"moov", b"trak", b"mdia", b"mdhd"])
    if raw[mdhd + 8] == 0:  # version 0: 32-bit duration at offset 24
        media_duration = min(frames * delta, 0xFFFFFFFF)
        raw[mdhd + 24 : mdhd + 28] = struct.pack(">I", media_duration)
    path.write_bytes(bytes(raw))
    return path
