"""LIAE end to end: trained through `faceswap train`, converted with `--mask lower-face`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.media import iter_video_frames

SMOKE = str(Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml")


@pytest.mark.slow
def test_liae_trains_and_converts_keeping_the_lower_face(facesets_workspace, demo_subjects, tmp_path, capsys):
    root = facesets_workspace
    args = ["train", "--workspace", str(root), "--config", SMOKE, "--subject-a", "demo-a", "--subject-b", "demo-b"]
    args += ["--purpose", "evaluation", "--name", "liae", "--model.architecture", "liae", "--trainer.max_steps", "6"]
    assert main(args) == 0
    entry = store_at(root).ledger.entries("model.trained")[-1]
    assert entry.data["architecture"] == "liae" and entry.data["name"] == "liae"
    capsys.readouterr()

    files, _ = demo_subjects
    clip, output = files["demo-b"].clip, tmp_path / "lower.mp4"
    convert = ["convert", "--workspace", str(root), "--model", str(root / "models" / "liae"), "--input", str(clip)]
    assert main([*convert, "--output", str(output), "--mask", "lower-face", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["faces_swapped"] > 0
    assert main(["verify", str(output), "--workspace", str(root)]) == 0

    # the target keeps its own lower face: below the mouth corners the output stays near the input,
    # while between the eyes it is the swap
    truth = json.loads(files["demo-b"].truth.read_text())["frames"]
    kept, swapped = [], []
    for source, out in zip(iter_video_frames(clip), iter_video_frames(output), strict=True):
        kps = np.asarray(truth[source.index]["subject_kps5"], np.float64)
        eyes, mouth = kps[:2].mean(0), kps[3:].mean(0)
        span = np.linalg.norm(mouth - eyes)
        for centre, into in ((mouth + 0.15 * (mouth - eyes), kept), (eyes, swapped)):
            x, y, r = int(centre[0]), int(centre[1]), max(2, int(0.15 * span))
            a = source.image[y - r : y + r, x - r : x + r].astype(np.float64)
            b = out.image[y - r : y + r, x - r : x + r].astype(np.float64)
            into.append(np.abs(a - b).mean())
    assert np.median(kept) < 0.5 * np.median(swapped), (np.median(kept), np.median(swapped))
