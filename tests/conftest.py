from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from faceswap.faces.samples import insightface_t1, insightface_tom_hanks, skimage_astronaut  # noqa: E402
from faceswap.media import read_image  # noqa: E402


@pytest.fixture(scope="session")
def dlib_analyzer():
    from faceswap.faces.analyzer import FaceAnalyzer

    return FaceAnalyzer("dlib")


@pytest.fixture(scope="session")
def t1_image() -> np.ndarray:
    return read_image(insightface_t1())


@pytest.fixture(scope="session")
def astronaut_image() -> np.ndarray:
    return read_image(skimage_astronaut())


@pytest.fixture(scope="session")
def hanks_image() -> np.ndarray:
    import cv2

    # 112 px and tightly cropped: give HOG some context around the face
    return cv2.copyMakeBorder(read_image(insightface_tom_hanks()), 56, 56, 56, 56, cv2.BORDER_REFLECT)


@pytest.fixture(scope="session")
def t1_faces(dlib_analyzer, t1_image):
    return dlib_analyzer.analyze(t1_image)


@pytest.fixture(scope="session")
def tiny_pack_root(tmp_path_factory) -> Path:
    import tiny_onnx

    return tiny_onnx.build_pack(tmp_path_factory.mktemp("insightface"))
