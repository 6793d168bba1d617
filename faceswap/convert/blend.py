"""Putting the swapped face back into the frame. One function a mode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from faceswap.faces.align import crop_to_frame, mask_to_frame, paste_back

Blend = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def feather(frame: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return paste_back(frame, face, matrix, mask)


def seamless(frame: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson blending (cv2.seamlessClone) inside the mask; falls back to feathering at the border."""
    import cv2

    h, w = frame.shape[:2]
    warped = crop_to_frame(face, matrix, frame.shape)
    alpha = mask_to_frame(mask, matrix, frame.shape)
    binary = (alpha > 0.5).astype(np.uint8) * 255
    ys, xs = np.nonzero(binary)
    if len(xs) < 16 or xs.min() <= 1 or ys.min() <= 1 or xs.max() >= w - 2 or ys.max() >= h - 2:
        return paste_back(frame, face, matrix, mask)
    center = (int((xs.min() + xs.max()) / 2), int((ys.min() + ys.max()) / 2))
    cloned = cv2.seamlessClone(warped, frame, binary, center, cv2.NORMAL_CLONE)
    soft = np.clip(alpha, 0, 1)[..., None]
    return np.clip(cloned * soft + frame * (1 - soft), 0, 255).astype(frame.dtype)


MODES: dict[str, Blend] = {"feather": feather, "seamless": seamless}
