"""Faces followed between detections: as accurate as detecting every frame, far fewer detections,
identity decided per track, scene cuts start over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.tracking import FaceTracker
from faceswap.media import iter_video_frames, read_image


@pytest.fixture(scope="module")
def clip(demo_subjects, dlib_analyzer):
    files, _ = demo_subjects
    b = files["demo-b"]
    refs = np.stack([dlib_analyzer.analyze(read_image(p))[0].embedding for p in b.references])
    truth = json.loads(b.truth.read_text())["frames"]
    frames = [f.image for f in iter_video_frames(b.clip)]
    other = [f.image for f in iter_video_frames(files["demo-a"].clip)]
    return frames, truth, IdentityMatcher(refs, "dlib"), other


def _run(analyzer, frames, subject, every):
    tracker = FaceTracker(analyzer, subject, every)
    return tracker, [tracker.step(image) for image in frames]


def _error(seen, truth) -> float:
    """Mean keypoint error of the subject's face against the drawn keypoints, in eye distances, over
    the frames where the subject was found (most of them: asserted, so an empty mean cannot pass)."""
    errors = []
    for faces, row in zip(seen, truth, strict=True):
        subject = [s for s in faces if s.is_subject]
        if subject:
            true = np.asarray(row["subject_kps5"])
            errors.append(
                np.linalg.norm(subject[0].face.kps5 - true, axis=1).mean() / np.linalg.norm(true[1] - true[0])
            )
    assert len(errors) >= 0.9 * len(seen)
    return float(np.mean(errors))


def _centre_in(bbox, box) -> bool:
    centre = (bbox[:2] + bbox[2:]) / 2
    return bool(box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3])


def test_tracking_is_as_accurate_as_detecting_every_frame(clip, dlib_analyzer):
    frames, truth, subject, _ = clip
    full, seen_full = _run(dlib_analyzer, frames, subject, 1)
    tracked, seen = _run(dlib_analyzer, frames, subject, 8)
    assert full.key_frames == len(frames) and tracked.key_frames <= len(frames) // 6
    found = sum(any(s.is_subject for s in faces) for faces in seen)
    assert found >= 0.95 * sum(any(s.is_subject for s in faces) for faces in seen_full)
    assert _error(seen, truth) < _error(seen_full, truth) + 0.01  # eye distances, against the drawn keypoints
    subject_tracks = {s.track_id for faces in seen for s in faces if s.is_subject}
    assert len(subject_tracks) <= 2  # one face, followed, not re-found every frame


def test_bystanders_are_tracked_but_never_the_subject(clip, dlib_analyzer):
    frames, truth, subject, _ = clip
    _, seen = _run(dlib_analyzer, frames, subject, 8)
    with_bystander = [
        (faces, row["bystander_box"]) for faces, row in zip(seen, truth, strict=True) if row["bystander_box"]
    ]
    assert len(with_bystander) >= 0.4 * len(frames)  # demo-b's bystander walks through 45 % of the clip
    at_bystander = [[s for s in faces if _centre_in(s.face.bbox, box)] for faces, box in with_bystander]
    assert not any(s.is_subject for faces in at_bystander for s in faces)
    assert sum(bool(faces) for faces in at_bystander) >= 0.7 * len(with_bystander)  # followed (28 of 34 measured)
    assert all(any(s.is_subject for s in faces) for faces, _ in with_bystander)  # the subject beside it


def test_a_scene_cut_detects_again_and_starts_new_tracks(clip, dlib_analyzer):
    frames, _, subject, other = clip
    cut_at = 20
    tracker, seen = _run(dlib_analyzer, other[:cut_at] + frames[:20], subject, 50)
    assert tracker.key_frames >= 2  # the first frame and the cut
    before = {s.track_id for faces in seen[:cut_at] for s in faces}
    after = {s.track_id for faces in seen[cut_at:] for s in faces}
    assert before and after and before.isdisjoint(after)
    assert not any(s.is_subject for faces in seen[:cut_at] for s in faces)  # demo-a's clip has no demo-b
    assert any(s.is_subject for s in seen[cut_at])  # found on the cut frame itself, not a key interval later
