"""What an upload is, from its first bytes: the name and type a browser sends are only claims.

The suffix a temporary file gets comes from here, so verify reads an upload as what it is."""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 64  # enough for every signature below


@dataclass(frozen=True)
class MediaType:
    kind: str  # image | video
    suffix: str  # what verify and its readers key on
    label: str


PNG = MediaType("image", ".png", "PNG")
JPEG = MediaType("image", ".jpg", "JPEG")
WEBP = MediaType("image", ".webp", "WebP")
TIFF = MediaType("image", ".tif", "TIFF")
BMP = MediaType("image", ".bmp", "BMP")
EXR = MediaType("image", ".exr", "OpenEXR")
MP4 = MediaType("video", ".mp4", "MP4")
MOV = MediaType("video", ".mov", "QuickTime")
MKV = MediaType("video", ".mkv", "Matroska/WebM")
AVI = MediaType("video", ".avi", "AVI")

ACCEPTED = (PNG, JPEG, WEBP, TIFF, BMP, EXR, MP4, MOV, MKV, AVI)
ACCEPTED_LABEL = "images (PNG, JPEG, WebP, TIFF, BMP, OpenEXR) and videos (MP4, MOV, M4V, MKV, WebM, AVI)"
ISO_BRANDS_NOT_VIDEO = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")
QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff(head: bytes) -> MediaType | None:
    """The accepted type whose signature `head` starts with, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[:2] == b"BM" and len(head) >= 26:
        return BMP
    if head.startswith(b"\x76\x2f\x31\x01"):
        return EXR
    if head[4:8] == b"ftyp" and head[8:12] not in ISO_BRANDS_NOT_VIDEO:
        return MOV if head[8:12] == b"qt  " else MP4
    if head[4:8] in QUICKTIME_ATOMS:
        return MOV
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MKV
    return None
