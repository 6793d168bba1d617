"""Training augmentation: albumentations for shared geometry and colour, the classic deepfakes random
warp for the input only, and Reinhard colour transfer of subject A toward subject B's statistics."""

from __future__ import annotations

import numpy as np


def random_warp(image: np.ndarray, rng: np.random.Generator, strength: float = 0.04, grid: int = 5) -> np.ndarray:
    """Jitter a coarse grid of control points and remap: the input changes, the target does not, so
    the autoencoder must learn the face rather than copy pixels."""
    import cv2

    h, w = image.shape[:2]
    base = np.linspace(0, 1, grid)
    bx, by = np.meshgrid(base, base)
    interior = np.zeros_like(bx, dtype=bool)
    interior[1:-1, 1:-1] = True  # the frame border stays put
    gx = bx + rng.normal(0, strength, bx.shape) * interior
    gy = by + rng.normal(0, strength, by.shape) * interior
    map_x = cv2.resize((gx * (w - 1)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    map_y = cv2.resize((gy * (h - 1)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def lab_stats(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32).reshape(-1, 3)
    if mask is not None:
        lab = lab[mask.reshape(-1) > 0.5] if (mask > 0.5).any() else lab
    return lab.mean(axis=0), lab.std(axis=0) + 1e-3


def reinhard_transfer(image: np.ndarray, target_mean: np.ndarray, target_std: np.ndarray, mask=None) -> np.ndarray:
    """RCT: match the mean and spread of each LAB channel to the target's."""
    import cv2

    mean, std = lab_stats(image, mask)
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab = (lab - mean) / std * target_std + target_mean
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def shared_pipeline():
    """Applied identically to input, target and masks."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.95, 1.05), rotate=(-6, 6), translate_percent=(-0.03, 0.03), border_mode=2, p=0.8),
            A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.02, p=0.5),
        ],
        additional_targets={"mask_full": "mask", "mask_priority": "mask"},
    )


def input_pipeline():
    """Degradations of the input only: the model learns to output clean faces."""
    import albumentations as A

    return A.Compose(
        [
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))], p=0.15),
            A.ImageCompression(quality_range=(60, 95), p=0.2),
        ]
    )
