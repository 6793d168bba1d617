"""Labelling demo frames as a person would in LabelMe: the face's outline and the occluder's, traced
as polygons on the frame (not on crops), from the clip's truth. The files name the frames the way
`ffmpeg -i clip.mp4 -start_number 0 clip.%06d.png` would, so `faceswap faceset label` maps them onto
the crops cut from those frames through each crop's alignment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic

TRACE_TOLERANCE = 0.7  # pixels a traced outline may stray from the true one (a careful labeller)


def traced(polygon: np.ndarray) -> list[list[float]]:
    """An outline as a labeller clicks it: fewer points, within TRACE_TOLERANCE, in the tools'
    continuous coordinates (pixel i spans [i, i + 1), so a pixel centre is at i + 0.5)."""
    import cv2

    points = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    simple = cv2.approxPolyDP(points, TRACE_TOLERANCE, True).reshape(-1, 2).astype(np.float64)
    return np.round(simple + 0.5, 2).tolist()


def labelme_document(row: dict[str, Any], image: str, size: tuple[int, int]) -> dict[str, Any]:
    """A LabelMe file for one truth row: the face polygon (label 'face') and each occluder polygon
    (labelled by its kind, all in one group: one object)."""
    shapes = [
        {
            "label": "face",
            "points": traced(np.asarray(row["face_polygon"])),
            "group_id": None,
            "shape_type": "polygon",
            "flags": {},
            "description": "",
        }
    ]
    occluder = row.get("occluder")
    if occluder:
        for polygon in occluder["polygons"]:
            shapes.append(
                {
                    "label": occluder["kind"],
                    "points": traced(np.asarray(polygon)),
                    "group_id": 1,
                    "shape_type": "polygon",
                    "flags": {},
                    "description": "",
                }
            )
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": None,
        "imageWidth": int(size[0]),
        "imageHeight": int(size[1]),
    }


def label_frames(truth: Path, frames: list[int], out: Path, source: str) -> list[Path]:
    """LabelMe files for `frames` of the clip whose truth is `truth` (`source`: the clip's file name)."""
    payload = json.loads(truth.read_text())
    rows = {row["frame"]: row for row in payload["frames"]}
    size = tuple(payload["size"])
    stem = Path(source).stem
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for frame in frames:
        image = f"{stem}.{frame:06d}.png"
        document = labelme_document(rows[frame], image, size)
        written.append(write_atomic(out / f"{stem}.{frame:06d}.json", json.dumps(document, indent=1)))
    return written
