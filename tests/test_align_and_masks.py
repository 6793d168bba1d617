"""Alignment to the whole-face template, paste-back through the inverse, and landmark masks."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.faces.align import WHOLE_FACE_TEMPLATE, align_face, paste_back, transform_points, umeyama
from faceswap.faces.masks import REGIONS, landmark_mask


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
    masks = {r: landmark_mask(lms, "68", kps, r, (256, 256)) > 0.5 for r in REGIONS}
    assert masks["mouth"].sum() < masks["lower-face"].sum() < masks["full"].sum()
    assert (masks["mouth"] & ~masks["lower-face"]).sum() < 0.02 * masks["mouth"].sum()
    assert (masks["lower-face"] & ~masks["full"]).sum() < 0.02 * masks["lower-face"].sum()
    for x, y in kps[3:]:
        assert masks["mouth"][int(y), int(x)]
    for x, y in kps[:2]:
        assert masks["full"][int(y), int(x)] and not masks["lower-face"][int(y), int(x)]
    # the full mask reaches above the eyebrows
    assert masks["full"][: int(kps[:2, 1].min()) - 30].any()
    # the opening: between the lips, inside the mouth region, and leaving the lips out of it
    opening = masks["mouth-opening"]
    assert (opening & ~masks["mouth"]).sum() == 0
    assert 0 < opening.sum() < 0.5 * masks["mouth"].sum()
    x, y = (lms[62] + lms[66]) / 2
    assert opening[int(round(y)), int(round(x))]
    for outer in (51, 57):  # the upper and lower lips' outer edges stay the swap's
        assert not opening[int(round(lms[outer][1])), int(round(lms[outer][0]))]


def test_feathered_mask_is_soft():
    import tiny_onnx

    lms = (tiny_onnx.mean_shape_106() + 1) * 64
    kps = np.array([[52, 55], [76, 55], [64, 70], [54, 86], [74, 86]], np.float32)
    mask = landmark_mask(lms, "106", kps, "mouth", (128, 128), feather=3.0)
    assert 0.0 < mask.min() + 1e-3 and mask.max() <= 1.0
    assert ((mask > 0.05) & (mask < 0.95)).any()


# --- alignment on the eyes and nose, face types, one crop resampling, training regions ------------


def _sample_faces(dlib_analyzer, t1_faces, hanks_image, astronaut_image):
    return list(t1_faces) + dlib_analyzer.analyze(hanks_image) + dlib_analyzer.analyze(astronaut_image)


def test_rigid_template_is_the_mean_of_the_shipped_faces(dlib_analyzer, t1_faces, hanks_image, astronaut_image):
    from faceswap.faces.align import RIGID_POINTS

    indices, template = RIGID_POINTS["68"]
    faces = _sample_faces(dlib_analyzer, t1_faces, hanks_image, astronaut_image)
    assert len(faces) == 8
    unit = [transform_points(f.landmarks, umeyama(f.kps5, WHOLE_FACE_TEMPLATE))[list(indices)] for f in faces]
    mean = np.mean(unit, axis=0)
    assert np.abs(mean - template).max() < 0.02  # the stored template is this mean, mirrored about x = 0.5
    assert np.allclose(template[:4, 0], 0.5)  # the nose bridge on the centre line


def test_an_opening_mouth_does_not_move_the_crop(t1_faces):
    """Five-point alignment follows the mouth corners; eyes-and-nose alignment ignores the mouth."""
    from faceswap.faces.align import Alignment, alignment_matrix
    from faceswap.faces.dlib_backend import kps5_from_68

    face = t1_faces[0]
    lms = np.asarray(face.landmarks, np.float64)
    opened = lms.copy()
    eye_distance = float(np.linalg.norm(face.kps5[1] - face.kps5[0]))
    opened[48:68, 1] += np.where(np.arange(48, 68) >= 55, 0.35, 0.0)[:20] * eye_distance  # lower lip drops
    opened[[48, 54], 0] += np.array([-0.12, 0.12]) * eye_distance  # a wide smile
    opened[5:12, 1] += 0.3 * eye_distance  # the chin follows
    size = 256
    rigid, five = (
        [alignment_matrix(kps5_from_68(pts), size, Alignment("whole", points), pts, "68") for pts in (lms, opened)]
        for points in ("eyes-nose", "five")
    )

    def corner_shift(pair):
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        moved = [transform_points(transform_points(corners, invert_affine(m)), pair[0]) for m in pair]
        return float(np.linalg.norm(moved[1] - moved[0], axis=1).max())

    from faceswap.faces.align import invert_affine

    assert corner_shift(rigid) < 0.01
    assert corner_shift(five) > 3.0


def test_full_face_magnifies_the_inner_face_by_one_and_a_half(t1_faces):
    from faceswap.faces.align import FACE_TYPES, LEGACY_TEMPLATE, Alignment, align_face

    face = t1_faces[1]
    frame = np.zeros((400, 600, 3), np.uint8)
    whole = align_face(frame, face.kps5, 256, Alignment("whole"), face.landmarks, "68")
    full = align_face(frame, face.kps5, 256, Alignment("full"), face.landmarks, "68")
    eyes = [transform_points(face.kps5[:2], a.matrix) for a in (whole, full)]
    ratio = np.linalg.norm(eyes[1][1] - eyes[1][0]) / np.linalg.norm(eyes[0][1] - eyes[0][0])
    assert ratio == pytest.approx(1.5, rel=1e-6)
    chin = transform_points(face.landmarks[8:9], full.matrix)[0]
    brows = transform_points(face.landmarks[17:27], full.matrix)
    assert 0.8 * 256 < chin[1] < 256 and brows[:, 1].min() > 0.05 * 256
    assert Alignment.parse("full-face-five") == Alignment("full", "five")
    assert Alignment.parse(LEGACY_TEMPLATE) == Alignment("whole", "five")  # facesets from before
    assert set(FACE_TYPES) == {"whole", "full", "lower", "mouth"}
    with pytest.raises(ValueError):
        Alignment.parse("half-face-five")


def test_eye_priority_covers_the_eye_regions(t1_faces, t1_image):
    """Corners, lids and a margin around each eye, not a disc on the iris."""
    import cv2

    from faceswap.faces.align import Alignment, align_face
    from faceswap.faces.masks import eye_mask

    for face in t1_faces:
        aligned = align_face(t1_image, face.kps5, 256, Alignment(), face.landmarks, "68")
        lms = transform_points(face.landmarks, aligned.matrix)
        kps = transform_points(face.kps5, aligned.matrix)
        for landmarks in (lms, None):  # the eye outlines, and the five-point fallback (less exact)
            mask = eye_mask(landmarks, "68" if landmarks is not None else None, kps, (256, 256))
            for eye in (range(36, 42), range(42, 48)):
                outline = np.zeros((256, 256), np.uint8)
                cv2.fillConvexPoly(outline, np.rint(lms[list(eye)]).astype(np.int32), 1)
                covered = mask[outline > 0] > 0.5
                assert covered.mean() > (0.97 if landmarks is not None else 0.9)
                if landmarks is None:
                    continue
                corners = lms[[eye[0], eye[3]]]
                width = float(np.linalg.norm(corners[1] - corners[0]))
                for corner, away in zip(corners, (corners[0] - corners[1], corners[1] - corners[0]), strict=True):
                    beyond = corner + away / np.linalg.norm(away) * 0.08 * width  # just past each corner
                    assert mask[int(round(beyond[1])), int(round(beyond[0]))] > 0.5
            assert mask.mean() < 0.1  # the eyes, not the upper face


def test_training_weight_covers_what_the_blend_shows(t1_faces, t1_image):
    from faceswap.faces.align import Alignment, align_face
    from faceswap.faces.masks import blend_mask, training_weight

    face = t1_faces[2]
    for size in (64, 256):
        aligned = align_face(t1_image, face.kps5, size, Alignment(), face.landmarks, "68")
        lms = transform_points(face.landmarks, aligned.matrix)
        kps = transform_points(face.kps5, aligned.matrix)
        hull = landmark_mask(lms, "68", kps, "full", (size, size))
        shown = blend_mask(hull)  # conversion's mask with a learned mask that fills the hull
        weight = training_weight(hull)
        assert (weight >= shown - 1e-6).all()
        assert weight[hull > 0.99].min() > 0.999  # the whole hull at full weight
        assert weight[shown > 0.02].min() > 0.04  # the feathered ring is trained as well


def test_a_lower_face_crop_cut_from_a_whole_face_crop_is_the_one_made_from_the_frame(t1_faces, t1_image):
    """Reframing lands every pixel and landmark where a crop made from the frame in the new framing
    puts it, so a model trained on cut crops sees what `dub` feeds it; and it holds mouth and chin."""
    from faceswap.faces.align import FACE_TYPES, Alignment, crop_face, reframe_fits, reframe_matrix

    face = t1_faces[1]
    whole = align_face(t1_image, face.kps5, 128, Alignment("whole"), face.landmarks, "68")
    lower = align_face(t1_image, face.kps5, 64, Alignment("lower"), face.landmarks, "68")
    cut = reframe_matrix(FACE_TYPES["whole"], 128, FACE_TYPES["lower"], 64)
    via_whole = transform_points(transform_points(face.landmarks, whole.matrix), cut)
    assert np.abs(via_whole - transform_points(face.landmarks, lower.matrix)).max() < 1e-6
    pixels = crop_face(whole.crop, cut, 64).astype(np.float32) - lower.crop.astype(np.float32)
    assert np.abs(pixels[4:-4, 4:-4]).mean() < 4.0  # one resampling more, nothing moved
    mouth, chin, nose_tip = via_whole[48:68], via_whole[8], via_whole[30]
    assert mouth.min() > 0.15 * 64 and mouth.max() < 0.85 * 64 and chin[1] < 0.9 * 64 and nose_tip[1] > 0
    assert reframe_fits(FACE_TYPES["whole"], FACE_TYPES["lower"])
    assert not reframe_fits(FACE_TYPES["full"], FACE_TYPES["whole"])  # a full-face crop lacks the forehead


@pytest.mark.parametrize("size", [64, 256])
def test_convert_keeps_the_opening_alone_and_paints_the_lips(t1_faces, t1_image, size):
    """`--mask mouth-opening`: what conversion keeps of the target is between its lips; the lips and
    the skin around them are the swap's (with `--mask mouth` they are the target's, and so is its
    identity there). At 64 px a lip is two pixels thick and the blend's feather is wider than that."""
    from types import SimpleNamespace

    from faceswap.convert.pipeline import Swapper
    from faceswap.convert.settings import ConvertOptions

    face = t1_faces[0]
    matrix = align_face(t1_image, face.kps5, size).matrix
    lms = transform_points(face.landmarks, matrix)
    painted = {}
    for mask in ("mouth", "mouth-opening"):
        swapper = SimpleNamespace(options=ConvertOptions(mask=mask))
        area, keep = Swapper.region(swapper, face, matrix, size)
        painted[mask] = Swapper.finish_mask(swapper, np.ones((size, size), np.float32), area, keep)
    gap = np.rint((lms[62] + lms[66]) / 2).astype(int)
    assert painted["mouth-opening"][gap[1], gap[0]] < 0.5 and painted["mouth"][gap[1], gap[0]] < 0.5
    for outer in (51, 57):  # the lips' outer edges, top and bottom
        x, y = np.rint(lms[outer]).astype(int)
        assert painted["mouth"][y, x] < 0.1 and painted["mouth-opening"][y, x] > (0.2 if size == 64 else 0.5)
    assert painted["mouth-opening"].sum() > painted["mouth"].sum()
