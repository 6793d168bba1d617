"""Alignment to the whole-face template, paste-back through the inverse, and landmark masks."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.faces.align import WHOLE_FACE_TEMPLATE, align_face, paste_back, transform_points, umeyama
from faceswap.faces.masks import MASK_REGIONS, landmark_mask


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + shift
    matrix = umeyama(src, dst)
    np.testing.assert_allclose(transform_points(src, matrix), dst, atol=1e-9)


@pytest.mark.parametrize("size", [64, 256, 512])
def test_aligned_keypoints_land_on_the_template(t1_faces, t1_image, size):
    for face in t1_faces:
        aligned = align_face(t1_image, face.kps5, size)
        assert aligned.crop.shape == (size, size, 3)
        moved = transform_points(face.kps5, aligned.matrix)
        residual = np.linalg.norm(moved - WHOLE_FACE_TEMPLATE * size, axis=1)
        # five points, four degrees of freedom: what remains is the face's own shape and its yaw,
        # which moves the nose most, and expression (a wide smile moves the mouth corners)
        assert residual[[0, 1, 3, 4]].max() < 0.07 * size
        assert residual[2] < 0.12 * size


@pytest.mark.parametrize("size, tolerance", [(64, 14.0), (256, 6.0), (512, 5.0)])
def test_align_and_paste_back_round_trip(t1_faces, t1_image, size, tolerance):
    for face in t1_faces:
        aligned = align_face(t1_image, face.kps5, size)
        full = np.ones((size, size), dtype=np.float32)
        restored = paste_back(np.zeros_like(t1_image), aligned.crop, aligned.matrix, full)
        x1, y1, x2, y2 = face.bbox.astype(int)
        region = (slice(y1 + 5, y2 - 5), slice(x1 + 5, x2 - 5))
        error = np.abs(restored[region].astype(np.float32) - t1_image[region].astype(np.float32)).mean()
        assert error < tolerance, f"size {size}: mean abs error {error:.2f}"


def test_paste_back_leaves_pixels_outside_the_mask_untouched(t1_faces, t1_image):
    face = t1_faces[0]
    aligned = align_face(t1_image, face.kps5, 128)
    white = np.full_like(aligned.crop, 255)
    mask = np.zeros((128, 128), np.float32)
    mask[40:90, 40:90] = 1.0
    out = paste_back(t1_image, white, aligned.matrix, mask)
    changed = np.any(out != t1_image, axis=2)
    ys, xs = np.nonzero(changed)
    x1, y1, x2, y2 = face.bbox
    assert changed.sum() > 0
    assert xs.min() >= x1 - 20 and xs.max() <= x2 + 20 and ys.min() >= y1 - 20 and ys.max() <= y2 + 20


def test_masks_nest_and_cover_their_parts(t1_faces, t1_image):
    face = t1_faces[0]
    aligned = align_face(t1_image, face.kps5, 256)
    lms = transform_points(face.landmarks, aligned.matrix)
    kps = transform_points(face.kps5, aligned.matrix)
    masks = {r: landmark_mask(lms, "68", kps, r, (256, 256)) > 0.5 for r in MASK_REGIONS}
    assert masks["mouth"].sum() < masks["lower-face"].sum() < masks["full"].sum()
    assert (masks["mouth"] & ~masks["lower-face"]).sum() < 0.02 * masks["mouth"].sum()
    assert (masks["lower-face"] & ~masks["full"]).sum() < 0.02 * masks["lower-face"].sum()
    for x, y in kps[3:]:
        assert masks["mouth"][int(y), int(x)]
    for x, y in kps[:2]:
        assert masks["full"][int(y), int(x)] and not masks["lower-face"][int(y), int(x)]
    # the full mask reaches above the eyebrows
    assert masks["full"][: int(kps[:2, 1].min()) - 30].any()


def test_feathered_mask_is_soft():
    import tiny_onnx

    lms = (tiny_onnx.mean_shape_106() + 1) * 64
    kps = np.array([[52, 55], [76, 55], [64, 70], [54, 86], [74, 86]], np.float32)
    mask = landmark_mask(lms, "106", kps, "mouth", (128, 128), feather=3.0)
    assert 0.0 < mask.min() + 1e-3 and mask.max() <= 1.0
    assert ((mask > 0.05) & (mask < 0.95)).any()
