"""Piecewise-affine warps over a Delaunay triangulation of landmarks: morphing and animating faces."""

from __future__ import annotations

import numpy as np


def border_points(size: int) -> np.ndarray:
    s = size - 1
    h = s / 2
    return np.array([[0, 0], [h, 0], [s, 0], [s, h], [s, s], [h, s], [0, s], [0, h]], dtype=np.float32)


def triangulate(points: np.ndarray, size: int) -> np.ndarray:
    """Delaunay triangles (K, 3) as indices into `points`."""
    import cv2

    subdiv = cv2.Subdiv2D((0, 0, size, size))
    clipped = np.clip(points, 0, size - 1)
    for x, y in clipped:
        subdiv.insert((float(x), float(y)))
    triangles = []
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):
        idx = [int(np.argmin(((clipped - p) ** 2).sum(axis=1))) for p in tri]
        if len(set(idx)) == 3:
            triangles.append(idx)
    return np.array(triangles, dtype=np.int32)


def warp(image: np.ndarray, src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Move `image` so that points `src` land on `dst` (same image size), triangle by triangle."""
    import cv2

    h, w = image.shape[:2]
    out = np.zeros_like(image, dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    for tri in triangles:
        s, d = src[tri].astype(np.float32), dst[tri].astype(np.float32)
        x, y, bw, bh = cv2.boundingRect(d)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + bw, w), min(y + bh, h)
        if x1 <= x0 or y1 <= y0:
            continue
        matrix = cv2.getAffineTransform(s, d - np.float32([x0, y0]))
        patch = cv2.warpAffine(image, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillConvexPoly(mask, np.rint(d - [x0, y0]).astype(np.int32), 1.0, lineType=cv2.LINE_8)
        region = (slice(y0, y1), slice(x0, x1))
        fresh = mask * (weight[region] == 0)
        out[region] += patch.astype(np.float32) * (fresh[..., None] if image.ndim == 3 else fresh)
        weight[region] += fresh
    holes = weight == 0
    if holes.any():
        out[holes] = image[holes]
    return out
