"""The insightface backend's loading and routing, run on tiny ONNX models with buffalo_l's shapes."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.errors import MissingModel
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.faces.insightface_backend import InsightfaceBackend, pack_available, pack_dir


def _square_image(row: int, col: int, size: int = 640) -> np.ndarray:
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[row * 32 : row * 32 + 32, col * 32 : col * 32 + 32] = 255
    return image


def test_routes_every_model_of_the_pack(tiny_pack_root):
    backend = InsightfaceBackend(tiny_pack_root)
    assert backend.model_name == "buffalo_l/w600k_r50"
    assert backend._landmarker is not None


def test_detects_landmarks_and_embeds(tiny_pack_root):
    analyzer = FaceAnalyzer("insightface", tiny_pack_root)
    faces = analyzer.analyze(_square_image(10, 12))
    assert len(faces) == 1
    face = faces[0]
    assert face.backend == "insightface"
    np.testing.assert_allclose(face.bbox, [352, 288, 416, 352], atol=1.0)
    np.testing.assert_allclose(face.kps5[2], [384, 323.2], atol=1.0)
    assert face.landmarks is not None and face.landmarks.shape == (106, 2)
    assert face.landmark_scheme == "106"
    assert face.embedding.shape == (512,)
    assert abs(np.linalg.norm(face.embedding) - 1.0) < 1e-5


def test_detector_follows_the_image_and_embeddings_differ(tiny_pack_root):
    analyzer = FaceAnalyzer("insightface", tiny_pack_root)
    a = analyzer.analyze(_square_image(5, 5))
    other = _square_image(14, 9)
    other[14 * 32 : 14 * 32 + 16, 9 * 32 : 9 * 32 + 32] = (255, 160, 40)  # a face with other colours
    b = analyzer.analyze(other)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].bbox[:2], [5 * 32 - 32, 5 * 32 - 32], atol=1.0)
    assert float(a[0].embedding @ b[0].embedding) < 0.999
    assert analyzer.analyze(np.zeros((480, 640, 3), np.uint8)) == []


def test_non_square_frames_map_back_to_image_coordinates(tiny_pack_root):
    analyzer = FaceAnalyzer("insightface", tiny_pack_root)
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    frame[320:384, 384:448] = 255  # two cells at the 0.5 detector scale
    faces = analyzer.analyze(frame)
    assert faces
    cx = (faces[0].bbox[0] + faces[0].bbox[2]) / 2
    cy = (faces[0].bbox[1] + faces[0].bbox[3]) / 2
    assert 350 < cx < 450 and 290 < cy < 390


def test_missing_pack_says_where_it_looked(tmp_path):
    with pytest.raises(MissingModel) as error:
        InsightfaceBackend(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "models" / "buffalo_l") in message and "does not exist" in message
    assert "--backend dlib" in message and "\n" not in message


def test_empty_pack_is_reported_not_asserted(tmp_path):
    (tmp_path / "models" / "buffalo_l").mkdir(parents=True)
    with pytest.raises(MissingModel, match="is empty"):
        InsightfaceBackend(tmp_path)


def test_pack_may_sit_directly_under_the_root(tmp_path, tiny_pack_root):
    import shutil

    shutil.copytree(tiny_pack_root / "models" / "buffalo_l", tmp_path / "buffalo_l")
    assert pack_dir(tmp_path) == tmp_path / "buffalo_l"
    assert pack_available(tmp_path)


def test_auto_prefers_insightface_when_its_pack_is_present(tiny_pack_root, tmp_path):
    chosen = FaceAnalyzer("auto", tiny_pack_root)
    assert chosen.name == "insightface" and "model pack found" in chosen.reason
    fallback = FaceAnalyzer("auto", tmp_path)
    assert fallback.name == "dlib" and "no insightface pack" in fallback.reason
