"""The offline dlib backend on real package-shipped photos."""

from __future__ import annotations

import numpy as np


def test_finds_all_six_faces_in_t1(t1_faces):
    assert len(t1_faces) == 6
    for face in t1_faces:
        assert face.backend == "dlib"
        assert face.embedding.shape == (128,)
        assert abs(np.linalg.norm(face.embedding) - 1.0) < 1e-5
        assert face.landmarks is not None and face.landmarks.shape == (68, 2)
        x1, y1, x2, y2 = face.bbox
        assert x1 < face.kps5[2, 0] < x2 and y1 < face.kps5[2, 1] < y2


def test_keypoints_are_ordered_eyes_nose_mouth(t1_faces):
    for face in t1_faces:
        right_eye, left_eye, nose, mouth_r, mouth_l = face.kps5
        assert right_eye[0] < left_eye[0]
        assert mouth_r[0] < mouth_l[0]
        assert max(right_eye[1], left_eye[1]) < nose[1] < max(mouth_r[1], mouth_l[1]) + 5


def test_single_face_photos(dlib_analyzer, astronaut_image, hanks_image):
    assert len(dlib_analyzer.analyze(astronaut_image)) == 1  # the weak HOG hit on the suit is filtered
    assert len(dlib_analyzer.analyze(hanks_image)) == 1


def test_no_face_in_a_texture(dlib_analyzer):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    assert dlib_analyzer.analyze(noise) == []


def test_embedding_is_stable_under_resize(dlib_analyzer, astronaut_image):
    import cv2

    small = cv2.resize(astronaut_image, (384, 384), interpolation=cv2.INTER_AREA)
    a = dlib_analyzer.analyze(astronaut_image)[0].embedding
    b = dlib_analyzer.analyze(small)[0].embedding
    assert float(a @ b) > 0.97
