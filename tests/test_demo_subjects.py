"""The synthetic demo subjects: distinct identities, detectable and matchable in their own clips."""

from __future__ import annotations

import json

import numpy as np

from faceswap.faces.identity import threshold_for
from faceswap.media import iter_video_frames, probe_video, read_image


def test_layout_and_truth(demo_subjects):
    files, _ = demo_subjects
    assert set(files) == {"demo-a", "demo-b"}
    for f in files.values():
        assert [p.name for p in f.references] == ["reference-1.png", "reference-2.png", "reference-3.png"]
        info = probe_video(f.clip)
        assert (info.width, info.height, info.fps, info.frames) == (640, 480, 25, 75) and info.has_audio
        truth = json.loads(f.truth.read_text())
        frames = truth["frames"]
        assert len(frames) == 75 and truth["synthetic"] is True
        mouth = np.array([fr["mouth_open"] for fr in frames])
        assert mouth.max() > 0.8 and mouth.min() == 0.0  # opens and closes
        assert np.ptp([fr["yaw"] for fr in frames]) > 10 and np.ptp([fr["roll"] for fr in frames]) > 5
        assert any(fr["bystander_box"] for fr in frames) and not all(fr["bystander_box"] for fr in frames)
        assert any(fr["blink"] > 0.5 for fr in frames)


def test_identities_are_apart_and_no_real_person(demo_subjects):
    _, report = demo_subjects
    threshold = report["threshold"]
    assert all(sim < threshold - 0.04 for sim in report["between_subjects"].values())
    assert all(near["similarity"] < threshold for near in report["nearest_real_source"].values())


def test_subject_found_and_matched_in_90_percent_of_frames(demo_subjects, dlib_analyzer):
    files, _ = demo_subjects
    threshold = threshold_for("dlib")
    for subject, f in files.items():
        refs = np.stack([dlib_analyzer.analyze(read_image(p))[0].embedding for p in f.references])
        truth = json.loads(f.truth.read_text())["frames"]
        matched = checked = 0
        for frame in iter_video_frames(f.clip, every=3):
            checked += 1
            x1, y1, x2, y2 = truth[frame.index]["subject_box"]
            for face in dlib_analyzer.analyze(frame.image):
                cx, cy = (face.bbox[0] + face.bbox[2]) / 2, (face.bbox[1] + face.bbox[3]) / 2
                if x1 < cx < x2 and y1 < cy < y2:
                    matched += int(float((refs @ face.embedding).max()) >= threshold)
                    drawn = np.array(truth[frame.index]["subject_kps5"])
                    eye = float(np.linalg.norm(drawn[1] - drawn[0]))
                    assert np.linalg.norm(face.kps5 - drawn, axis=1).mean() < 0.15 * eye  # truth keypoints
                else:
                    assert float((refs @ face.embedding).max()) < threshold, "a bystander matched"
        assert matched >= 0.9 * checked, f"{subject}: {matched}/{checked}"


def test_the_dub_pair_shares_the_plates_head_motion_but_not_its_mouth(demo_subjects):
    from faceswap.demo.subjects import dub_pair_paths

    files, _ = demo_subjects
    pair = dub_pair_paths(files["demo-a"].folder.parent)
    plate, dub = (json.loads(p.read_text()) for p in (pair.plate_truth, pair.performance_truth))
    today = set(json.loads(files["demo-a"].truth.read_text())["frames"][0])
    assert set(plate["frames"][0]) == set(dub["frames"][0]) == today  # today's truth format
    assert (plate["subject"], dub["subject"], dub["dub_pair"]["offset_s"]) == ("demo-a", "demo-b", 0.0)
    for path in (pair.plate, pair.performance):
        info = probe_video(path)
        assert (info.width, info.height, info.fps, info.frames) == (640, 480, 25, 75) and info.has_audio
    for key in ("yaw", "roll", "scale", "center"):
        assert [f[key] for f in plate["frames"]] == [f[key] for f in dub["frames"]]
    clip = json.loads(files["demo-a"].truth.read_text())["frames"]
    assert [f["yaw"] for f in plate["frames"]] != [f["yaw"] for f in clip]  # frames the model never saw
    mouth_a, mouth_b = (np.array([f["mouth_open"] for f in t["frames"]]) for t in (plate, dub))
    assert mouth_a.max() > 0.8 and mouth_b.max() > 0.8 and mouth_a.min() == mouth_b.min() == 0.0
    assert abs(np.corrcoef(mouth_a, mouth_b)[0, 1]) < 0.5  # another line
