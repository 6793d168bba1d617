"""`--mask mouth-opening`: the target's mouth opening, moved into the swapped face's mouth.

A decoder trained briefly draws A's mouth nearly shut whatever B does (the demo's model at 300 steps:
the gap between its lips does not follow B's, r = -0.04). Keeping B's opening where B's lips are then
leaves A's half-closed lips around it, in a mouth that sits elsewhere (A's face has its own
proportions). So the swap's lips are found on the generated face (the backend's landmark fitter on
the decoded crop), pushed apart to B's opening relative to the mouth's width (a thin-plate warp that
holds the rest of the face still), and B's opening is moved in by the similarity of the two mouths'
corners. A's lips, mouth width and place stay A's; how far the mouth opens is B's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faceswap.faces.align import eye_to_mouth, transform_points, umeyama
from faceswap.faces.dlib_backend import kps5_from_68
from faceswap.faces.masks import MOUTH_OPENING, landmark_mask

SCHEME = "68"  # the layout whose lips this names (iBUG 68); another scheme keeps B's opening in place
CORNERS = (48, 54)
INNER_CORNERS = (60, 64)
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)  # outer then inner points, left to right
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
INNER_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper and lower inner-lip points facing each other
CHIN = {6: 0.4, 7: 0.7, 8: 0.8, 9: 0.7, 10: 0.4}  # jaw points and how much of the lower lip's move they take
UPPER_SHARE = 0.35  # of a change in opening, the upper lip's part (the jaw carries the rest)
NOSE = 33  # the nose's base: the upper lip rises at most NOSE_ROOM of its distance to it
NOSE_ROOM = 0.5
MAX_OPENING = 1.0  # the moved gap is at most this share of the mouth's width (a yawn), so the warp cannot fold
FIT_SIZE = 192  # the generated crop is enlarged to this before its landmarks are fitted
WARP_GRID = 96  # the warp is solved on a grid of at most this many pixels a side, then enlarged
# what makes a fit on the generated face a face (else B's opening stays where it is): its eye-to-mouth
# distance and mouth width within these factors of the target's, its mouth within MAX_MOUTH_SHIFT of
# the target's eye-to-mouth distance from the target's. Loose on purpose: A's face has its own
# proportions, and a briefly trained decoder draws it frontal and centred whatever B's pose (the demo's
# mouths: 0.43-0.66 of B's smiling width, 0.13-0.54 of the unit away)
FACE_SIZE_RANGE = (0.5, 2.0)
WIDTH_RANGE = (1 / 3, 3.0)
MAX_MOUTH_SHIFT = 1.0

Fitter = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (BGR image, box x0 y0 x1 y1) -> 68 landmarks


@dataclass(frozen=True)
class MouthPlan:
    """Where the generated face's lip points go (crop pixels), and the similarity that carries the
    target's crop onto it so that its opening lands between them."""

    fitted: np.ndarray  # the generated face's landmarks, (68, 2)
    moved: np.ndarray  # the same with the lips (and chin) moved to the target's opening
    target_to_swap: np.ndarray  # 2x3: target crop -> generated crop, by the mouths' corners


def opening(landmarks: np.ndarray) -> float:
    """The gap between the inner lips over the mouth's corner-to-corner width: the mouth's own
    shape, carried from B's mouth to A's whatever their sizes (over the eye-to-mouth distance
    instead, the demo's mouths followed B's less: 0.88 vs 0.91, 0.53 vs 0.62 on two models; docs/training.md)."""
    pts = np.asarray(landmarks, np.float64)
    gap = float(np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_PAIRS]))
    return gap / max(_width(pts), 1e-6)


def _width(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[CORNERS[1]] - pts[CORNERS[0]]))


def plan(fitted: np.ndarray, target: np.ndarray) -> MouthPlan | None:
    """The move that opens the generated face's mouth (landmarks `fitted`) as far as the target's
    (`target`, same crop), or None when `fitted` is not a plausible mouth for this face. The upper
    lip stops short of the nose and the gap at the mouth's width, so the warp does not fold."""
    fitted, target = np.asarray(fitted, np.float64), np.asarray(target, np.float64)
    if not (np.isfinite(fitted).all() and np.isfinite(target).all()):
        return None
    width_a, width_b = _width(fitted), _width(target)
    unit_a, unit_b = (eye_to_mouth(kps5_from_68(points)) for points in (fitted, target))
    shift = np.linalg.norm(fitted[list(CORNERS)].mean(axis=0) - target[list(CORNERS)].mean(axis=0))
    if min(width_b, unit_b) <= 0 or shift > MAX_MOUTH_SHIFT * unit_b:
        return None
    if not (WIDTH_RANGE[0] <= width_a / width_b <= WIDTH_RANGE[1]) or not (
        FACE_SIZE_RANGE[0] <= unit_a / unit_b <= FACE_SIZE_RANGE[1]
    ):
        return None
    axis = (fitted[CORNERS[1]] - fitted[CORNERS[0]]) / max(width_a, 1e-6)
    down = np.array([-axis[1], axis[0]])
    if down @ (fitted[8] - fitted[list(CORNERS)].mean(axis=0)) < 0:
        down = -down  # towards the chin, whichever way the crop is mirrored
    gap_a = opening(fitted) * width_a
    room = NOSE_ROOM * float((fitted[UPPER_LIP[2]] - fitted[NOSE]) @ down) / UPPER_SHARE
    if room <= 0:
        return None  # a lip above the nose is not a mouth
    change = min(opening(target) * width_a - gap_a, MAX_OPENING * width_a - gap_a, room)
    moved = fitted.copy()
    moved[list(UPPER_LIP)] -= down * change * UPPER_SHARE
    moved[list(LOWER_LIP)] += down * change * (1 - UPPER_SHARE)
    for point, share in CHIN.items():
        moved[point] += down * change * (1 - UPPER_SHARE) * share
    corners = list(CORNERS + INNER_CORNERS)
    return MouthPlan(fitted, moved, umeyama(target[corners], moved[corners]))


