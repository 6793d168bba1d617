"""Landmark masks (full face, lower face, mouth, mouth opening, eyes) for training weights and conversion
blending.

Masks are drawn from the dense landmarks plus the five keypoints, so they work for any landmark
scheme that names its jaw contour and outer-lip points. The blend's erosion and feather live here
too, so training weights exactly the region conversion shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOUTH_OPENING = "mouth-opening"  # between the lips only: a swap that keeps it keeps the target's speech, not its lips
# the landmark regions: what `--mask` chooses from, and `--region` from those a dub can re-voice
REGIONS = ("full", "lower-face", "mouth", MOUTH_OPENING)
# the opening's growth along the mouth's corner line and across it: dlib's inner-lip points close in
# on a wide-open mouth, so the polygon is grown most across the lips (docs/training.md)
OPENING_GROWTH = (1.2, 1.5)
OCCLUSION = "occlusion"  # a trained segmenter keeps what is in front of the face (--mask-model)
# what `--mask` takes: a region, "occlusion" (the full face less its occluders) or REGION+occlusion
MASK_CHOICES = (*REGIONS, OCCLUSION, *(f"{r}+{OCCLUSION}" for r in REGIONS if r != "full"))
OCCLUSION_MARGIN = 0.012  # an occluder is grown by this share of the segmenter's crop before it is kept
OCCLUSION_FEATHER = 0.006  # and its edge softened by this Gaussian sigma (same unit): sharper than the face's
BLEND_ERODE = 0.0  # conversion's default erosion of the mask, as a share of the crop size
BLEND_BLUR = 0.04  # conversion's default feather: the Gaussian sigma as a share of the crop size
REGION_BLUR = 0.03  # a dub's default feather of its mouth or lower-face region (same unit): a region smaller
# than the face, grown onto skin, whose edge stays on that skin
EYE_REGION = (1.3, 0.9)  # an eye region's width and height over the eye's corner-to-corner width
EYE_WIDTH = 0.48  # an eye's corner-to-corner width over the distance between the eye centres


@dataclass(frozen=True)
class LandmarkScheme:
    contour: tuple[int, ...]
    mouth_outer: tuple[int, ...]
    eyes: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # each eye's outline, corners first
    mouth_inner: tuple[int, ...] | None = None  # the inner lips, starting at the left corner


SCHEMES: dict[str, LandmarkScheme] = {
    "68": LandmarkScheme(
        contour=tuple(range(0, 17)),
        mouth_outer=tuple(range(48, 60)),
        eyes=((36, 39, 37, 38, 40, 41), (42, 45, 43, 44, 46, 47)),
        mouth_inner=tuple(range(60, 68)),
    ),
    "106": LandmarkScheme(contour=tuple(range(0, 33)), mouth_outer=tuple(range(52, 72))),
}


def mask_parts(choice: str) -> tuple[str, bool]:
    """(landmark region, whether occluders are kept) of a `--mask` choice; ValueError otherwise."""
    region, _, rest = choice.partition("+")
    if choice == OCCLUSION:
        return "full", True
    if choice not in MASK_CHOICES or (rest and rest != OCCLUSION):
        raise ValueError(f"unknown mask '{choice}' (choose from {', '.join(MASK_CHOICES)})")
    return region, bool(rest)


def occluder_matte(
    visible: np.ndarray, margin: float = OCCLUSION_MARGIN, feather: float = OCCLUSION_FEATHER
) -> np.ndarray:
    """What a segmenter's visible-face probability (in its own crop) says is in front of the face,
    grown by `margin` and softened by `feather` (shares of the crop): float32 in [0, 1], 1 where the
    input must be kept. Grown so that the swap's own feathered edge lies on the face, not on the
    occluder."""
    import cv2

    size = visible.shape[0]
    hidden = (np.asarray(visible) < 0.5).astype(np.float32)
    reach = int(round(margin * size))
    if reach > 0:
        hidden = cv2.dilate(hidden, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    if feather > 0:
        hidden = cv2.GaussianBlur(hidden, (0, 0), max(0.5, feather * size))
    return np.clip(hidden, 0.0, 1.0)


def region_polygon(landmarks: np.ndarray, scheme: str, kps5: np.ndarray, region: str) -> np.ndarray:
    """Convex polygon (K, 2) of a region, in the coordinates the landmarks are given in."""
    import cv2

    if region not in REGIONS:
        raise ValueError(f"unknown mask region '{region}' (choose from {', '.join(REGIONS)})")
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
    elif region == MOUTH_OPENING:
        points = _opening(pts, spec)
    else:
        lips = pts[list(spec.mouth_outer)]
        center = lips.mean(axis=0)
        points = center + (lips - center) * 1.3
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)


def _opening(pts: np.ndarray, spec: LandmarkScheme) -> np.ndarray:
    """The inner lips grown by OPENING_GROWTH along and across the line between the mouth's corners; a
    scheme that names no inner lips (insightface's 106, unverified here) gives its outer lips as they are."""
    if spec.mouth_inner is None:
        return pts[list(spec.mouth_outer)]
    inner = pts[list(spec.mouth_inner)].astype(np.float64)
    centre = inner.mean(axis=0)
    axis = inner[len(inner) // 2] - inner[0]
    axis /= max(float(np.linalg.norm(axis)), 1e-6)
    normal = np.array([-axis[1], axis[0]])
    offsets = inner - centre
    along, across = OPENING_GROWTH
    return (centre + np.outer(offsets @ axis * along, axis) + np.outer(offsets @ normal * across, normal)).astype(
        np.float32
    )


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


def eye_mask(landmarks: np.ndarray | None, scheme: str | None, kps5: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Both eye regions (corners, lids and the skin between them and the brows), as ellipses along
    each eye's axis: from the eye's own outline when the scheme names it, else sized from the
    distance between the eye centres of the five keypoints."""
    import cv2

    mask = np.zeros(shape, dtype=np.float32)
    kps = np.asarray(kps5, dtype=np.float64)
    spec = SCHEMES.get(scheme) if scheme is not None else None
    for side in (0, 1):
        if landmarks is not None and spec is not None and spec.eyes is not None:
            outline = np.asarray(landmarks, np.float64)[list(spec.eyes[side])]
            centre, axis = outline[:2].mean(axis=0), outline[1] - outline[0]  # between the corners
            normal = np.array([-axis[1], axis[0]]) / max(float(np.linalg.norm(axis)), 1e-6)
            opening = float(np.abs((outline - centre) @ normal).max())  # lids from the corner line
        else:
            centre = kps[side]
            axis = (kps[1] - kps[0]) * EYE_WIDTH
            opening = 0.0
        width = float(np.linalg.norm(axis))
        angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
        half_w = width * EYE_REGION[0] / 2
        half_h = max(width * EYE_REGION[1] / 2, 1.5 * opening)  # a turned head narrows the eye, not its lids
        axes = (max(1, int(round(half_w))), max(1, int(round(half_h))))
        cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    return mask


def blend_mask(mask: np.ndarray, erode: float = BLEND_ERODE, blur: float = BLEND_BLUR) -> np.ndarray:
    """What conversion blends with: `mask` eroded by `erode` and feathered by `blur` (shares of the
    crop size)."""
    import cv2

    size = mask.shape[0]
    out = np.asarray(mask, np.float32)
    if erode > 0:
        k = max(1, int(erode * size))
        out = cv2.erode(out, np.ones((k, k), np.uint8))
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), max(0.5, blur * size))
    return np.clip(out, 0.0, 1.0)


def training_weight(hull: np.ndarray, erode: float = BLEND_ERODE, blur: float = BLEND_BLUR) -> np.ndarray:
    """Where the loss trains the face: 1 over the whole hull and, outside it, twice the blend mask
    (capped at 1), so every pixel conversion paints, the feathered ring included, is trained at
    least as strongly as it is shown (SAEHD's blurred-and-clipped mask, with conversion's feather)."""
    return np.maximum(np.asarray(hull, np.float32), np.clip(2.0 * blend_mask(hull, erode, blur), 0.0, 1.0))
