"""The face-anchored research layer (scripts/face_layer.py, measured by scripts/bench_watermark.py):
marking an aligned crop at paste-back, reading it through a real face detector and alignment on the
demo's synthetic faces."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import BadInput
from faceswap.faces.align import alignment_matrix, paste_back, transform_points
from faceswap.faces.masks import landmark_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import face_layer  # noqa: E402

TOKEN = 0x0FACE0FACE01
CROP = 128


@pytest.fixture(scope="module")
def demo_frames(dlib_analyzer):
    """Three frames of a synthetic demo subject and the landmarks it was drawn with."""
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import SIZE, backdrop, pose_at, render_frame
    from faceswap.faces.dlib_backend import kps5_from_68

    identities, _ = build_identities(dlib_analyzer)
    subject = next(i for i in identities if i.name == "demo-a")
    out, base = [], backdrop(*SIZE, seed=1)
    for t in (0.4, 1.3, 2.2):
        image, drawn, _ = render_frame(subject, None, pose_at(t, 1), t, base, 0.8)
        out.append((image, kps5_from_68(drawn["landmarks"]), drawn["landmarks"]))
    return out


def _swap_paste(image, kps5, landmarks, amplitude=face_layer.FACE_AMPLITUDE):
    """What convert does at paste-back, with the face layer: align, mark the crop, paste through the mask."""
    matrix = alignment_matrix(kps5, CROP)
    crop = cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    marked = face_layer.mark_face_crop(crop, TOKEN, amplitude)
    mask = landmark_mask(
        transform_points(landmarks, matrix), "68", transform_points(kps5, matrix), "full", (CROP, CROP)
    )
    return paste_back(image, marked, matrix, cv2.GaussianBlur(mask, (0, 0), 2.0)), crop, marked


def test_mark_face_crop_changes_luma_only_and_little(demo_frames):
    image, kps5, landmarks = demo_frames[0]
    _, crop, marked = _swap_paste(image, kps5, landmarks)
    assert marked.shape == crop.shape and marked.dtype == np.uint8
    assert cv2.PSNR(crop, marked) >= 38.0
    change = marked.astype(int) - crop.astype(int)
    inside = ((crop > 8) & (crop < 247)).all(axis=2)  # away from clipping, B, G and R move together
    assert (np.abs(change[..., 0] - change[..., 2])[inside] <= 1).mean() > 0.99
    again = face_layer.mark_face_crop(crop, TOKEN)
    assert np.array_equal(again, marked)  # the same token marks the same way (per-size pattern cached)


@pytest.mark.parametrize(
    "crop",
    [np.zeros((32, 32, 3), np.uint8), np.zeros((600, 600, 3), np.uint8), np.zeros((128, 96, 3), np.uint8),
     np.zeros((128, 128, 3), np.float32), np.zeros((128, 128), np.uint8)],
)  # fmt: skip
def test_mark_face_crop_refuses_what_is_not_an_aligned_crop(crop):
    with pytest.raises(BadInput):
        face_layer.mark_face_crop(crop, TOKEN)


@pytest.mark.parametrize("mirror", [False, True])
def test_face_layer_is_read_in_canonical_coordinates_after_rotation_rescale_and_mirror(mirror):
    """A marked crop pasted into a frame turned by 12 degrees and scaled by 1.7 (and then mirrored) is
    read back through the alignment of its keypoints. Flat content, so this checks the geometry;
    on real faces the layer is far weaker (docs/watermark.md)."""
    from faceswap.faces.align import WHOLE_FACE_TEMPLATE

    crop = np.full((CROP, CROP, 3), 118, np.uint8)
    marked = face_layer.mark_face_crop(crop, TOKEN)
    turn = cv2.getRotationMatrix2D((CROP / 2, CROP / 2), 12.0, 1.7)
    turn[:, 2] += (260 - CROP / 2, 200 - CROP / 2)
    frame = np.full((480, 640, 3), 118, np.uint8)
    frame = cv2.warpAffine(marked, turn, (640, 480), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
    kps5 = transform_points(WHOLE_FACE_TEMPLATE * CROP, turn)
    if mirror:
        frame = np.ascontiguousarray(frame[:, ::-1])
        kps5 = np.column_stack([639 - kps5[:, 0], kps5[:, 1]])[[1, 0, 2, 4, 3]]  # image-left eye first
    read = face_layer.read_aligned([(frame, [kps5])])
    assert read.detected and read.mirror == mirror and read.faces == 1
    assert read.false_positive <= face_layer.FACE_BUDGET * 1.0001


def test_unmarked_faces_stay_far_below_the_line(demo_frames, dlib_analyzer):
    read = face_layer.read_faces([image for image, _, _ in demo_frames], dlib_analyzer)
    assert read.faces == 3 and read.tries > 0 and read.z < read.threshold - 2
