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


@pytest.fixture(scope="session")
def reference_photos(tmp_path_factory) -> dict[str, Path]:
    from consent_helpers import write_reference_photos

    return write_reference_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def registered_template(tmp_path_factory, reference_photos) -> Path:
    """A workspace with two registered subjects: 'astro' and 'hanks' (dlib embeddings)."""
    from consent_helpers import registration, store_at

    root = tmp_path_factory.mktemp("template") / "workspace"
    store = store_at(root)
    store.register(registration("astro", reference_photos["astronaut"], reference_photos["evidence"]))
    store.register(registration("hanks", reference_photos["hanks"], reference_photos["evidence"]))
    return root


@pytest.fixture
def workspace_root(tmp_path, registered_template) -> Path:
    """A private copy of the registered workspace, safe to tamper with."""
    import shutil

    root = tmp_path / "workspace"
    shutil.copytree(registered_template, root)
    return root
