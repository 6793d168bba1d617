"""Hostile files for the bounds tests and the hostile-input benchmark: decompression bombs, headers
that declare far more than the file holds, and sparse giant files. Each is small on disk (or sparse)
and built in well under a second, except where a real encode is needed (a few flat frames)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
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


def _find_box(raw: bytearray, path: list[bytes], start: int = 0, end: int | None = None) -> tuple[int, int]:
    """(offset, size) of the box at `path` (box types, outermost first) inside raw[start:end]."""
    end = len(raw) if end is None else end
    found = (0, 0)
    for kind in path:
        found = next((at, size) for at, size, k in _mp4_boxes(raw, start, end) if k == kind)
        start, end = found[0] + 8, found[0] + found[1]
    return found


def mp4_claiming_frames(source: Path, path: Path, frames: int) -> Path:
    """`source` (an MP4 or MOV) with each video track's time-to-sample table rewritten to claim `frames`
    frames (one entry: `frames` samples of the first delta). The sample data stays as it was."""
    raw = bytearray(source.read_bytes())
    _claim_frames(raw, frames)
    path.write_bytes(bytes(raw))
    return path


def _claim_frames(raw: bytearray, frames: int) -> None:
    moov, moov_size = _find_box(raw, [b"moov"])
    for at, size, kind in list(_mp4_boxes(raw, moov + 8, moov + moov_size)):
        if kind == b"trak" and b"vide" in raw[at : at + size]:
            stts, _ = _find_box(raw, [b"mdia", b"minf", b"stbl", b"stts"], at + 8, at + size)
            delta = struct.unpack(">I", raw[stts + 20 : stts + 24])[0]
            raw[stts + 12 : stts + 24] = struct.pack(">III", 1, frames, delta)  # entries, count, delta


def exr_bomb(path: Path, width: int, height: int) -> Path:
    """A valid ZIP-compressed half-float RGB EXR of `width` x `height`: every 16-line chunk is the same
    few compressed bytes, so a 30000 x 30000 plate (5.4 GB as half, 10.8 GB as float) is a few MB."""

    def attribute(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    channels = b"".join(c + b"\0" + struct.pack("<iB3xii", 1, 0, 1, 1) for c in (b"B", b"G", b"R")) + b"\0"
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = b"".join(
        [
            attribute("channels", "chlist", channels),
            attribute("compression", "compression", b"\x03"),  # ZIP, 16 lines per chunk
            attribute("dataWindow", "box2i", window),
            attribute("displayWindow", "box2i", window),
            attribute("lineOrder", "lineOrder", b"\x00"),
            attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
            attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
            attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
        ]
    )
    head = b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + header + b"\0"
    chunks = -(-height // 16)
    data = zlib.compress(bytes(16 * width * 3 * 2), 9)
    last = zlib.compress(bytes((height - 16 * (chunks - 1)) * width * 3 * 2), 9)
    offsets, at = [], len(head) + 8 * chunks
    for index in range(chunks):
        offsets.append(at)
        at += 8 + len(last if index == chunks - 1 else data)
    with open(path, "wb") as handle:
        handle.write(head + struct.pack(f"<{chunks}Q", *offsets))
        for index in range(chunks):
            body = last if index == chunks - 1 else data
            handle.write(struct.pack("<ii", index * 16, len(body)) + body)
    return path


@dataclass(frozen=True)
class BoundedRun:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    peak_rss: int  # bytes, the child's own peak resident set
    seconds: float  # wall clock
    cpu_seconds: float


def run_cli(args: list[str], timeout: float = 120.0, memory_cap: int = 6 << 30) -> BoundedRun:
    """`faceswap ARGS` in a child process, with its own peak RSS (wait4's resource usage) and times.
    The child's address space is capped at `memory_cap` so that a bomb run on code that does not
    bound it fails fast instead of taking the machine."""
    import os
    import resource
    import subprocess
    import sys
    import tempfile
    import time

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "faceswap.cli", *args], stdout=out, stderr=err, preexec_fn=cap)
        code, usage = None, None
        while time.perf_counter() - started < timeout:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.05)
        if code is None:
            child.kill()
            _, _, usage = os.wait4(child.pid, 0)
        child.returncode = code if code is not None else -9
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        assert usage is not None
        return BoundedRun(
            code,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_maxrss * 1024,
            seconds,
            usage.ru_utime + usage.ru_stime,
        )


HUGE = 60000  # a frame side beyond every default limit that every format below can still declare


def declaring_huge(data: bytes) -> bytes:
    """`data` (a file of a format faceswap reads) with its header rewritten to declare far more than
    any default limit allows: a HUGE x HUGE frame (a 16384-pixel one where the format cannot say
    more), a billion frames, or a billion seconds. The rest of the file is left as it was."""
    raw = bytearray(data)
    for sniff, patch in PATCHERS:
        if sniff(raw):
            patch(raw)
            return bytes(raw)
    raise ValueError("no patcher for this format")


def _patch_png(raw: bytearray) -> None:
    raw[16:24] = struct.pack(">II", HUGE, HUGE)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)


def _patch_jpeg(raw: bytearray) -> None:
    at = 2
    while raw[at + 1] not in (0xC0, 0xC1, 0xC2):
        at += 2 + struct.unpack(">H", raw[at + 2 : at + 4])[0]
    raw[at + 5 : at + 9] = struct.pack(">HH", HUGE, HUGE)


def _patch_tiff(raw: bytearray) -> None:
    order = "<" if raw[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", raw[4:8])
    (count,) = struct.unpack(order + "H", raw[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack(order + "HH", raw[entry : entry + 4])
        if tag in (256, 257):
            code = "H" if kind == 3 else "I"
            raw[entry + 8 : entry + 8 + struct.calcsize(code)] = struct.pack(order + code, HUGE)


def _patch_webp(raw: bytearray) -> None:
    kind = bytes(raw[12:16])
    if kind == b"VP8L":
        (bits,) = struct.unpack("<I", raw[21:25])
        raw[21:25] = struct.pack("<I", (bits & ~0xFFFFFFF) | 0x3FFF | (0x3FFF << 14))
    elif kind == b"VP8 ":
        raw[26:30] = struct.pack("<HH", 0x3FFF, 0x3FFF)
    else:
        raw[24:30] = (HUGE - 1).to_bytes(3, "little") * 2


def _patch_bmp(raw: bytearray) -> None:
    raw[18:26] = struct.pack("<ii", HUGE, HUGE)


def _patch_gif(raw: bytearray) -> None:
    raw[6:10] = struct.pack("<HH", HUGE, HUGE)


def _patch_exr(raw: bytearray) -> None:
    for name in (b"dataWindow\x00box2i\x00", b"displayWindow\x00box2i\x00"):
        at = raw.index(name) + len(name) + 4
        raw[at : at + 16] = struct.pack("<iiii", 0, 0, HUGE - 1, HUGE - 1)


def _patch_mp4(raw: bytearray) -> None:
    _claim_frames(raw, 10**9)


def _patch_mkv(raw: bytearray) -> None:
    """The segment's Duration (milliseconds, as a float) becomes a billion seconds."""
    at = raw.index(b"\x44\x89")
    width = raw[at + 2] & 0x7F
    raw[at + 3 : at + 3 + width] = struct.pack(">d" if width == 8 else ">f", 1e12)


def _is_mp4(raw: bytearray) -> bool:
    return raw[4:8] in (b"ftyp", b"wide", b"mdat", b"free", b"moov")


PATCHERS = (
    (lambda r: r.startswith(b"\x89PNG"), _patch_png),
    (lambda r: r.startswith(b"\xff\xd8"), _patch_jpeg),
    (lambda r: r[:4] in (b"II*\x00", b"MM\x00*"), _patch_tiff),
    (lambda r: r[:4] == b"RIFF" and r[8:12] == b"WEBP", _patch_webp),
    (lambda r: r.startswith(b"BM"), _patch_bmp),
    (lambda r: r[:3] == b"GIF", _patch_gif),
    (lambda r: r.startswith(b"\x76\x2f\x31\x01"), _patch_exr),
    (lambda r: r.startswith(b"\x1a\x45\xdf\xa3"), _patch_mkv),
    (_is_mp4, _patch_mp4),
)
