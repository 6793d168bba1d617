"""Occlusion measurements against a demo clip's truth (the occluder's and the face's outlines per
frame):

- segmenter IoU: the predicted visible face (the segmenter on the face as conversion finds and
  aligns it, pasted back into the frame, >= 0.5) against the true visible face (the face's polygon
  less the occluder's), frame by frame;
- occluder kept: of the pixels where the occluder covers the face, the share the output left as the
  input had them (within TOLERANCE levels, which the watermark and the video codec stay within);
- unoccluded face: how much the output with the occlusion mask differs from the one without over
  the visible face away from the occluder (the swap is the same there: only the watermark's tokens,
  the codec and where the segmenter's face outline trims the swap's differ), and each output's
  identity on the frames where both show a face.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.media import iter_video_frames

TOLERANCE = 12  # levels (of 255) an output pixel may differ from the input and still be the input's
EDGE = 3  # pixels around the occluder's true outline left out of the "unoccluded face" comparison
INTERIOR = 7  # pixels inside the face's outline where the "interior" of the visible face starts


def truth_masks(row: dict[str, Any], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(face, occluder) as bool masks of a frame, from a truth row (pixel centres at whole numbers)."""
    import cv2

    face = np.zeros(shape, np.uint8)
    cv2.fillPoly(face, [np.rint(np.asarray(row["face_polygon"]) * 16).astype(np.int32)], 1, shift=4)
    occluder = np.zeros(shape, np.uint8)
    for polygon in (row.get("occluder") or {}).get("polygons", []):
        cv2.fillPoly(occluder, [np.rint(np.asarray(polygon) * 16).astype(np.int32)], 1, shift=4)
    return face.astype(bool), occluder.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


def segmenter_iou(segmenter, analyzer, matcher, video: Path, rows: list[dict], frames: set[int]) -> dict[int, float]:
    """IoU of the predicted and the true visible face on `frames` of `video` (subject B found by
    identity, aligned as conversion aligns it)."""
    from faceswap.faces.align import mask_to_frame

    out = {}
    for index, image in frames_of(video, frames):
        found = [f for f in analyzer.analyze(image) if matcher.matches(f.embedding)]
        if not found:
            continue
        face = max(found, key=lambda f: float(f.bbox[2] - f.bbox[0]))
        [answer] = segmenter.predict([(image, face, face.kps5)])
        predicted = mask_to_frame(answer.visible, answer.matrix, image.shape) >= 0.5
        true_face, occluder = truth_masks(rows[index], image.shape[:2])
        out[index] = iou(predicted, true_face & ~occluder)
    return out


def kept_shares(
    source: Path, outputs: dict[str, Path], rows: list[dict], frames: set[int], first: int = 0
) -> dict[str, Any]:
    """Per output (whose frame 0 is input frame `first`): the share of occluder-on-face pixels left
    as the input had them; for the first output also the same share on background far from the face
    (the tolerance's reference); and how the first two outputs differ on the visible face away from
    the occluder (all of it, and its interior: INTERIOR px inside the face's outline)."""
    names = list(outputs)
    readers = {name: frames_of(path, {f - first for f in frames}) for name, path in outputs.items()}
    totals: dict[str, list[float]] = {name: [0.0, 0.0] for name in [*names, "background"]}
    unoccluded: dict[str, list[float]] = {"difference": [], "agree": [], "interior_agree": [], "swap_change": []}
    for index, image in frames_of(source, frames):
        decoded = {name: _next_at(readers[name], index - first) for name in names}
        face, occluder = truth_masks(rows[index], image.shape[:2])
        for name in names:
            _count(totals[name], image, decoded[name], face & occluder)
        _count(totals["background"], image, decoded[names[0]], ~_grown(face, 30) & ~occluder)
        if len(names) > 1:
            _unoccluded(unoccluded, image, decoded[names[0]], decoded[names[1]], face, occluder)
    shares = {name: (kept / total if total else None) for name, (kept, total) in totals.items()}
    return {"shares": shares, **{k: float(np.mean(v)) if v else None for k, v in unoccluded.items()}}


def _grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1,) * 2, np.uint8)).astype(bool)


def _unoccluded(
    out: dict[str, list[float]], source: np.ndarray, first: np.ndarray, second: np.ndarray, face, occluder
) -> None:
    """One frame's comparison of two outputs over the visible face away from the occluder."""
    clear = face & ~_grown(occluder, EDGE)
    interior = ~_grown(~face, INTERIOR) & ~_grown(occluder, 3 * EDGE)
    if not clear.any():
        return
    diff = np.abs(first.astype(np.int16) - second.astype(np.int16)).max(axis=2)
    out["difference"].append(float(diff[clear].mean()))
    out["agree"].append(float((diff[clear] <= TOLERANCE).mean()))
    if interior.any():
        out["interior_agree"].append(float((diff[interior] <= TOLERANCE).mean()))
    change = np.abs(second.astype(np.int16) - source.astype(np.int16)).max(axis=2)
    out["swap_change"].append(float(change[clear].mean()))


def _count(total: list[float], before: np.ndarray, after: np.ndarray, region: np.ndarray) -> None:
    if region.any():
        diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
        total[0] += float((diff[region] <= TOLERANCE).sum())
        total[1] += float(region.sum())


def frames_of(path: Path, frames: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    last = max(frames) if frames else -1
    for decoded in iter_video_frames(path):
        if decoded.index > last:
            return
        if decoded.index in frames:
            yield decoded.index, decoded.image


def _next_at(reader: Iterator[tuple[int, np.ndarray]], index: int) -> np.ndarray:
    for at, image in reader:
        if at == index:
            return image
    raise ValueError(f"frame {index} is missing from an output")
