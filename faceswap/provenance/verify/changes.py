"""What was done to a file since it was written: the geometry the watermark reader undid (mirror,
bars, chip size) set against what the ledger entry recorded (size, frames, bytes).

The tiles' chip size is the ruler: the writer chose it from the original frame (tiles.chip_size), so
the chip size read, over the one the entry's frame size implies, is how much the picture was scaled;
the picture's extent divided by that scale, over the entry's extent, is how much of it is left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceswap.provenance.watermark import tiles

WRITTEN_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "exr": "OpenEXR", "tif": "TIFF", "tiff": "TIFF"}
SAME = 0.02  # ratios within this of 1 are "unchanged" (the chip size is found to about 0.1%)


@dataclass(frozen=True)
class FileFacts:
    """The received file as read: its bytes' hash, its type, its picture size and frame count."""

    sha256: str
    media: str  # image | video
    format: str  # PNG, JPEG, MP4, ...
    width: int
    height: int
    frames: int
    codec: str | None = None


@dataclass(frozen=True)
class Change:
    kind: str  # identical | reencoded | mirror | borders | scale | crop | trim | format
    text: str
    value: Any = None


def what_was_done(detection: Any, entry_data: dict[str, Any] | None, facts: FileFacts) -> list[Change]:
    """Each change found, in plain words; empty when nothing can be said (no mark was read)."""
    if detection is None or not detection.marked:
        return []
    if entry_data and entry_data.get("sha256") == facts.sha256:
        return [Change("identical", "nothing: byte for byte the file that was written")]
    tile = next((e for e in detection.layers if e.layer == "tiles" and e.detected), None)
    undone = detection.undone or {}
    found: list[Change] = []
    if entry_data:
        found += _bytes_and_length(entry_data, facts)
    if undone.get("mirror"):
        found.append(Change("mirror", "mirrored (flipped left to right)", True))
    width, height = (entry_data or {}).get("width"), (entry_data or {}).get("height")
    if tile is not None and width and height:
        return found + _against_entry(float(tile.details["chip_px"]), int(width), int(height), facts, undone)
    return found + _without_entry(undone)


def _bytes_and_length(entry_data: dict[str, Any], facts: FileFacts) -> list[Change]:
    out = [
        Change(
            "reencoded",
            "re-encoded, edited or stripped of its metadata: its bytes differ from the file that was written",
        )
    ]
    written_as = entry_data.get("media")
    if written_as in ("image", "video") and written_as != facts.media:
        out.append(Change("format", f"turned from a {written_as} into a {facts.media}", written_as))
    written_suffix = str(entry_data.get("name") or "").rsplit(".", 1)[-1].lower()
    written_format = WRITTEN_FORMATS.get(written_suffix)
    if written_as == facts.media == "image" and written_format and written_format != facts.format:
        out.append(Change("format", f"saved as {facts.format} (written as {written_format})", written_format))
    frames = int(entry_data.get("frames") or 0)
    if facts.media == "video" and written_as == "video" and frames and facts.frames and facts.frames < frames:
        out.append(Change("trim", f"shortened: {facts.frames} of the {frames} frames written", facts.frames / frames))
    return out


def _against_entry(chip_px: float, width: int, height: int, facts: FileFacts, undone: dict[str, Any]) -> list[Change]:
    """Scale from the chip size against the one the written frame got; then what share of the
    written picture the received frame holds at that scale (less: cropped), and whether it is
    larger than the written picture with flat bars (more: a canvas or bars were added). The whole
    frame is the measure: smooth content at an edge can look like a bar to the reader."""
    scale = chip_px / tiles.chip_size((height, width))
    out = []
    if abs(scale - 1.0) > SAME:
        out.append(Change("scale", f"scaled to about {100 * scale:.0f}% of the size written", round(scale, 3)))
    kept_w, kept_h = facts.width / scale / width, facts.height / scale / height
    if kept_w < 1 - SAME or kept_h < 1 - SAME:
        share_w, share_h = min(kept_w, 1.0), min(kept_h, 1.0)
        out.append(
            Change(
                "crop",
                f"cropped: about {100 * share_w:.0f}% of the width and {100 * share_h:.0f}% of the height are left",
                [round(share_w, 3), round(share_h, 3)],
            )
        )
    if undone.get("borders") and max(kept_w, kept_h) > 1 + SAME:
        out.append(
            Change("borders", "set in bars or a larger canvas (the mark was read inside them)", undone["borders"])
        )
    return out


def _without_entry(undone: dict[str, Any]) -> list[Change]:
    """No written size to compare with: what the reader itself undid."""
    out = []
    if undone.get("borders"):
        out.append(Change("borders", "flat bars or edges were set aside to read the mark", undone["borders"]))
    scale = undone.get("scale")
    if scale and abs(scale - 1.0) > SAME:
        out.append(Change("scale", f"scaled or cropped (chips {scale:.2f}x the size this picture would get)", scale))
    return out
