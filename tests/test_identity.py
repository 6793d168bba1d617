"""The identity threshold separates the people in package-shipped photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceswap.errors import BadInput
from faceswap.faces.identity import IdentityMatcher, cosine_similarities


def test_different_people_in_t1_do_not_match(t1_faces):
    """Every pair of the six different people in t1.jpg stays below the threshold."""
    assert len(t1_faces) == 6
    for i, face in enumerate(t1_faces):
        others = IdentityMatcher(np.stack([f.embedding for j, f in enumerate(t1_faces) if j != i]), "dlib")
        assert not others.matches(face.embedding)
        assert others.similarity(face.embedding) < others.threshold


@pytest.mark.parametrize("attack", ["flip", "jpeg", "resize"])
def test_same_person_matches_after_perturbation(dlib_analyzer, astronaut_image, t1_faces, attack):
    if attack == "flip":
        probe = astronaut_image[:, ::-1].copy()
    elif attack == "jpeg":
        probe = cv2.imdecode(cv2.imencode(".jpg", astronaut_image, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    else:
        probe = cv2.resize(astronaut_image, (300, 300), interpolation=cv2.INTER_AREA)
    astronaut = IdentityMatcher(dlib_analyzer.analyze(astronaut_image)[0].embedding[None], "dlib")
    found = dlib_analyzer.analyze(probe)[0].embedding
    assert astronaut.matches(found)
    assert not any(IdentityMatcher(f.embedding[None], "dlib").matches(found) for f in t1_faces)


def test_embeddings_of_different_backends_never_mix():
    with pytest.raises(BadInput, match="different backends"):
        cosine_similarities(np.ones(128), np.ones((2, 512)))
