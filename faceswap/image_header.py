"""What an image file declares before a decoder allocates anything: its format, by content (as the
decoder picks it), its frame size, channels and depth, and what decoding it allocates.

OpenCV decodes by content whatever its build supports (JPEG 2000, AVIF, HDR, PFM, Sun raster ...);
only the formats read here are let through to it, so every image decoded has been sized first.
EXR headers are read by OpenEXR itself, without pixels.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from faceswap.errors import BadInput

FORMATS = ("PNG", "JPEG", "TIFF", "WebP", "BMP", "GIF", "EXR")
MAX_SEGMENTS = 4096  # JPEG marker segments / GIF blocks looked at before the frame header must have come
EXR_MAGIC = b"\x76\x2f\x31\x01"


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    channels: int  # samples per pixel as stored (EXR: of its first part)
    sample_bytes: int  # bytes per sample as decoded (1, 2 or 4)
    extra_bytes: int = 0  # what the decoder holds besides the pixels (progressive JPEG coefficients, a
    # TIFF tile buffer, an EXR's other channels and parts)
    parts: int = 1

    @property
    def plate_bytes(self) -> int:
        """Read at its own depth: the pixels as BGR(A) (grey is made BGR; an EXR's float32), plus what
        the decoder holds besides."""
        return self.width * self.height * max(3, self.channels) * self.sample_bytes + self.extra_bytes

    @property
    def view_bytes(self) -> int:
        """Read as an 8-bit BGR view: an EXR's channels as stored, their stack and the view; any other
        format is decoded at its own depth first."""
        if self.format == "EXR":
            return 2 * self.extra_bytes + 3 * self.width * self.height
        return self.plate_bytes + 3 * self.width * self.height


class Damaged(BadInput):
    """The header is cut short or self-contradictory."""


def read_header(path: Path) -> ImageHeader:
    """The header of the image at `path`, or BadInput when it is not a format read here."""
    try:
        with open(path, "rb") as handle:
            return _sniffed(handle, path)
    except OSError as error:
        raise BadInput(f"{path}: cannot read ({error.strerror or error})") from None


def header_of(data: bytes, name: Path) -> ImageHeader:
    """The header of an image already in memory (`name` for messages; EXR needs a file)."""
    return _sniffed(io.BytesIO(data), name)


def _sniffed(handle: BinaryIO, path: Path) -> ImageHeader:
    head = handle.read(32)
    try:
        for sniff, reader in SNIFFERS:
            if sniff(head):
                if reader is _exr and not isinstance(handle, io.BufferedReader):
                    break
                return reader(handle, path)
    except (struct.error, Damaged, IndexError):
        raise BadInput(f"{path}: a damaged image header") from None
    other = next((name for sniff, name in OTHER_FORMATS if sniff(head)), None)
    if other is not None:
        raise BadInput(f"{path}: a {other} image, not a format faceswap reads ({', '.join(FORMATS)})")
    raise BadInput(f"{path}: not a readable image")


def _exact(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise Damaged("cut short")
    return data


def _png(handle: BinaryIO, path: Path) -> ImageHeader:
    handle.seek(8)
    length, kind = struct.unpack(">I4s", _exact(handle, 8))
    if kind != b"IHDR" or length != 13:
        raise Damaged("no IHDR")
    width, height, depth, colour = struct.unpack(">IIBB", _exact(handle, 10))
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        raise Damaged("bad IHDR")
    return ImageHeader("PNG", width, height, channels, 2 if depth == 16 else 1)


SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


def _jpeg(handle: BinaryIO, path: Path) -> ImageHeader:
    """The first frame header (SOFn): what libjpeg sizes its buffers by."""
    handle.seek(2)
    for _ in range(MAX_SEGMENTS):
        byte = _exact(handle, 1)[0]
        if byte != 0xFF:
            raise Damaged("not a marker")
        marker = _exact(handle, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _exact(handle, 1)[0]
        if marker in STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise Damaged("no frame header")
        (length,) = struct.unpack(">H", _exact(handle, 2))
        if marker in SOF_MARKERS:
            precision, height, width, channels = struct.unpack(">BHHB", _exact(handle, 6))
            if height == 0 or channels == 0:
                raise Damaged("height given later (DNL) or no components")
            # progressive and multi-scan decoding keep every block's coefficients (2 bytes each)
            coefficients = width * height * channels * 2 if marker in PROGRESSIVE else 0
            return ImageHeader("JPEG", width, height, channels, 2 if precision > 8 else 1, coefficients)
        if length < 2:
            raise Damaged("bad segment length")
        handle.seek(length - 2, 1)
    raise Damaged("too many segments before the frame header")


def _tiff(handle: BinaryIO, path: Path) -> ImageHeader:
    """The first IFD (the page OpenCV decodes): size, samples, bits, tiles; classic or BigTIFF."""
    handle.seek(0)
    order = "<" if _exact(handle, 2) == b"II" else ">"
    (version,) = struct.unpack(order + "H", _exact(handle, 2))
    big = version == 43
    if big:
        handle.seek(8)
        (offset,) = struct.unpack(order + "Q", _exact(handle, 8))
    else:
        (offset,) = struct.unpack(order + "I", _exact(handle, 4))
    tags = _tiff_tags(handle, order, offset, big)
    width, height = tags.get(256, 0), tags.get(257, 0)
    channels = tags.get(277, 1)
    bits = tags.get(258, 8)
    if not (width and height and 0 < channels <= 64 and 0 < bits <= 64):
        raise Damaged("missing or impossible size, samples or bits")
    sample_bytes = 1 if bits <= 8 else 2 if bits <= 16 else 4
    tile = tags.get(322, 0) * tags.get(323, 0) * channels * max(1, bits // 8)
    return ImageHeader("TIFF", width, height, channels, sample_bytes, tile)


TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8: the ones sizes use


def _tiff_tags(handle: BinaryIO, order: str, offset: int, big: bool) -> dict[int, int]:
    """Tag -> first value, for the integer tags of one IFD (a value that does not fit in its entry is
    read where the entry points)."""
    handle.seek(offset)
    count_format, entry_size = ("Q", 20) if big else ("H", 12)
    (count,) = struct.unpack(order + count_format, _exact(handle, struct.calcsize(count_format)))
    if count > MAX_SEGMENTS:
        raise Damaged("too many tags")
    entries = _exact(handle, count * entry_size)
    tags: dict[int, int] = {}
    value_at, inline = (12, 8) if big else (8, 4)
    for i in range(count):
        entry = entries[i * entry_size : (i + 1) * entry_size]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if kind not in TIFF_TYPES:
            continue
        code, size = TIFF_TYPES[kind]
        (values,) = struct.unpack(order + ("Q" if big else "I"), entry[value_at - (8 if big else 4) : value_at])
        field = entry[value_at : value_at + inline]
        if values * size > inline:
            (pointer,) = struct.unpack(order + ("Q" if big else "I"), field)
            handle.seek(pointer)
            field = _exact(handle, size)
        tags[tag] = struct.unpack(order + code, field[:size])[0]
    return tags


def _webp(handle: BinaryIO, path: Path) -> ImageHeader:
    handle.seek(12)
    kind = _exact(handle, 4)
    handle.seek(4, 1)  # chunk size
    if kind == b"VP8X":
        flags = _exact(handle, 4)[0]
        w, h = _exact(handle, 3), _exact(handle, 3)
        width, height = int.from_bytes(w, "little") + 1, int.from_bytes(h, "little") + 1
        return ImageHeader("WebP", width, height, 4 if flags & 0x10 else 3, 1)
    if kind == b"VP8L":
        if _exact(handle, 1) != b"\x2f":
            raise Damaged("bad VP8L signature")
        (bits,) = struct.unpack("<I", _exact(handle, 4))
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4, 1)
    if kind == b"VP8 ":
        frame = _exact(handle, 10)
        if frame[3:6] != b"\x9d\x01\x2a":
            raise Damaged("bad VP8 start code")
        width, height = struct.unpack("<HH", frame[6:10])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF, 3, 1)
    raise Damaged("unknown WebP chunk")


def _bmp(handle: BinaryIO, path: Path) -> ImageHeader:
    handle.seek(14)
    (size,) = struct.unpack("<I", _exact(handle, 4))
    if size == 12:
        width, height, _, bits = struct.unpack("<HHHH", _exact(handle, 8))
    else:
        width, height, _, bits = struct.unpack("<iiHH", _exact(handle, 12))
    return ImageHeader("BMP", abs(width), abs(height), 4 if bits == 32 else 3, 1)


def _gif(handle: BinaryIO, path: Path) -> ImageHeader:
    """The logical screen, grown to hold the first image if that is larger."""
    handle.seek(6)
    width, height, packed = struct.unpack("<HHB", _exact(handle, 5))
    handle.seek(2, 1)
    if packed & 0x80:
        handle.seek(3 << ((packed & 7) + 1), 1)
    for _ in range(MAX_SEGMENTS):
        block = _exact(handle, 1)[0]
        if block == 0x2C:
            left, top, w, h = struct.unpack("<HHHH", _exact(handle, 8))
            return ImageHeader("GIF", max(width, left + w), max(height, top + h), 4, 1)
        if block != 0x21:
            raise Damaged("no image")
        handle.seek(1, 1)  # the extension's label
        while (size := _exact(handle, 1)[0]) != 0:
            handle.seek(size, 1)
    raise Damaged("too many blocks before the first image")


def _exr(handle: BinaryIO, path: Path) -> ImageHeader:
    """Every part's data window and channels, from OpenEXR's header-only read, with each channel's
    sample type from the header's channel lists: the first part is the picture; the others (and extra
    channels) still cost memory, since OpenEXR reads every part and channel."""
    import OpenEXR

    try:
        parts = OpenEXR.File(str(path), header_only=True).parts
    except Exception as error:  # noqa: BLE001 - OpenEXR raises plain exceptions for damaged files
        raise BadInput(f"{path}: not a readable EXR ({' '.join(str(error).split())})") from None
    types = _exr_sample_types(handle)
    sizes = [_exr_part(part.header, types[i] if i < len(types) else {}, path) for i, part in enumerate(parts)]
    if not sizes:
        raise BadInput(f"{path}: an EXR with no parts")
    width, height, channels, _ = sizes[0]
    # decoding keeps every part's channels as stored, then makes the first part's BGR(A) float32
    return ImageHeader("EXR", width, height, min(channels, 4), 4, sum(s[3] for s in sizes), len(sizes))


def _exr_part(header: dict, types: dict[str, int], path: Path) -> tuple[int, int, int, int]:
    """(width, height, channels, stored bytes) of one part; BadInput for deep data."""
    if "deep" in str(header.get("type", "")).lower():
        raise BadInput(f"{path}: deep EXR data is not read (a flat scanline or tiled image is)")
    (x0, y0), (x1, y1) = header["dataWindow"]
    width, height = int(x1) - int(x0) + 1, int(y1) - int(y0) + 1
    if width <= 0 or height <= 0:
        raise Damaged("empty data window")
    stored = 0
    channels = header.get("channels") or []
    for channel in channels:
        xs, ys = max(1, int(channel.xSampling)), max(1, int(channel.ySampling))
        stored += -(-width // xs) * -(-height // ys) * types.get(channel.name, 4)
    return width, height, len(channels), stored


EXR_PIXEL_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT


def _exr_sample_types(handle: BinaryIO) -> list[dict[str, int]]:
    """Bytes per sample of each channel, per part, from the `chlist` attributes (OpenEXR's header-only
    read leaves them out). Anything unparsed counts as 4 bytes."""
    handle.seek(4)
    (version,) = struct.unpack("<I", _exact(handle, 4))
    multipart = bool(version & 0x1000)
    found: list[dict[str, int]] = []
    for _ in range(MAX_SEGMENTS):
        attributes = _exr_attributes(handle)
        if attributes is None:
            break
        found.append(attributes)
        if not multipart:
            break
    return found


def _exr_attributes(handle: BinaryIO) -> dict[str, int] | None:
    """One header's channel types; None for the empty header that ends a multi-part file's list."""
    types: dict[str, int] = {}
    for count in range(MAX_SEGMENTS):
        name = _cstring(handle)
        if not name:
            return types if count else None
        kind = _cstring(handle)
        (size,) = struct.unpack("<i", _exact(handle, 4))
        if size < 0:
            raise Damaged("negative attribute size")
        if kind == b"chlist" and size <= 1 << 20:
            types = _exr_chlist(_exact(handle, size))
        else:
            handle.seek(size, 1)
    raise Damaged("too many attributes")


def _exr_chlist(data: bytes) -> dict[str, int]:
    types, at = {}, 0
    while at < len(data) and data[at] != 0:
        end = data.index(b"\0", at)
        (pixel,) = struct.unpack("<i", data[end + 1 : end + 5])
        types[data[at:end].decode("utf-8", "replace")] = EXR_PIXEL_BYTES.get(pixel, 4)
        at = end + 17  # name NUL, type, pLinear + 3 reserved, x and y sampling
    return types


def _cstring(handle: BinaryIO, longest: int = 256) -> bytes:
    out = bytearray()
    while (byte := _exact(handle, 1)) != b"\0":
        out += byte
        if len(out) > longest:
            raise Damaged("name too long")
    return bytes(out)


SNIFFERS: tuple[tuple[Callable[[bytes], bool], Callable[[BinaryIO, Path], ImageHeader]], ...] = (
    (lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"), _png),
    (lambda h: h.startswith(b"\xff\xd8\xff"), _jpeg),
    (lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", _webp),
    (lambda h: h.startswith(b"BM"), _bmp),
    (lambda h: h[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda h: h.startswith(EXR_MAGIC), _exr),
)
# formats OpenCV would decode by their content but that are not sized here: named in the refusal
OTHER_FORMATS: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda h: h.startswith(b"\x00\x00\x00\x0cjP  ") or h.startswith(b"\xff\x4f\xff\x51"), "JPEG 2000"),
    (lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"), "AVIF/HEIF"),
    (lambda h: len(h) > 2 and h[0:1] == b"P" and h[1:2] in b"1234567fF" and h[2:3].isspace(), "PNM/PFM"),
    (lambda h: h.startswith(b"#?RADIANCE") or h.startswith(b"#?RGBE"), "Radiance HDR"),
    (lambda h: h.startswith(b"\x59\xa6\x6a\x95"), "Sun raster"),
)
