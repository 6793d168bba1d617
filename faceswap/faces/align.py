"""Similarity alignment to a canonical face template, crops at any size, and paste-back.

An `Alignment` is a face type and a point set; its name ("whole-face-eyes-nose") is recorded in a
faceset's header and in the model trained on it, and conversion crops the same way.

Face types (the crop's framing):
  whole  forehead to chin, cheeks included: eyes at 40% height, mouth at 65% (the default)
  full   SAEHD's default framing: eyebrows to chin, the inner face 1.5x larger at the same resolution
  lower  the mouth and jaw for dubbing (`faceswap dub`): nose tip to below an opened chin at twice
         whole-face's scale, so a model spends its pixels on the mouth; usually cut from whole-face
         crops at training time (`--data.face_type lower`, `reframe_matrix`)
  mouth  the lips for dubbing their region only: 2.5x whole-face's scale, centred below the mouth

Points: "eyes-nose" fits 21 eye and nose landmarks where the scheme names them (dlib's 68 points;
else the five keypoints), leaving the mouth out so an opening or smiling mouth does not move, scale
and tilt the crop; "five" fits the five keypoints, mouth corners included (the only alignment
before, "whole-face-v1" in older facesets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ArcFace's 112 px five-point template, rescaled about the eyes so the crop holds the whole face
# (forehead to chin, cheeks included): eyes at 40% height, mouth at 65%, eye distance ~22% of the width.
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
_EYE_Y, _MOUTH_Y = 0.40, 0.65


def _whole_face_template() -> np.ndarray:
    unit = _ARCFACE_112 / 112.0
    eye_y = unit[:2, 1].mean()
    mouth_y = unit[3:, 1].mean()
    scale = (_MOUTH_Y - _EYE_Y) / (mouth_y - eye_y)
    out = np.empty_like(unit)
    out[:, 0] = 0.5 + (unit[:, 0] - 0.5) * scale
    out[:, 1] = _EYE_Y + (unit[:, 1] - eye_y) * scale
    return out


WHOLE_FACE_TEMPLATE = _whole_face_template()  # (5, 2) in [0, 1] crop coordinates
LEGACY_TEMPLATE = "whole-face-v1"  # what facesets and models from before alignment choices hold: five points
MIN_SIZE, MAX_SIZE = 64, 1024
MAX_SUPERSAMPLE = 4  # a crop shrinking the image more than this is slightly aliased

# dlib/iBUG 68: nose bridge and nostrils (27-35), both eyes (36-47), where they sit in a whole-face
# crop: the mean of the eight faces installed packages ship after five-point alignment, mirrored
# about the centre line (tests/test_align_and_masks.py recomputes it).
_RIGID_68 = tuple(range(27, 48))
_RIGID_68_TEMPLATE = np.array(
    [
        [0.5, 0.4036], [0.5, 0.4494], [0.5, 0.4958], [0.5, 0.5424],
        [0.4498, 0.5643], [0.4739, 0.5761], [0.5, 0.5843], [0.5261, 0.5761], [0.5502, 0.5643],
        [0.3567, 0.4073], [0.3827, 0.3971], [0.4116, 0.3974], [0.4382, 0.4123], [0.41, 0.4184], [0.3799, 0.4178],
        [0.5618, 0.4123], [0.5884, 0.3974], [0.6173, 0.3971], [0.6433, 0.4073], [0.6201, 0.4178], [0.59, 0.4184],
    ]
)  # fmt: skip
RIGID_POINTS: dict[str, tuple[tuple[int, ...], np.ndarray]] = {"68": (_RIGID_68, _RIGID_68_TEMPLATE)}


@dataclass(frozen=True)
class FaceType:
    """A framing: whole-face coordinates p land at anchor + (p - centre) * zoom in the crop."""

    name: str
    zoom: float = 1.0
    centre: tuple[float, float] = (0.5, 0.5)
    anchor: tuple[float, float] = (0.5, 0.5)

    def place(self, unit_points: np.ndarray) -> np.ndarray:
        return np.asarray(self.anchor) + (np.asarray(unit_points, np.float64) - np.asarray(self.centre)) * self.zoom

    def unplace(self, crop_points: np.ndarray) -> np.ndarray:
        """Crop (unit) coordinates back to whole-face coordinates."""
        return np.asarray(self.centre) + (np.asarray(crop_points, np.float64) - np.asarray(self.anchor)) / self.zoom


def reframe_matrix(source: FaceType, source_size: int, target: FaceType, target_size: int) -> np.ndarray:
    """Source crop -> target crop (2x3): the same face in another framing, cut from a crop already
    made, landing exactly where a crop made from the frame in the target framing would put it."""
    scale = target_size * target.zoom / (source_size * source.zoom)
    offset = target_size * target.place(source.unplace(np.zeros(2)))
    return np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])


def reframe_fits(source: FaceType, target: FaceType) -> bool:
    """Every pixel of the target framing lies inside the source framing's crop."""
    corners = source.place(target.unplace(np.array([[0.0, 0.0], [1.0, 1.0]])))
    return bool(corners.min() >= -1e-6 and corners.max() <= 1 + 1e-6)


