"""Training augmentation: the random warp distorts only by its jitter; colour transfer measures what
conversion measures."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.convert.colour import rct
from faceswap.data.augment import random_warp, reinhard, warp_maps
from faceswap.data.datamodule import FaceSamples, PairDataset


@pytest.mark.parametrize("size", [64, 128, 256])
def test_warp_at_zero_jitter_is_the_identity(size):
    image = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    for cells in (2, 4, 8, None):
        warped = random_warp(image, np.random.default_rng(1), strength=0.0, cells=cells)
        assert np.array_equal(warped, image), f"{size} px, {cells} cells"
    xs, ys = np.meshgrid(np.arange(size), np.arange(size))
    map_x, map_y = warp_maps(size, np.random.default_rng(2), strength=0.0, cells=4)
    assert np.abs(map_x - xs).max() < 1e-3 and np.abs(map_y - ys).max() < 1e-3


def test_warp_keeps_the_face_size_on_average():
    """The jitter moves parts of the face both ways; it must not shrink it (the old grid resize
    shrank a 129 px circle to 103 px at zero jitter and mirrored bands in at the sides)."""
    import cv2

    disk = np.zeros((256, 256), np.uint8)
    cv2.circle(disk, (128, 128), 64, 255, -1)
    ratios = [(random_warp(disk, np.random.default_rng(s)) > 127).sum() / (disk > 127).sum() for s in range(40)]
    assert 0.93 < np.mean(ratios) < 1.07
    image = np.zeros((256, 256, 3), np.uint8)
    image[:, :8] = 255  # a bright left edge: a reflected band would bring it inside
    warped = random_warp(image, np.random.default_rng(3), strength=0.0)
    assert warped[:, 8:].max() == 0


def test_warp_changes_the_input_with_jitter():
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    warped = random_warp(image, np.random.default_rng(4), cells=4)
    assert np.abs(warped.astype(int) - image).mean() > 10


def _face_like(rng: np.random.Generator, skin: tuple[int, int, int], background: tuple[int, int, int]):
    import cv2

    image = np.zeros((64, 64, 3), np.uint8)
    image[:] = background
    mask = np.zeros((64, 64), np.float32)
    cv2.circle(mask, (32, 32), 20, 1.0, -1)
    noise = rng.integers(-25, 25, (64, 64, 3))
    face = np.clip(np.array(skin) + noise, 0, 255).astype(np.uint8)
    image[mask > 0.5] = face[mask > 0.5]
    return image, mask


def test_training_colour_transfer_is_conversions_rct():
    """A is coloured toward one B face's statistics inside B's mask, as conversion colours the swap
    toward the target crop inside the mask: a background of another colour must not leak in."""
    import albumentations as A
    import cv2

    rng = np.random.default_rng(5)
    a_img, a_mask = _face_like(rng, (90, 120, 170), (10, 10, 10))
    b_img, b_mask = _face_like(rng, (140, 150, 200), (0, 255, 0))  # bright green background
    assert np.array_equal(reinhard(a_img, b_img, a_mask, a_mask), rct(a_img, b_img, a_mask))

    def samples(image, mask):
        return FaceSamples(image[None], mask[None], mask[None], np.zeros_like(mask)[None], np.zeros(1, np.float32))

    dataset = PairDataset(samples(a_img, a_mask), samples(b_img, b_mask), 1, warp=False, colour_transfer=1.0)
    dataset.shared = A.Compose([], additional_targets={"mask_weight": "mask", "mask_priority": "mask"})
    dataset.degrade = A.Compose([])
    target = (dataset[0]["a"]["target"].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
    lab = cv2.cvtColor(target, cv2.COLOR_BGR2LAB).reshape(-1, 3)[a_mask.reshape(-1) > 0.5].astype(np.float64)
    b_lab = cv2.cvtColor(b_img, cv2.COLOR_BGR2LAB).reshape(-1, 3)[b_mask.reshape(-1) > 0.5].astype(np.float64)
    assert np.abs(lab.mean(0) - b_lab.mean(0)).max() < 2.0
    assert np.abs(lab.std(0) - b_lab.std(0)).max() < 2.0
