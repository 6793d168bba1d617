"""Conversion: consent re-checked at run time, only subject B swapped, every output marked."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.media import iter_video_frames, probe_video


def _convert(root, clip, output, *extra) -> int:
    return main(
        [
            "convert",
            "--workspace",
            str(root),
            "--model",
            str(root / "models" / "tiny"),
            "--input",
            str(clip),
            "--output",
            str(output),
            "--json",
            *extra,
        ]
    )


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.find("{") :])


def test_video_keeps_frames_audio_timestamps_and_verifies(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    clip = files["demo-b"].clip
    output = tmp_path / "out.mp4"
    assert _convert(trained_workspace, clip, output) == 0
    report = _last_json(capsys)
    info_in, info_out = probe_video(clip), probe_video(output)
    assert info_out.frames == info_in.frames == report["frames"] and info_out.has_audio and info_out.fps == info_in.fps
    assert [f.pts for f in iter_video_frames(output)] == [f.pts for f in iter_video_frames(clip)]
    truth = json.loads(files["demo-b"].truth.read_text())["frames"]
    bystander_frames = sum(1 for row in truth if row["bystander_box"])
    assert report["frames_swapped"] >= 0.9 * report["frames"]
    assert report["bystanders_untouched"] >= 0.8 * bystander_frames
    assert main(["verify", str(output), "--workspace", str(trained_workspace), "--json"]) == 0
    verdict = _last_json(capsys)["files"][0]
    assert verdict["producer"] == "convert" and verdict["ledger"] == "valid"
    assert len(verdict["consent"]) == 2 and all(c["status"] == "active" for c in verdict["consent"])


def test_bystander_pixels_stay_untouched(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    clip = files["demo-a"].clip  # demo-a's clip: demo-b is not in it, so nothing may be swapped
    output = tmp_path / "none.mp4"
    assert _convert(trained_workspace, clip, output) == 1  # no face of subject B: refused by default
    assert "no face of subject 'demo-b'" in capsys.readouterr().err and not output.exists()
    assert _convert(trained_workspace, clip, output, "--allow-empty") == 0
    report = _last_json(capsys)
    assert report["frames_swapped"] == 0 and report["bystanders_untouched"] > 0
    assert probe_video(output).frames == probe_video(clip).frames


def test_revoked_consent_stops_conversion_and_writes_nothing(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    store_at(trained_workspace).revoke("demo-a", "withdrawn")
    before = len(store_at(trained_workspace).ledger.entries("output.written"))
    output = tmp_path / "out" / "refused.mp4"
    code = main(
        [
            "convert",
            "--workspace",
            str(trained_workspace),
            "--model",
            str(trained_workspace / "models" / "tiny"),
            "--input",
            str(files["demo-b"].clip),
            "--output",
            str(output),
        ]
    )
    assert code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faceswap: error:")]
    assert len(err) == 1 and "revoked" in err[0]
    assert not output.parent.exists() or list(output.parent.iterdir()) == []
    assert len(store_at(trained_workspace).ledger.entries("output.written")) == before


def test_altered_weights_are_refused(trained_workspace, demo_subjects, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    files, _ = demo_subjects
    weights = trained_workspace / "models" / "tiny" / "model.safetensors"
    state = load_file(weights)
    first = next(iter(state))
    state[first] += 0.01
    save_file(state, weights)
    assert _convert(trained_workspace, files["demo-b"].clip, tmp_path / "x.mp4") == 1
    assert "no model.trained ledger entry names these weights" in capsys.readouterr().err


def test_image_and_16_bit_sequence_with_alpha(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    still = files["demo-b"].references[0]
    assert _convert(trained_workspace, still, tmp_path / "still.png") == 0
    assert _last_json(capsys)["faces_swapped"] == 1
    shot = tmp_path / "shot"
    assert (
        _convert(
            trained_workspace,
            files["demo-b"].clip,
            shot,
            "--sequence",
            "png",
            "--bits",
            "16",
            "--alpha",
            "--mask",
            "mouth",
            "--blend",
            "seamless",
            "--color",
            "lct",
        )
        == 0
    )
    frames = sorted(shot.glob("*.png"))
    assert len(frames) == probe_video(files["demo-b"].clip).frames
    first = cv2.imread(str(frames[10]), cv2.IMREAD_UNCHANGED)
    alpha = first[..., 3]
    assert first.dtype == np.uint16 and first.shape[2] == 4
    assert alpha.max() > 32767 and alpha.min() == 0  # the swap matte: the face, and nothing elsewhere
    assert main(["verify", str(frames[10]), "--workspace", str(trained_workspace)]) == 0


def test_grey_16_bit_and_alpha_stills_are_swapped(trained_workspace, demo_subjects, tmp_path, capsys):
    """What scanners, cameras and compositing apps hand over: one channel, 16 bits, a fourth channel."""
    files, _ = demo_subjects
    colour = cv2.imread(str(files["demo-b"].references[0]))
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    stills = {
        "grey.png": grey,
        "grey-16.png": grey.astype(np.uint16) * 257,
        "rgba.png": np.dstack([colour, np.full(grey.shape, 255, np.uint8)]),
        "rgba-16.png": np.dstack([colour, np.full(grey.shape, 255, np.uint8)]).astype(np.uint16) * 257,
    }
    for name, pixels in stills.items():
        cv2.imwrite(str(tmp_path / name), pixels)
        output = tmp_path / f"swapped-{name}"
        assert _convert(trained_workspace, tmp_path / name, output) == 0, name
        assert _last_json(capsys)["faces_swapped"] == 1, name
        written = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
        assert written.shape == colour.shape and written.dtype == np.uint8, name  # 8-bit BGR unless --bits
        assert main(["verify", str(output), "--workspace", str(trained_workspace)]) == 0, name


@pytest.mark.slow
def test_eval_reports_identity_mouth_jitter_and_marks(trained_workspace, demo_subjects, capsys):
    files, _ = demo_subjects
    f = files["demo-b"]
    assert (
        main(
            [
                "eval",
                "--workspace",
                str(trained_workspace),
                "--model",
                str(trained_workspace / "models" / "tiny"),
                "--input",
                str(f.clip),
                "--truth",
                str(f.truth),
                "--mask",
                "mouth",
                "--compare-smoothing",
                "20",
                "--json",
            ]
        )
        == 0
    )
    report = _last_json(capsys)
    # a 30-step model draws faces dlib often cannot find: only frames found in both are compared
    assert report["frames_compared"] >= 10
    assert report["mouth_correlation_input"] > 0.5 and report["mouth_correlation_truth"] > 0.5
    assert report["marked_share"] == 1.0
    assert report["jitter"] is not None and report["jitter_without_smoothing"] is not None
    assert report["jitter_reference"] == "truth"  # the demo clip's drawn keypoints, not noisy detections
    # the keypoints the swap is aligned to move less beyond the true motion with smoothing on
    assert report["alignment_jitter_smoothing_on"] < 0.9 * report["alignment_jitter_without_smoothing"]