# full: the span from the eyebrows (0.33 in a whole-face crop) to the chin (0.81) scaled 1.5x and
# centred a little low, so an opening mouth keeps the chin inside (brows ~0.18, chin ~0.91)
FACE_TYPES: dict[str, FaceType] = {
    "whole": FaceType("whole"),
    "full": FaceType("full", zoom=1.5, centre=(0.5, 0.5705), anchor=(0.5, 0.54)),
    # lower: whole-face x 0.25-0.75, y 0.43-0.93 (the nose tip to below a wide-open chin)
    "lower": FaceType("lower", zoom=2.0, centre=(0.5, 0.68), anchor=(0.5, 0.5)),
    # mouth: whole-face x 0.30-0.70, y 0.50-0.90: the lips with room for a head turned 20 degrees and
    # a wide-open jaw, 1.25x lower-face's pixels across the lips at the same resolution
    "mouth": FaceType("mouth", zoom=2.5, centre=(0.5, 0.70), anchor=(0.5, 0.5)),
}
REGION_FRAMINGS = ("lower", "mouth")  # framings for a region of the face: conversion's full swap cannot use them


# the points a face is fitted on: "eyes-nose" where the landmark scheme names them (else the five
# keypoints), or always the five keypoints
ALIGN_POINTS = ("eyes-nose", "five")
DEFAULT_POINTS = "eyes-nose"


@dataclass(frozen=True)
class Alignment:
    """How a crop is made: its framing and the points it is fitted on. Its `name` is what a
    faceset header (`template`) and a model (`alignment` hyperparameter) record, so conversion
    crops exactly as the model's training data was cropped."""

    face_type: str = "whole"
    points: str = DEFAULT_POINTS

    def __post_init__(self) -> None:
        if self.face_type not in FACE_TYPES:
            raise ValueError(f"face type must be one of {', '.join(FACE_TYPES)}")
        if self.points not in ALIGN_POINTS:
            raise ValueError(f"alignment points must be one of {', '.join(ALIGN_POINTS)}")

    @property
    def name(self) -> str:
        return f"{self.face_type}-face-{self.points}"

    @classmethod
    def parse(cls, name: str) -> Alignment:
        """From a recorded name; the five-point whole-face template of older facesets included."""
        if name == LEGACY_TEMPLATE:
            return cls("whole", "five")
        face_type, sep, points = name.partition("-face-")
        if not sep:
            raise ValueError(f"unknown alignment template '{name}'")
        return cls(face_type, points)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) src -> dst, as 2x3."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / n
    scale = (s * d).sum() / src_var
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


@dataclass(frozen=True)
class AlignedFace:
    crop: np.ndarray  # (size, size, C)
    matrix: np.ndarray  # 2x3, image -> crop

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])

    @property
    def inverse(self) -> np.ndarray:
        return invert_affine(self.matrix)


