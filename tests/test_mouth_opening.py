"""`--mask mouth-opening` moves the target's opening into the swapped face's mouth: the generated
lips open as far as the target's (read back by the landmark detector, as `faceswap eval` reads
them), the rest of the face holds still, and a fit that is not a mouth leaves the opening in place."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from faceswap.convert import mouth
from faceswap.faces.align import align_face, crop_face, eye_to_mouth, transform_points
from faceswap.faces.dlib_backend import kps5_from_68


@pytest.fixture(scope="module")
def drawn_faces(dlib_analyzer):
    """demo-a with its mouth shut and demo-b with its mouth shut and wide open, each as the detector
    finds it in a rendered frame: {(name, opening): (frame, face)}."""
    from faceswap.demo.clip import Pose
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import SIZE, backdrop, render_frame

    identities = {i.name: i for i in build_identities(dlib_analyzer)[0]}
    base = backdrop(*SIZE, seed=3)
    out = {}
    for name, opened in (("demo-a", 0.0), ("demo-b", 0.0), ("demo-b", 0.9)):
        pose = Pose(yaw=4.0, roll=2.0, scale=0.42, cx=SIZE[0] * 0.5, cy=SIZE[1] * 0.52, mouth=opened, blink=0, light=1)
        frame, _, _ = render_frame(identities[name], None, pose, 0.0, base, 0.8)
        (face,) = dlib_analyzer.analyze(frame)
        out[name, opened] = (frame, face)
    return out


def _crop(drawn, key, size):
    frame, face = drawn[key]
    matrix = align_face(frame, face.kps5, size).matrix
    return crop_face(frame, matrix, size), face, matrix


def _fitter(analyzer, face):
    return lambda image, box: analyzer.refit(image, box, face).landmarks


def _opening_of(crop, face, matrix, analyzer):
    fitted = mouth.fit_generated(crop, mouth.face_box_in_crop(face.bbox, matrix), _fitter(analyzer, face))
    return mouth.opening(fitted)


@pytest.mark.parametrize("size", [64, 128])
def test_the_swap_opens_its_mouth_as_far_as_the_target(drawn_faces, dlib_analyzer, size):
    """demo-a's shut mouth (standing in for a decoder that has not learnt to open it) in demo-b's
    open-mouthed crop: the lips themselves move apart, and with the opening carried in the detector
    reads the result open about as far as demo-b."""
    from faceswap.convert.pipeline import Swapper

    generated, _, _ = _crop(drawn_faces, ("demo-a", 0.0), size)
    target, face_b, matrix_b = _crop(drawn_faces, ("demo-b", 0.9), size)
    swapper = SimpleNamespace(analyzer=dlib_analyzer)
    opened, move = Swapper.open_mouth(swapper, generated, face_b, matrix_b, None)
    assert move is not None
    box, fit = mouth.face_box_in_crop(face_b.bbox, matrix_b), _fitter(dlib_analyzer, face_b)
    lips_before, lips_after = (mouth.fit_generated(image, box, fit) for image in (generated, opened))

    def outer(points: np.ndarray) -> float:  # the outer lips' height: the warp alone, before the paste
        return float(points[57, 1] - points[51, 1])

    planned = outer(move.moved) - outer(move.fitted)
    assert planned > 0.1 * size / 4
    if size >= 128:  # at 64 px dlib reads a stretched lip without an opening as shut (4.7 px both)
        assert outer(lips_after) - outer(lips_before) > 0.5 * planned  # measured 6.7 px of 8.6 planned
    # each moved lip point shows what the generated face had at that point before the move
    lips = list(mouth.UPPER_LIP + mouth.LOWER_LIP)

    def at(image: np.ndarray, points: np.ndarray) -> np.ndarray:  # read between pixels
        x, y = (np.ascontiguousarray(points[lips, i], np.float32)[None] for i in (0, 1))
        return cv2.remap(image.astype(np.float32), x, y, cv2.INTER_LINEAR)[0]

    carried = np.abs(at(opened, move.moved) - at(generated, move.fitted)).mean()
    stayed = np.abs(at(generated, move.moved) - at(generated, move.fitted)).mean()
    assert carried < 0.3 * stayed  # measured 7.0 against 33.7 (64 px), 2.8 against 33.9 (128 px)
    result = mouth.paste_opening(opened, target, move, 1.0)
    wanted = mouth.opening(transform_points(face_b.landmarks, matrix_b))
    before = _opening_of(generated, face_b, matrix_b, dlib_analyzer)
    after = _opening_of(result, face_b, matrix_b, dlib_analyzer)
    assert wanted > 0.3 and before < 0.3 * wanted
    assert after > 0.8 * wanted, (before, after, wanted)  # measured 0.99 (64 px), 0.94 (128 px)
    # the eyes and brows hold still: the warp moves the lips and the chin
    top = slice(0, int(size * 0.45))
    assert np.abs(result[top].astype(int) - generated[top].astype(int)).mean() < 1.0
    # something in front of the target's mouth would be carried along with it: the opening stays put
    frame = drawn_faces["demo-b", 0.9][0]
    occluders = np.zeros(frame.shape[:2], np.float32)
    x0, y0 = np.asarray(face_b.landmarks)[48:68].min(axis=0).astype(int)
    x1, y1 = np.asarray(face_b.landmarks)[48:68].max(axis=0).astype(int)
    occluders[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    unchanged, none = Swapper.open_mouth(swapper, generated, face_b, matrix_b, occluders)
    assert none is None and unchanged is generated


def test_a_shut_target_leaves_the_swaps_lips_where_they_are(drawn_faces, dlib_analyzer):
    size = 128
    generated, _, _ = _crop(drawn_faces, ("demo-a", 0.0), size)
    target, face_b, matrix_b = _crop(drawn_faces, ("demo-b", 0.0), size)
    fitted = mouth.fit_generated(
        generated, mouth.face_box_in_crop(face_b.bbox, matrix_b), _fitter(dlib_analyzer, face_b)
    )
    move = mouth.plan(fitted, transform_points(face_b.landmarks, matrix_b))
    assert move is not None
    lips = list(mouth.UPPER_LIP + mouth.LOWER_LIP)
    shift = np.linalg.norm(move.moved[lips] - fitted[lips], axis=1).max()
    assert shift < 0.05 * eye_to_mouth(kps5_from_68(fitted))


def test_a_fit_that_is_not_a_mouth_keeps_the_opening_in_place(drawn_faces):
    _, face_b, matrix_b = _crop(drawn_faces, ("demo-b", 0.9), 128)
    target = transform_points(face_b.landmarks, matrix_b)
    unit = eye_to_mouth(kps5_from_68(target))
    assert mouth.plan(target.copy(), target) is not None
    elsewhere = target + np.array([0.0, (mouth.MAX_MOUTH_SHIFT + 0.1) * unit])
    assert mouth.plan(elsewhere, target) is None
    centre = target[48:68].mean(axis=0)
    tiny = target.copy()
    tiny[48:68] = centre + (target[48:68] - centre) * (mouth.WIDTH_RANGE[0] * 0.8)
    assert mouth.plan(tiny, target) is None
    broken = target.copy()
    broken[50] = np.nan
    assert mouth.plan(broken, target) is None


def test_the_thin_plate_map_reads_each_point_from_its_source():
    rng = np.random.default_rng(0)
    size = 64
    dst = rng.integers(4, size - 4, (12, 2)).astype(np.float64)
    src = dst + rng.normal(0, 2.0, dst.shape)
    map_x, map_y = mouth.thin_plate_map(dst, src, size)
    for (x, y), (sx, sy) in zip(dst.astype(int), src, strict=True):
        assert abs(map_x[y, x] - sx) < 0.05 and abs(map_y[y, x] - sy) < 0.05
    big_x, _ = mouth.thin_plate_map(dst * 4, src * 4, size * 4)  # solved coarse and enlarged
    for (x, y), (sx, _sy) in zip((dst * 4).astype(int), src * 4, strict=True):
        assert abs(big_x[y, x] - sx) < 1.0
