"""The identity threshold separates the people in package-shipped photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceswap.errors import BadInput
from faceswap.faces.identity import cosine_similarities, identity_similarity, matches, threshold_for


def test_different_people_in_t1_do_not_match(t1_faces):
    refs = np.stack([f.embedding for f in t1_faces])
    for i, face in enumerate(t1_faces):
        others = np.delete(refs, i, axis=0)
        assert identity_similarity(face.embedding, others) < threshold_for("dlib")
        assert matches(face.embedding, refs[i : i + 1], "dlib")


@pytest.mark.parametrize("attack", ["flip", "jpeg", "resize"])
def test_same_person_matches_after_perturbation(dlib_analyzer, astronaut_image, t1_faces, attack):
    if attack == "flip":
        probe = astronaut_image[:, ::-1].copy()
    elif attack == "jpeg":
        probe = cv2.imdecode(cv2.imencode(".jpg", astronaut_image, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    else:
        probe = cv2.resize(astronaut_image, (300, 300), interpolation=cv2.INTER_AREA)
    reference = dlib_analyzer.analyze(astronaut_image)[0].embedding
    found = dlib_analyzer.analyze(probe)[0].embedding
    assert matches(found, reference[None], "dlib")
    assert not any(matches(found, f.embedding[None], "dlib") for f in t1_faces)


def test_embeddings_of_different_backends_never_mix():
    with pytest.raises(BadInput, match="different backends"):
        cosine_similarities(np.ones(128), np.ones((2, 512)))
