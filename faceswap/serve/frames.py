"""The frame shown with an answer: one of the frames verify read, as a small JPEG kept in memory,
with the region the mark was read in (inside any bars) as fractions of the frame."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

THUMB_SIDE = 720  # longest side of the picture sent back
JPEG_QUALITY = 85


@dataclass(frozen=True)
class FramePreview:
    image: str  # data:image/jpeg;base64,...
    width: int  # of the frame as decoded
    height: int
    sample_index: int  # which of the frames read (0-based)
    sampled: int  # how many frames verify read
    intra: bool  # a frame the codec stored on its own (after a re-encode those hold the mark best)
    region: dict[str, float] | None  # top, left, bottom, right as fractions; None: the whole frame
    caption: str

    def to_json(self, with_image: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not with_image:
            data.pop("image")
        return data


def chosen_frame(intra: list[bool], token_from: str | None) -> int:
    """The intra frame the token came from when only those gave it, else the middle frame read."""
    if token_from == "tiles-intra" and any(intra):
        return intra.index(True)
    return len(intra) // 2


def preview(frames: list[np.ndarray], intra: list[bool], detection: Any) -> FramePreview:
    index = chosen_frame(intra, detection.token_from if detection is not None else None)
    frame = frames[index]
    height, width = frame.shape[:2]
    borders = (detection.undone or {}).get("borders") if detection is not None else None
    region = None
    if borders:
        top, bottom, left, right = borders
        region = {"top": top / height, "left": left / width, "bottom": bottom / height, "right": right / width}
    return FramePreview(
        image=_jpeg_data_uri(frame),
        width=int(width),
        height=int(height),
        sample_index=index,
        sampled=len(frames),
        intra=bool(intra[index]),
        region=region,
        caption=_caption(len(frames), index, bool(intra[index]), detection, region is not None),
    )


def _caption(count: int, index: int, intra: bool, detection: Any, boxed: bool) -> str:
    marked = detection is not None and detection.marked
    where = "inside the outlined region" if boxed else "over the whole picture"
    if count == 1:
        return f"The picture as received; the mark was read {where}." if marked else "The picture as received."
    shown = f"Frame {index + 1} of the {count} read{' (a key frame)' if intra else ''}"
    if not marked:
        return f"{shown}; no mark was found on them."
    return f"{shown}; the mark was read on all {count} together, {where}."


def _jpeg_data_uri(frame: np.ndarray) -> str:
    import cv2

    height, width = frame.shape[:2]
    factor = min(1.0, THUMB_SIDE / max(height, width))
    if factor < 1.0:
        frame = cv2.resize(frame, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the preview could not be encoded")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
