"""Animate a synthetic identity into a clip with known ground truth.

Head motion (yaw, roll, scale, translation), mouth opening, blinks and lighting are driven by smooth
curves; every frame's values go to truth.json, so expression preservation can be measured exactly.
Yaw is approximated in 2D by shifting landmarks by their depth in a generic face; the mouth opens by
moving the lower lip and chin, and the gap between the inner lips is painted dark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceswap.demo.faces import CANVAS, Identity
from faceswap.demo.morph import warp
from faceswap.faces.dlib_backend import eyes_and_lips, kps5_from_68
from faceswap.faces.masks import landmark_mask

# generic depth (0 = cheek plane, 1 = nose tip) of the 68 iBUG points, for the 2D yaw approximation
_DEPTH = np.zeros(68, dtype=np.float32)
_DEPTH[27:31] = [0.55, 0.7, 0.85, 1.0]
_DEPTH[31:36] = [0.7, 0.8, 0.85, 0.8, 0.7]
_DEPTH[17:27] = 0.35
_DEPTH[36:48] = 0.3
_DEPTH[48:68] = 0.5
_DEPTH[[0, 1, 15, 16]] = -0.3
_DEPTH[[2, 3, 13, 14]] = -0.1
_DEPTH[[6, 7, 8, 9, 10]] = 0.35
_LOWER_LIP = [55, 56, 57, 58, 59, 64, 65, 66, 67]
_CHIN = [5, 6, 7, 8, 9, 10, 11]
_UPPER_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}
_INNER_LIPS = list(range(60, 68))


@dataclass(frozen=True)
class Pose:
    yaw: float  # degrees
    roll: float  # degrees
    scale: float  # face width as a share of the frame height
    cx: float  # face centre, pixels
    cy: float
    mouth: float  # 0 closed .. 1 wide open
    blink: float  # 0 open .. 1 closed
    light: float  # brightness gain


def deform(identity: Identity, pose: Pose) -> np.ndarray:
    """The identity's 68 landmarks (canvas coordinates) under yaw, mouth and blink."""
    pts = identity.landmarks.copy()
    eyes, lips = eyes_and_lips(pts)
    drop = pose.mouth * 0.38 * float(np.linalg.norm(eyes - lips))
    pts[_LOWER_LIP, 1] += drop
    pts[_CHIN, 1] += drop * 0.6
    for upper, lower in _UPPER_LIDS.items():
        pts[upper] += (pts[lower] - pts[upper]) * pose.blink * 0.9
    centre_x = pts[:, 0].mean()
    yaw = np.radians(pose.yaw)
    pts[:, 0] = centre_x + (pts[:, 0] - centre_x) * np.cos(yaw) + _DEPTH * np.sin(yaw) * 0.28 * CANVAS
    return pts


def render_face(
    identity: Identity, pose: Pose, hair: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head texture (face over hair), its soft alpha and the landmarks, in canvas coordinates."""
    import cv2

    pts = deform(identity, pose)
    target = np.vstack([pts, identity.points[68:]])
    face = warp(identity.texture, identity.points, target, identity.triangles)
    if pose.mouth > 0.05:
        inner = np.rint(pts[_INNER_LIPS]).astype(np.int32)
        cv2.fillPoly(face, [cv2.convexHull(inner)], (25, 20, 45), lineType=cv2.LINE_AA)
    face_alpha = landmark_mask(pts, "68", kps5_from_68(pts), "full", (CANVAS, CANVAS), feather=CANVAS / 40)[..., None]
    texture = face * face_alpha + np.array(hair, np.float32) * (1 - face_alpha)
    head = np.zeros((CANVAS, CANVAS), np.float32)
    centre = (int(pts[:, 0].mean()), int(pts[:, 1].mean() - 0.07 * CANVAS))
    axes = (int(0.36 * CANVAS * max(np.cos(np.radians(pose.yaw)), 0.7)), int(0.42 * CANVAS))
    cv2.ellipse(head, centre, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    head = cv2.GaussianBlur(head, (0, 0), CANVAS / 60)
    return texture, np.maximum(face_alpha[..., 0], head), pts


def composite(frame: np.ndarray, identity: Identity, pose: Pose, hair: tuple[int, int, int]) -> dict:
    """Draw the identity into the float frame (in place); returns its box and landmarks in frame pixels."""
    import cv2

    texture, alpha, pts = render_face(identity, pose, hair)
    scale = pose.scale * frame.shape[0] / (0.55 * CANVAS)
    matrix = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), pose.roll, scale)
    matrix[:, 2] += np.array([pose.cx, pose.cy]) - np.array([CANVAS / 2, CANVAS / 2])
    h, w = frame.shape[:2]
    warped = cv2.warpAffine(texture, matrix, (w, h), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    frame *= 1 - a
    frame += warped * a
    frame_pts = pts @ matrix[:, :2].T + matrix[:, 2]
    x1, y1 = frame_pts.min(0)
    x2, y2 = frame_pts.max(0)
    return {"box": [round(float(v), 1) for v in (x1, y1, x2, y2)], "landmarks": frame_pts}


def backdrop(width: int, height: int, seed: int) -> np.ndarray:
    """A soft studio backdrop: gradient, blobs and grain; generated, no real pixels."""
    import cv2

    rng = np.random.default_rng(seed)
    base = np.array(rng.uniform(60, 160, 3), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = base + 40 * (xx / width - 0.5)[..., None] * np.array(rng.uniform(-1, 1, 3), np.float32)
    for _ in range(6):
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        colour = tuple(float(c) for c in rng.uniform(40, 200, 3))
        cv2.circle(frame, centre, int(rng.uniform(30, 120)), colour, -1, cv2.LINE_AA)
    frame = cv2.GaussianBlur(frame, (0, 0), 12)
    frame += rng.normal(0, 3, frame.shape).astype(np.float32)
    return frame
