"""Occluders for the demo: a hand-like shape or a microphone passing in front of part of a face.

Each is one outline polygon (the union of its parts: palm and fingers; ball and handle), placed
every frame relative to the face it covers (in units of the face's eye-to-mouth distance) and
filled with its own shading and detail. The polygon, in frame pixels, is the occluder's true mask
in the clip's truth file; the face's own true outline is its landmark hull, so the visible face is
that hull less the occluder.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from faceswap.faces.dlib_backend import eyes_and_lips

OCCLUDERS = ("hand", "microphone")
LOCAL_SCALE = 64.0  # local outlines are drawn at this many pixels per unit, then traced


@dataclass(frozen=True)
class Placement:
    centre: tuple[float, float]  # where the occluder's local origin lands, frame pixels
    angle: float  # degrees, counter-clockwise on screen
    unit: float  # frame pixels per local unit


def eye_mouth_units(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """(mouth centre, eye-to-mouth distance) of 68 landmarks in frame pixels."""
    eyes, mouth = eyes_and_lips(landmarks)
    return mouth, float(np.linalg.norm(eyes - mouth))


def placement(kind: str, landmarks: np.ndarray, t: float) -> Placement:
    """Where the occluder is at time `t`: the hand sweeps across the lower face and back every 3.6 s
    (at either end only its fingertips reach the face's edge); the microphone bobs in front of the
    mouth and chin."""
    mouth, unit = eye_mouth_units(landmarks)
    if kind == "hand":
        sweep = np.cos(2 * np.pi * t / 3.6)
        lift = 0.25 + 0.45 * np.sin(2 * np.pi * t / 5.3)
        centre = mouth + unit * np.array([2.7 * sweep, lift])
        return Placement((float(centre[0]), float(centre[1])), float(14.0 * np.sin(2 * np.pi * t / 4.1)), unit)
    if kind == "microphone":
        bob = np.array([0.35 * np.sin(2 * np.pi * t / 2.9), 0.6 + 0.3 * np.sin(2 * np.pi * t / 3.7)])
        centre = mouth + unit * bob
        return Placement((float(centre[0]), float(centre[1])), float(-20.0 + 8.0 * np.sin(2 * np.pi * t / 4.7)), unit)
    raise ValueError(f"unknown occluder '{kind}' (choose from {', '.join(OCCLUDERS)})")


@cache
def outline(kind: str) -> np.ndarray:
    """The occluder's outline (K, 2) in local units, origin at its centre of action, y down."""
    import cv2

    side = int(LOCAL_SCALE * 8)
    canvas = np.zeros((side, side), np.uint8)
    origin = np.array([side / 2, side / 2])

    def at(x: float, y: float) -> tuple[int, int]:
        p = origin + LOCAL_SCALE * np.array([x, y])
        return int(round(p[0])), int(round(p[1]))

    def capsule(a: tuple[float, float], b: tuple[float, float], width: float) -> None:
        cv2.line(canvas, at(*a), at(*b), 255, int(round(width * LOCAL_SCALE)), cv2.LINE_8)
        for point in (a, b):
            cv2.circle(canvas, at(*point), int(round(width * LOCAL_SCALE / 2)), 255, -1)

    if kind == "hand":  # palm with four fingers up and a thumb to the left, about 1.3 x 2.3 units
        cv2.ellipse(canvas, at(0.0, 0.35), (int(0.62 * LOCAL_SCALE), int(0.72 * LOCAL_SCALE)), 0, 0, 360, 255, -1)
        for x, top in ((-0.45, -1.05), (-0.15, -1.3), (0.15, -1.25), (0.43, -0.95)):
            capsule((x, 0.0), (x * 1.12, top), 0.26)
        capsule((-0.5, 0.55), (-1.05, -0.05), 0.3)
    elif kind == "microphone":  # a ball head and a handle reaching down-right out of the frame
        cv2.circle(canvas, at(0.0, 0.0), int(0.5 * LOCAL_SCALE), 255, -1)
        capsule((0.0, 0.3), (0.45, 3.8), 0.32)
    else:
        raise ValueError(f"unknown occluder '{kind}' (choose from {', '.join(OCCLUDERS)})")
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    largest = max(contours, key=cv2.contourArea)
    traced = cv2.approxPolyDP(largest, 0.6, True).reshape(-1, 2).astype(np.float64)
    return (traced - origin) / LOCAL_SCALE


def to_frame(points: np.ndarray, where: Placement) -> np.ndarray:
    theta = np.radians(where.angle)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    return points @ rotation.T * where.unit + np.asarray(where.centre)


def occluder_polygon(kind: str, landmarks: np.ndarray, t: float) -> np.ndarray:
    """The occluder's outline in frame pixels (pixel centres at whole numbers) at time `t`."""
    return to_frame(outline(kind), placement(kind, landmarks, t))


def draw_occluder(frame: np.ndarray, kind: str, landmarks: np.ndarray, t: float) -> np.ndarray:
    """Paint the occluder into the float frame (in place); returns its outline in frame pixels."""
    import cv2

    where = placement(kind, landmarks, t)
    polygon = to_frame(outline(kind), where)
    h, w = frame.shape[:2]
    cover = np.zeros((h, w), np.float32)
    cv2.fillPoly(cover, [np.rint(polygon * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    paint = _surface(kind, where, (h, w))
    alpha = cover[..., None]
    frame *= 1 - alpha
    frame += paint * alpha
    return polygon


def _surface(kind: str, where: Placement, shape: tuple[int, int]) -> np.ndarray:
    """The occluder's colour over the frame: shading along its own axis and its details."""
    import cv2

    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.radians(where.angle)
    across = ((xx - where.centre[0]) * np.cos(theta) - (yy - where.centre[1]) * np.sin(theta)) / where.unit
    if kind == "hand":
        base = np.array([105.0, 138.0, 186.0], np.float32)  # BGR, a warm skin tone
        shade = np.clip(1.05 - 0.18 * across, 0.75, 1.2)[..., None]
        surface = base * shade
        creases = np.zeros((h, w), np.float32)
        for x in (-0.3, 0.0, 0.29):
            a = to_frame(np.array([[x, -0.05], [x * 1.1, -0.9]]), where)
            cv2.line(creases, tuple(np.rint(a[0]).astype(int)), tuple(np.rint(a[1]).astype(int)), 1.0, 2, cv2.LINE_AA)
        return surface * (1 - 0.35 * creases[..., None])
    head = np.hypot(xx - where.centre[0], yy - where.centre[1]) / where.unit < 0.5
    mesh = ((np.floor(xx / 4) + np.floor(yy / 4)) % 2).astype(np.float32)
    metal = np.array([62.0, 62.0, 68.0], np.float32) * (0.85 + 0.3 * mesh)[..., None]
    handle = np.array([34.0, 32.0, 36.0], np.float32) * np.clip(1.1 - 0.4 * across, 0.7, 1.4)[..., None]
    return np.where(head[..., None], metal, handle)
