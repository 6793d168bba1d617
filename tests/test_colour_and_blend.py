"""Every colour-transfer and blend mode the CLI offers, on real face crops (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.convert import blend as blend_modes
from faceswap.convert import colour as colour_modes
from faceswap.faces.align import align_face, mask_to_frame, transform_points
from faceswap.faces.masks import landmark_mask

SIZE = 128


@pytest.fixture(scope="module")
def two_faces(t1_faces, t1_image):
    """Two different people's aligned crops from t1.jpg, and the first one's face hull."""
    first, second = (
        align_face(t1_image, f.kps5, SIZE, landmarks=f.landmarks, scheme=f.landmark_scheme) for f in t1_faces[:2]
    )
    face = t1_faces[0]
    hull = landmark_mask(
        transform_points(face.landmarks, first.matrix),
        face.landmark_scheme,
        transform_points(face.kps5, first.matrix),
        "full",
        (SIZE, SIZE),
    )
    return first, second, hull


def _masked_mean(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3)[mask.reshape(-1) > 0.5].astype(np.float64).mean(0)


@pytest.mark.parametrize("mode", sorted(colour_modes.MODES))
def test_colour_modes_move_the_face_toward_the_target(mode, two_faces):
    first, second, hull = two_faces
    source = np.ascontiguousarray(second.crop[:, :, ::-1])  # another face, channels swapped: far off in colour
    out = colour_modes.MODES[mode](source, first.crop, hull)
    assert out.shape == source.shape and out.dtype == np.uint8
    before = np.abs(_masked_mean(source, hull) - _masked_mean(first.crop, hull)).sum()
    after = np.abs(_masked_mean(out, hull) - _masked_mean(first.crop, hull)).sum()
    if mode == "none":
        assert np.array_equal(out, source)
    else:
        assert after < 0.25 * before, (mode, before, after)


@pytest.mark.parametrize("mode", sorted(blend_modes.MODES))
def test_blend_modes_change_the_face_and_keep_the_rest(mode, two_faces, t1_image):
    first, second, hull = two_faces
    out = blend_modes.MODES[mode](t1_image, second.crop, first.matrix, hull)
    assert out.shape == t1_image.shape and out.dtype == t1_image.dtype
    inside = mask_to_frame(hull, first.matrix, t1_image.shape) > 0.99
    outside = mask_to_frame(np.ones_like(hull), first.matrix, t1_image.shape) == 0  # beyond the crop
    assert np.array_equal(out[outside], t1_image[outside])
    changed = np.abs(out[inside].astype(int) - t1_image[inside].astype(int)).mean()
    assert changed > 10, (mode, changed)