def alignment_points(
    kps5: np.ndarray, landmarks: np.ndarray | None = None, scheme: str | None = None, points: str = DEFAULT_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """(points in the image, where they go in a unit whole-face crop): the eyes and nose when asked
    for and the landmark scheme names them, else the five keypoints."""
    if points == "eyes-nose" and landmarks is not None and scheme in RIGID_POINTS:
        indices, template = RIGID_POINTS[scheme]
        return np.asarray(landmarks, np.float64)[list(indices)], template
    return np.asarray(kps5, np.float64), WHOLE_FACE_TEMPLATE


def alignment_matrix(
    kps5: np.ndarray,
    size: int,
    alignment: Alignment = Alignment(),
    landmarks: np.ndarray | None = None,
    scheme: str | None = None,
) -> np.ndarray:
    """Image -> crop (2x3) for a `size` px crop made as `alignment` says; on the five keypoints
    unless dense landmarks of a known scheme are given."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"alignment size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    points, template = alignment_points(kps5, landmarks, scheme, alignment.points)
    return umeyama(points, FACE_TYPES[alignment.face_type].place(template) * size)


def track_alignment(face, smoothed_kps5: np.ndarray, size: int, alignment: Alignment = Alignment()) -> np.ndarray:
    """Alignment of a detected face whose keypoints were smoothed along its track: its dense
    landmarks follow the smoothing (a similarity from the detected to the smoothed eyes and nose),
    then the face is aligned as at extraction."""
    landmarks = face.landmarks
    if landmarks is not None:
        follow = umeyama(np.asarray(face.kps5, np.float64)[:3], np.asarray(smoothed_kps5, np.float64)[:3])
        landmarks = transform_points(landmarks, follow)
    return alignment_matrix(smoothed_kps5, size, alignment, landmarks, face.landmark_scheme)


def crop_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The `size` px crop that `matrix` (image -> crop) describes, the one resampling every crop
    goes through (extraction, training at another size, conversion), so the model sees the same
    pixels in training and in conversion.

    Shrinking is supersampled (cubic at up to 4x the size, then area-averaged) so it does not alias;
    the supersampled matrix is offset so that pixel centres land exactly where `matrix` puts them."""
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))
    factor = int(np.clip(np.ceil(1.0 / max(scale, 1e-6) - 1e-3), 1, MAX_SUPERSAMPLE))
    if factor == 1:
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    big = np.asarray(matrix, np.float64) * factor
    big[:, 2] += (factor - 1) / 2.0
    fine = cv2.warpAffine(image, big, (size * factor,) * 2, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(fine, (size, size), interpolation=cv2.INTER_AREA)


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """An aligned crop at another size, resampled as conversion crops are (see crop_face); its
    landmarks scale by size / crop size exactly."""
    if crop.shape[0] == size:
        return crop
    scale = size / crop.shape[0]
    return crop_face(crop, np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]), size)


def align_face(
    image: np.ndarray,
    kps5: np.ndarray,
    size: int,
    alignment: Alignment = Alignment(),
    landmarks: np.ndarray | None = None,
    scheme: str | None = None,
) -> AlignedFace:
    matrix = alignment_matrix(kps5, size, alignment, landmarks, scheme)
    return AlignedFace(crop=crop_face(image, matrix, size), matrix=matrix)


def eye_to_mouth(kps5: np.ndarray) -> float:
    """From between the eyes to between the mouth's corners: the face's unit of length, which a
    turn of the head shortens less than it does the face's width."""
    kps = np.asarray(kps5, np.float64)
    return float(np.linalg.norm(kps[:2].mean(axis=0) - kps[3:].mean(axis=0)))


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def crop_to_frame(crop: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An aligned crop warped back into frame coordinates (`matrix`: frame -> crop)."""
    import cv2

    h, w = shape[:2]
    return cv2.warpAffine(crop, invert_affine(matrix), (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def mask_to_frame(mask: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A crop's mask warped back into frame coordinates, 0 outside the crop, clipped to [0, 1]."""
    import cv2

    h, w = shape[:2]
    alpha = cv2.warpAffine(mask.astype(np.float32), invert_affine(matrix), (w, h), flags=cv2.INTER_LINEAR)
    return np.clip(alpha, 0.0, 1.0)


def paste_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend an aligned crop into the frame through the inverse of `matrix`; mask is float in [0, 1]."""
    warped = crop_to_frame(crop, matrix, frame.shape)
    alpha = mask_to_frame(mask, matrix, frame.shape)[..., None]
    blended = frame.astype(np.float32) * (1.0 - alpha) + warped.astype(np.float32) * alpha
    if np.issubdtype(frame.dtype, np.integer):
        info = np.iinfo(frame.dtype)
        blended = np.clip(np.rint(blended), info.min, info.max)
    return blended.astype(frame.dtype)
