"""The demo's occluders: what is drawn in front of the face is exactly what the truth file says, the
hand starts off the face and sweeps across it, the microphone stays in front of the mouth."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.demo.occluders import OCCLUDERS
from faceswap.demo.subjects import FPS, pose_at, render_clip
from faceswap.eval.occlusion import iou, truth_masks

FRAMES = 25  # one second: the hand's sweep goes from beside the face to its middle


@pytest.fixture(scope="module")
def demo_b():
    from faceswap.demo.faces import build_identities
    from faceswap.faces.analyzer import FaceAnalyzer

    identities, _ = build_identities(FaceAnalyzer("dlib"))
    return {i.name: i for i in identities}["demo-b"]


@pytest.fixture(scope="module")
def plain(demo_b):
    poses = [pose_at(i / FPS, 2) for i in range(FRAMES)]
    frames, _ = render_clip(demo_b, poses, 2)
    return poses, frames


@pytest.mark.parametrize("kind", OCCLUDERS)
def test_the_truth_outline_is_what_was_drawn_in_front_of_the_face(demo_b, plain, kind):
    poses, frames = plain
    occluded, rows = render_clip(demo_b, poses, 2, occluder=kind)
    shape = frames[0].shape[:2]
    on_face = []
    for before, after, row in zip(frames, occluded, rows, strict=True):
        assert row["occluder"]["kind"] == kind
        face, occluder = truth_masks(row, shape)
        changed = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2) > 8
        assert iou(changed, occluder) >= 0.9
        assert changed[~occluder].mean() < 0.002  # nothing else in the frame was touched
        assert face.sum() > 2000  # the face's outline is the drawn face, not an empty polygon
        on_face.append((face & occluder).sum() / face.sum())
    if kind == "hand":
        assert on_face[0] < 0.02 and max(on_face[-5:]) > 0.25  # at the side of the face (fingertips), then across it
    else:
        assert min(on_face) > 0.05  # in front of the mouth and chin throughout
