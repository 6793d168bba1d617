"""Landmark masks (full face, lower face, mouth) for training weights and conversion blending.

Masks are drawn from the dense landmarks plus the five keypoints, so they work for any landmark
scheme that names its jaw contour and outer-lip points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK_REGIONS = ("full", "lower-face", "mouth")


@dataclass(frozen=True)
class LandmarkScheme:
    contour: tuple[int, ...]
    mouth_outer: tuple[int, ...]


SCHEMES: dict[str, LandmarkScheme] = {
    "68": LandmarkScheme(contour=tuple(range(0, 17)), mouth_outer=tuple(range(48, 60))),
    "106": LandmarkScheme(contour=tuple(range(0, 33)), mouth_outer=tuple(range(52, 72))),
}


def region_polygon(landmarks: np.ndarray, scheme: str, kps5: np.ndarray, region: str) -> np.ndarray:
    """Convex polygon (K, 2) of a region, in the coordinates the landmarks are given in."""
    import cv2

    if region not in MASK_REGIONS:
        raise ValueError(f"unknown mask region '{region}' (choose from {', '.join(MASK_REGIONS)})")
    spec = SCHEMES[scheme]
    pts = np.asarray(landmarks, dtype=np.float32)
    kps = np.asarray(kps5, dtype=np.float32)
    eye_mid = kps[:2].mean(axis=0)
    mouth_mid = kps[3:].mean(axis=0)
    up = eye_mid - mouth_mid  # eyes-to-mouth distance, pointing to the forehead
    side = kps[1] - kps[0]
    if region == "full":
        forehead = np.stack([kps[0] + up * 0.9 - side * 0.35, kps[1] + up * 0.9 + side * 0.35, eye_mid + up * 1.05])
        points = np.vstack([pts, forehead])
    elif region == "lower-face":
        nose = kps[2]
        down = -up / max(float(np.linalg.norm(up)), 1e-6)
        contour = pts[list(spec.contour)]
        below = contour[(contour - nose) @ down > 0]
        cap = np.stack([nose - up * 0.15 - side * 0.45, nose - up * 0.15 + side * 0.45])
        points = np.vstack([below, cap])
    else:
        lips = pts[list(spec.mouth_outer)]
        center = lips.mean(axis=0)
        points = center + (lips - center) * 1.3
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)


def landmark_mask(
    landmarks: np.ndarray,
    scheme: str,
    kps5: np.ndarray,
    region: str,
    shape: tuple[int, int],
    feather: float = 0.0,
) -> np.ndarray:
    """Float32 mask in [0, 1] of `shape` (h, w); `feather` is the Gaussian sigma in pixels."""
    import cv2

    mask = np.zeros(shape, dtype=np.float32)
    polygon = region_polygon(landmarks, scheme, kps5, region)
    cv2.fillConvexPoly(mask, np.rint(polygon).astype(np.int32), 1.0, lineType=cv2.LINE_AA)
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return np.clip(mask, 0.0, 1.0)
