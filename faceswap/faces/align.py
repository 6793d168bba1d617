"""Similarity alignment to a canonical whole-face template, and its inverse for paste-back."""

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
TEMPLATE_NAME = "whole-face-v1"
MIN_SIZE, MAX_SIZE = 64, 1024


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


def alignment_matrix(kps5: np.ndarray, size: int) -> np.ndarray:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"alignment size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    return umeyama(kps5, WHOLE_FACE_TEMPLATE * size)


def align_face(image: np.ndarray, kps5: np.ndarray, size: int) -> AlignedFace:
    import cv2

    matrix = alignment_matrix(kps5, size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return AlignedFace(crop=crop, matrix=matrix)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def paste_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend an aligned crop into the frame through the inverse of `matrix`; mask is float in [0, 1]."""
    import cv2

    h, w = frame.shape[:2]
    inverse = invert_affine(matrix)
    warped = cv2.warpAffine(crop, inverse, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask.astype(np.float32), inverse, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    blended = frame.astype(np.float32) * (1.0 - alpha) + warped.astype(np.float32) * alpha
    if np.issubdtype(frame.dtype, np.integer):
        info = np.iinfo(frame.dtype)
        blended = np.clip(np.rint(blended), info.min, info.max)
    return blended.astype(frame.dtype)