def thin_plate_map(dst: np.ndarray, src: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap's maps of the thin-plate spline that takes each `dst` point to its `src` point
    (backward: for every output pixel, where to read), solved on a coarse grid and enlarged."""
    import cv2

    grid = min(size, WARP_GRID)
    scale = grid / size

    def coarse(points: np.ndarray) -> np.ndarray:  # pixel centres, as cv2.resize aligns them
        return (np.asarray(points, np.float64) + 0.5) * scale - 0.5

    dst, src = coarse(dst), coarse(src)
    n = len(dst)
    kernel = _tps_kernel(np.linalg.norm(dst[:, None] - dst[None], axis=2))
    affine = np.hstack([np.ones((n, 1)), dst])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel + 1e-6 * np.eye(n)
    system[:n, n:], system[n:, :n] = affine, affine.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = src - dst
    coef = np.linalg.lstsq(system, rhs, rcond=None)[0]
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    shift = _tps_kernel(np.linalg.norm(points[:, None] - dst[None], axis=2)) @ coef[:n]
    shift += coef[n] + points @ coef[n + 1 :]
    shift = (shift / scale).reshape(grid, grid, 2).astype(np.float32)
    if grid != size:
        shift = cv2.resize(shift, (size, size), interpolation=cv2.INTER_LINEAR)
    full_y, full_x = np.mgrid[0:size, 0:size].astype(np.float32)
    return full_x + shift[..., 0], full_y + shift[..., 1]


def _tps_kernel(r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, r * r * np.log(np.maximum(r, 1e-12)), 0.0)


def open_lips(generated: np.ndarray, move: MouthPlan) -> np.ndarray:
    """The generated crop with its lips (and chin) moved as `move` says, everything else held."""
    import cv2

    size = generated.shape[0]
    moving = sorted(set(UPPER_LIP + LOWER_LIP) | set(CHIN))
    fixed = [i for i in range(len(move.fitted)) if i not in set(moving)]
    end, mid = size - 1.0, (size - 1) / 2
    edge = np.array([[0, 0], [mid, 0], [end, 0], [0, mid], [end, mid], [0, end], [mid, end], [end, end]])
    dst = np.vstack([move.moved[moving], move.fitted[fixed], edge])
    src = np.vstack([move.fitted[moving], move.fitted[fixed], edge])
    map_x, map_y = thin_plate_map(dst, src, size)
    return cv2.remap(generated, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def paste_opening(image: np.ndarray, target_crop: np.ndarray, move: MouthPlan, feather: float) -> np.ndarray:
    """The target's opening carried onto the opened lips of `image` (after its colour was matched:
    teeth and the mouth's dark are the target's own); `feather`: its edge (Gaussian sigma, pixels)."""
    import cv2

    size = image.shape[0]
    inside = cv2.warpAffine(
        target_crop, move.target_to_swap, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    hole = landmark_mask(move.moved, SCHEME, kps5_from_68(move.moved), MOUTH_OPENING, (size, size), feather)[..., None]
    mixed = image.astype(np.float32) * (1 - hole) + inside.astype(np.float32) * hole
    return np.clip(np.rint(mixed), 0, 255).astype(image.dtype)


def fit_generated(generated: np.ndarray, face_box: np.ndarray, fitter: Fitter) -> np.ndarray:
    """Landmarks of the generated crop (crop pixels), fitted on it enlarged to FIT_SIZE inside
    `face_box` (the target face's box in crop pixels: where the decoder drew the face)."""
    import cv2

    size = generated.shape[0]
    k = max(1.0, FIT_SIZE / size)
    enlarged = cv2.resize(generated, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC) if k > 1 else generated
    box = (np.asarray(face_box, np.float64) + 0.5) * k - 0.5  # pixel centres, as cv2.resize puts them
    return (np.asarray(fitter(enlarged, box), np.float64) + 0.5) / k - 0.5


def face_box_in_crop(bbox: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A frame box in crop pixels: its centre through the alignment, its sides scaled by it (the
    alignment turns a rolled face upright, so the box turns with it rather than growing round it)."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    centre = transform_points(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]), matrix)[0]
    half = np.array([x1 - x0, y1 - y0]) / 2 * float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))
    return np.array([*(centre - half), *(centre + half)])
