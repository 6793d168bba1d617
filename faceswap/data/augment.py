"""Training augmentation: albumentations for shared geometry and colour, the classic deepfakes random
warp for the input only, and Reinhard colour transfer of subject A toward a subject B face."""

from __future__ import annotations

import numpy as np

WARP_CELLS = (2, 4, 8)  # cells across the crop; one is drawn per sample (coarse to fine distortion)
WARP_STRENGTH = 0.24  # control-point jitter, in cell widths (DeepFaceLab's and deepfakes/faceswap's scale)
MIN_MASKED_PIXELS = 16  # fewer pixels inside a mask than this: the statistics use the whole crop


def warp_maps(size: int, rng: np.random.Generator, strength: float = WARP_STRENGTH, cells: int | None = None):
    """Remap coordinates (map_x, map_y) of a random grid warp of a `size` px square.

    Control points sit on the cell corners, pixel-centre convention, the frame's own points fixed;
    the interior ones are jittered by `strength` cell widths. The grid is padded by one cell and
    resized linearly, then half a cell is cropped back on each side, so every pixel is interpolated
    between real control points (no clamped border band) and zero jitter gives back each pixel's
    own coordinate exactly."""
    import cv2

    cells = int(rng.choice(WARP_CELLS)) if cells is None else cells
    cell = size / cells
    if cell != int(cell) or int(cell) % 2:
        raise ValueError(f"a {size} px crop cannot be split into {cells} cells of an even pixel width")
    cell = int(cell)
    half = cell // 2
    points = np.arange(cells + 1, dtype=np.float64) * cell - 0.5  # cell corners, pixel-centre coordinates
    maps = []
    for axis in (1, 0):
        grid = np.broadcast_to(points[None, :] if axis == 1 else points[:, None], (cells + 1, cells + 1)).copy()
        grid[1:-1, 1:-1] += rng.normal(0.0, strength * cell, (cells - 1, cells - 1))
        dense = cv2.resize(grid.astype(np.float32), (size + cell, size + cell), interpolation=cv2.INTER_LINEAR)
        maps.append(np.ascontiguousarray(dense[half : half + size, half : half + size]))
    return maps[0], maps[1]


def random_warp(
    image: np.ndarray, rng: np.random.Generator, strength: float = WARP_STRENGTH, cells: int | None = None
) -> np.ndarray:
    """Jitter a coarse grid of control points and remap: the input changes, the target does not, so
    the autoencoder must learn the face rather than copy pixels. `strength` 0 returns `image`."""
    import cv2

    map_x, map_y = warp_maps(image.shape[0], rng, strength, cells)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _masked_pixels(lab: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    flat = lab.reshape(-1, 3)
    if mask is None:
        return flat
    chosen = flat[mask.reshape(-1) > 0.5]
    return chosen if len(chosen) >= MIN_MASKED_PIXELS else flat


def reinhard(
    source: np.ndarray,
    target: np.ndarray,
    source_mask: np.ndarray | None = None,
    target_mask: np.ndarray | None = None,
) -> np.ndarray:
    """RCT: give `source` the mean and spread of each LAB channel that `target` has, each measured
    inside its own face mask. With one mask for both this is exactly convert's `rct` (the swapped face
    toward the target frame's crop), so training colours A the way conversion will."""
    import cv2

    src = cv2.cvtColor(source, cv2.COLOR_BGR2LAB).astype(np.float32)
    s = _masked_pixels(src, source_mask)
    t = _masked_pixels(cv2.cvtColor(target, cv2.COLOR_BGR2LAB).astype(np.float32), target_mask)
    out = (src - s.mean(0)) / (s.std(0) + 1e-3) * t.std(0) + t.mean(0)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def shared_pipeline():
    """Applied identically to input, target and masks."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.95, 1.05), rotate=(-6, 6), translate_percent=(-0.03, 0.03), border_mode=2, p=0.8),
            A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.02, p=0.5),
        ],
        additional_targets={"mask_full": "mask", "mask_weight": "mask", "mask_priority": "mask"},
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
