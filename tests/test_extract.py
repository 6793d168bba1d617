"""Consent-bound extraction: the subject is kept, everyone else dropped and counted."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.data.extract import ExtractOptions, extract
from faceswap.data.faceset import Faceset
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.align import WHOLE_FACE_TEMPLATE
from faceswap.synthetic import write_input_clip

OPTIONS = ExtractOptions(every=3, size=128)


def test_subject_a_kept_bystanders_dropped(demo_workspace, demo_subjects):
    files, _ = demo_subjects
    report = extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", OPTIONS)
    truth = json.loads(files["demo-a"].truth.read_text())["frames"]
    sampled = range(0, 75, 3)
    bystander_frames = sum(1 for i in sampled if truth[i]["bystander_box"])
    assert report.frames_read == 25
    assert report.kept >= 0.9 * report.frames_read
    assert (
        report.dropped_other_identity
        == report.faces_found - report.kept - report.dropped_too_small - report.dropped_blurry
    )
    assert report.dropped_other_identity >= bystander_frames * 0.8
    faceset = Faceset.load(demo_workspace / "facesets" / "demo-a")
    assert len(faceset.faces) == report.kept and faceset.header.record_id == report.record_id
    assert all(face.identity_similarity >= faceset.header.threshold for face in faceset.faces)
    ledger = store_at(demo_workspace).ledger
    entry = ledger.entries("faceset.built")[-1]
    assert entry.data["faceset_sha256"] == faceset.digest() and entry.data["record_id"] == report.record_id


def test_crops_are_aligned_to_the_template(demo_workspace, demo_subjects):
    """Fitted on the five keypoints, they land on the five-point template (the default fit on eye
    and nose landmarks leaves the mouth corners free: tests/test_align_and_masks.py)."""
    files, _ = demo_subjects
    extract(store_at(demo_workspace), files["demo-b"].clip, "demo-b", replace(OPTIONS, align_on="five"))
    faceset = Faceset.load(demo_workspace / "facesets" / "demo-b")
    kps = np.array([face.kps for face in faceset.faces])
    residual = np.linalg.norm(kps - WHOLE_FACE_TEMPLATE * 128, axis=2)
    assert np.median(residual[:, [0, 1, 3, 4]]) < 5.0  # pixels at 128 px; the rest is head yaw and the mouth
    assert residual[:, [0, 1]].max() < 10.0
    crop = faceset.load_crop(faceset.faces[0])
    assert crop.shape == (128, 128, 3)


def test_other_subject_in_clip_keeps_nothing(demo_workspace, demo_subjects, capsys):
    files, _ = demo_subjects
    code = main(
        [
            "extract",
            str(files["demo-a"].clip),
            "--subject",
            "demo-b",
            "--every",
            "5",
            "--workspace",
            str(demo_workspace),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "matched consented subject 'demo-b'" in err and err.count("\n") == 0
    assert not (demo_workspace / "facesets" / "demo-b").exists()


def test_rerun_adds_nothing_twice(demo_workspace, demo_subjects):
    files, _ = demo_subjects
    first = extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", OPTIONS)
    again = extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", OPTIONS)
    assert again.kept == 0 and again.already_present == first.kept and again.total_faces == first.kept
    assert again.ledger_seq is None


def test_refusals_and_bad_inputs_leave_no_faceset(demo_workspace, demo_subjects, tmp_path):
    files, _ = demo_subjects
    store = store_at(demo_workspace)
    with pytest.raises(CheckFailed, match="no consent record for subject 'nobody'"):
        extract(store, files["demo-a"].clip, "nobody", OPTIONS)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(files["demo-a"].clip.read_bytes()[:60_000])
    with pytest.raises(BadInput):
        extract(store, truncated, "demo-a", OPTIONS)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no media here")
    with pytest.raises(BadInput, match="holds no images or videos"):
        extract(store, notes, "demo-a", OPTIONS)
    faceless = tmp_path / "faceless"
    faceless.mkdir()
    wall = np.random.default_rng(0).integers(100, 140, (240, 320, 3), dtype=np.uint8)  # a plain wall
    write_input_clip(faceless / "wall.mp4", [wall] * 4, 25)
    with pytest.raises(CheckFailed, match="no faces found in 2 frame"):
        extract(store, faceless, "demo-a", OPTIONS)
    store.revoke("demo-a", "withdrawn")
    with pytest.raises(CheckFailed, match="was revoked"):
        extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", OPTIONS)
    assert not (demo_workspace / "facesets" / "demo-a").exists()
    assert store.ledger.entries("faceset.built") == []


def test_a_file_name_that_is_not_utf8_is_stored_escaped(demo_workspace, demo_subjects, tmp_path, capsys):
    """Bytes that are not UTF-8 in a name must neither crash extraction nor damage the faceset."""
    import os

    files, _ = demo_subjects
    folder = tmp_path / "odd"
    folder.mkdir()
    odd = os.fsdecode(b"r\xe9f\xff.png")
    shutil.copy(files["demo-a"].references[0], folder / odd)
    report = extract(store_at(demo_workspace), folder, "demo-a", OPTIONS)
    assert report.kept == 1
    faceset = Faceset.load(demo_workspace / "facesets" / "demo-a")
    assert faceset.faces[0].source == "r\\xe9f\\xff.png"
    for command in (["faceset", "stats", "demo-a"], ["faceset", "clean", "demo-a", "--min-blur", "0"]):
        assert main([*command, "--workspace", str(demo_workspace)]) == 0
    capsys.readouterr()


def test_directory_with_images_and_other_files(demo_workspace, demo_subjects, tmp_path):
    files, _ = demo_subjects
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in files["demo-a"].references:
        shutil.copy(p, folder / p.name)
    (folder / "notes.txt").write_text("not an image")
    report = extract(store_at(demo_workspace), folder, "demo-a", OPTIONS)
    assert report.kept == 3 and report.skipped_files and report.skipped_files[0].endswith("notes.txt")


def test_stats_and_clean_move_rejects_aside(demo_workspace, demo_subjects, capsys):
    files, _ = demo_subjects
    extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", OPTIONS)
    ws = ["--workspace", str(demo_workspace)]
    assert main(["faceset", "stats", "demo-a", "--json", *ws]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["faces"] >= 20 and sum(b["count"] for b in info["blur_histogram"]) == info["faces"]
    median_blur = float(np.median([f.blur for f in Faceset.load(demo_workspace / "facesets" / "demo-a").faces]))
    assert main(["faceset", "clean", "demo-a", "--min-blur", str(median_blur), "--json", *ws]) == 0
    result = json.loads(capsys.readouterr().out)
    folder = demo_workspace / "facesets" / "demo-a"
    assert result["moved"] > 0 and len(list((folder / "rejected").glob("*.png"))) == result["moved"]
    assert len(Faceset.load(folder).faces) == result["kept"]
    assert store_at(demo_workspace).ledger.entries("faceset.built")[-1].data["operation"] == "clean"


def test_alignment_is_recorded_and_kept(workspace_root, reference_photos):
    """A full-face extraction says so in its header; a faceset never mixes two alignments, and adding
    to one without naming an alignment keeps its own."""
    from faceswap.faces.align import LEGACY_TEMPLATE, Alignment

    store = store_at(workspace_root)
    photo = reference_photos["astronaut"]
    options = ExtractOptions(size=128, face_type="full", align_on="five")
    report = extract(store, photo, "astro", options)
    faceset = Faceset.load(workspace_root / "facesets" / "astro")
    assert report.kept == 1 and faceset.header.template == "full-face-five"
    assert faceset.header.alignment == Alignment("full", "five")
    eyes = np.array(faceset.faces[0].kps)[:2]
    assert np.linalg.norm(eyes[1] - eyes[0]) == pytest.approx(1.5 * 128 * 0.22, rel=0.1)  # 1.5x whole-face's
    assert extract(store, photo, "astro", ExtractOptions(size=128)).already_present == 1  # keeps full-face-five
    with pytest.raises(BadInput, match="--face-type full --align-on five"):
        extract(store, photo, "astro", replace(options, face_type="whole"))
    with pytest.raises(BadInput, match="--align-on one of"):
        extract(store, photo, "astro", replace(options, align_on="seven"))
    assert Alignment.parse(LEGACY_TEMPLATE) == Alignment("whole", "five")  # facesets from before read as such


def test_clean_dedupe_keeps_one_of_two_near_identical_crops(workspace_root, reference_photos, tmp_path, capsys):
    """Two copies of one photo (the second re-encoded with faint noise) make two crops; --dedupe keeps one."""
    import cv2

    store = store_at(workspace_root)
    photo = reference_photos["astronaut"]
    image = cv2.imread(str(photo)).astype(np.int16)
    noisy = image + np.random.default_rng(0).integers(-1, 2, image.shape, np.int16)
    copy = tmp_path / "astronaut-copy.png"
    cv2.imwrite(str(copy), np.clip(noisy, 0, 255).astype(np.uint8))
    options = ExtractOptions(size=128)
    assert extract(store, photo, "astro", options).kept == 1 and extract(store, copy, "astro", options).kept == 1
    assert main(["faceset", "clean", "astro", "--dedupe", "--workspace", str(workspace_root), "--json"]) == 0
    deduped = json.loads(capsys.readouterr().out)
    assert deduped["moved"] == 1 and deduped["kept"] == 1
    assert len(Faceset.load(workspace_root / "facesets" / "astro").faces) == 1
    assert store_at(workspace_root).ledger.entries("faceset.built")[-1].data["operation"] == "clean"


def test_clean_max_yaw_sets_aside_turned_faces(demo_workspace, demo_subjects, capsys):
    files, _ = demo_subjects
    extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", OPTIONS)
    folder = demo_workspace / "facesets" / "demo-a"
    yaws = sorted(abs(f.yaw) for f in Faceset.load(folder).faces)
    limit = float(np.median(yaws))
    assert (
        main(["faceset", "clean", "demo-a", "--max-yaw", str(limit), "--workspace", str(demo_workspace), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["moved"] == sum(y > limit for y in yaws) > 0
    assert all(abs(f.yaw) <= limit for f in Faceset.load(folder).faces)


def test_face_type_and_alignment_flags(workspace_root, reference_photos, capsys):
    """`--face-type` and `--align-on` reach the faceset header; another framing for the same faceset
    is one line and exit 2, naming the flags that match it."""
    root, photo = str(workspace_root), str(reference_photos["astronaut"])
    base = ["extract", photo, "--subject", "astro", "--workspace", root, "--size", "96"]
    assert main([*base, "--face-type", "full", "--align-on", "five", "--json"]) == 0
    assert Faceset.load(workspace_root / "facesets" / "astro").header.template == "full-face-five"
    capsys.readouterr()
    assert main([*base, "--face-type", "whole"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--face-type full --align-on five" in err[0]
    with pytest.raises(SystemExit):
        main([*base, "--face-type", "half"])


def test_the_demo_extracts_new_facesets_on_the_five_keypoints(demo_workspace, demo_subjects):
    """The demo keeps B's own mouth, so its facesets pin the mouth corners (docs/training.md, "What
    holds the demo's identity"); a faceset already in the workspace keeps its own alignment, named in
    the report, instead of the demo failing on it."""
    from faceswap.demo.run import DemoOptions, DemoRun, extract_facesets
    from faceswap.workspace import Workspace

    files, _ = demo_subjects
    run = DemoRun(Workspace(demo_workspace), DemoOptions(every=15), store=store_at(demo_workspace), files=files)
    extract(run.store, files["demo-b"].clip, "demo-b", ExtractOptions(every=15, size=128))  # an earlier demo's
    extract_facesets(run)
    assert Faceset.load(demo_workspace / "facesets" / "demo-a").header.alignment.points == "five"
    assert run.report["extract"]["demo-a"]["alignment"] == "whole-face-five"
    assert run.report["extract"]["demo-b"]["alignment"] == "whole-face-eyes-nose"
