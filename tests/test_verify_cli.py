"""`faceswap verify`: marked / unmarked / tampered / unreadable, with and without a workspace."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from fractions import Fraction

import cv2
import pytest
from media_helpers import make_clip, reencode

from faceswap.cli import main
from faceswap.ledger import open_ledger
from faceswap.media import iter_video_frames
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame
from faceswap.workspace import Workspace


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, registered_template):
    """A workspace (with consent records) holding one marked image and one marked video."""
    import shutil

    root = tmp_path_factory.mktemp("verify") / "ws"
    shutil.copytree(registered_template, root)
    ledger = open_ledger(Workspace(root))
    records = [e.data["record_id"] for e in ledger.entries("consent.registered")]
    sink = OutputSink.for_workspace(Workspace(root), ledger)
    context = OutputContext("test", model_fingerprint="cd" * 32, consent_record_ids=tuple(records))
    from faceswap.faces.samples import insightface_t1
    from faceswap.media import read_image

    image = sink.write_image(root.parent / "marked.png", read_image(insightface_t1()), context)
    source = make_clip(root.parent / "source.mp4", count=10)
    frames = (SinkFrame(f.image, f.pts, f.time_base) for f in iter_video_frames(source))
    video = sink.write_video(root.parent / "marked.mp4", frames, Fraction(25), context, audio_from=source)
    return {"root": root, "image": image, "video": video, "records": records}


def _verify_json(capsys, *args) -> tuple[int, dict]:
    code = main(["verify", *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_marked_files_verify_with_ledger_consent_and_model(outputs, capsys):
    code, report = _verify_json(capsys, outputs["image"].path, outputs["video"].path, "--workspace", outputs["root"])
    assert code == 0
    image, video = report["files"]
    assert image["marked"] and image["matched_by"] == "token" and image["ledger"] == "valid"
    assert image["detection"]["token"] == outputs["image"].token
    assert video["media"] == "video" and video["detection"]["token"] == outputs["video"].token
    assert image["model_fingerprint"] == "cd" * 32
    assert [c["status"] for c in image["consent"]] == ["active", "active"]


def test_revoked_consent_shows_in_verify(outputs, tmp_path, capsys):
    import shutil

    from consent_helpers import store_at

    root = tmp_path / "ws"
    shutil.copytree(outputs["root"], root)
    store_at(root).revoke("astro", "withdrawn")
    code, report = _verify_json(capsys, outputs["image"].path, "--workspace", root)
    assert code == 0
    assert "revoked" in [c["status"] for c in report["files"][0]["consent"]]


def test_reencoded_video_still_verifies(outputs, tmp_path, capsys):
    # CRF 23, a platform's usual re-encode. At CRF 28 this 10-frame synthetic clip reads only on its
    # intra frame (z 8.5-8.7 against 8.1 with a secret key's 16 sign patterns counted; token lost 1 in 6):
    # docs/watermark.md's table has the longer clips.
    attacked = reencode(outputs["video"].path, tmp_path / "crf23.mp4", crf=23)
    code, report = _verify_json(capsys, attacked, "--workspace", outputs["root"])
    assert code == 0 and report["files"][0]["ledger"] == "valid"


def test_cropped_image_is_traced_by_its_token(outputs, tmp_path, capsys):
    image = cv2.imread(str(outputs["image"].path))
    h, w = image.shape[:2]
    crop = image[int(h * 0.03) : int(h * 0.97), int(w * 0.03) : int(w * 0.97)]
    cv2.imwrite(str(tmp_path / "crop.png"), crop)
    code, report = _verify_json(capsys, tmp_path / "crop.png", "--workspace", outputs["root"])
    assert code == 0 and report["files"][0]["matched_by"] == "token"  # scheme 2's tiles survive the crop


def test_unmarked_file_exits_1(outputs, capsys):
    from faceswap.faces.samples import skimage_astronaut

    code, report = _verify_json(capsys, skimage_astronaut(), "--workspace", outputs["root"])
    assert code == 1 and report["files"][0]["marked"] is False


def test_tampered_ledger_entry_exits_3(outputs, tmp_path, capsys):
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(outputs["root"], root)
    conn = sqlite3.connect(root / "ledger.sqlite")
    seq, body = conn.execute(
        "SELECT seq, body FROM ledger WHERE kind = 'output.written' ORDER BY seq LIMIT 1"
    ).fetchone()
    conn.execute("UPDATE ledger SET body = ? WHERE seq = ?", (body.replace('"producer":"test"', '"producer":"x"'), seq))
    conn.commit()
    conn.close()
    code, report = _verify_json(capsys, outputs["image"].path, "--workspace", root)
    assert code == 3 and report["files"][0]["ledger"] == "tampered"


def test_marked_but_unknown_to_this_ledger_exits_3(outputs, tmp_path, capsys, t1_image):
    """A verifier bundle exported before an output was written reads its mark, but holds no entry."""
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(outputs["root"], root)
    bundle = tmp_path / "bundle.jsonl"
    assert main(["ledger", "export", str(bundle), "--with-watermark-keys", "--workspace", str(root)]) == 0
    later = OutputSink.for_workspace(Workspace(root)).write_image(tmp_path / "later.png", t1_image, OutputContext("t"))
    capsys.readouterr()
    code, report = _verify_json(capsys, later.path, "--ledger", bundle, "--workspace", tmp_path / "none")
    assert code == 3 and report["files"][0]["ledger"] == "missing" and report["files"][0]["marked"]


def test_another_workspace_cannot_read_the_mark(outputs, tmp_path, capsys):
    """Its own secret is not ours: the mark is not computable there, so the file reads NOT MARKED."""
    open_ledger(Workspace(tmp_path / "other"))
    code, report = _verify_json(capsys, outputs["image"].path, "--workspace", tmp_path / "other")
    assert code == 1 and not report["files"][0]["marked"]


def test_export_verifies_without_the_workspace(outputs, tmp_path, capsys):
    """A plain export traces an unchanged output by its trusted Content Credentials, but cannot read the
    keyed mark of a shared copy; a verifier bundle (the export with the watermark secret) can."""
    export, bundle = tmp_path / "ledger.jsonl", tmp_path / "bundle.jsonl"
    assert main(["ledger", "export", "--workspace", str(outputs["root"]), str(export)]) == 0
    assert main(["ledger", "export", "--workspace", str(outputs["root"]), str(bundle), "--with-watermark-keys"]) == 0
    assert export.stat().st_mode & 0o777 == 0o644 and bundle.stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    code, report = _verify_json(capsys, outputs["video"].path, "--ledger", export, "--workspace", tmp_path / "none")
    found = report["files"][0]
    assert code == 0 and found["ledger"] == "valid" and found["matched_by"] == "credentials" and not found["marked"]
    shared = reencode(outputs["video"].path, tmp_path / "shared.mp4", crf=23)
    code, report = _verify_json(capsys, shared, "--ledger", export, "--workspace", tmp_path / "none")
    assert code == 1 and not report["files"][0]["marked"] and report["files"][0]["unreadable_keys"]
    code, report = _verify_json(capsys, shared, "--ledger", bundle, "--workspace", tmp_path / "none")
    assert code == 0 and report["files"][0]["matched_by"] == "token" and report["files"][0]["ledger"] == "valid"


def test_unreadable_and_directories(outputs, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(outputs["video"].path.read_bytes()[:2000])
    assert main(["verify", str(bad), "--workspace", str(outputs["root"])]) == 2
    folder = tmp_path / "folder" / "nested"
    folder.mkdir(parents=True)
    (folder / "copy.png").write_bytes(outputs["image"].path.read_bytes())
    (folder / "notes.txt").write_text("ignored")
    capsys.readouterr()
    code, report = _verify_json(capsys, tmp_path / "folder", "--workspace", outputs["root"])
    assert code == 0 and [f["path"].rsplit("/", 1)[-1] for f in report["files"]] == ["copy.png"]


def test_verify_does_not_import_torch(outputs):
    code = (
        "import sys; from faceswap.cli import main\n"
        f"rc = main(['verify', {str(outputs['image'].path)!r}, '--workspace', {str(outputs['root'])!r}])\n"
        "assert 'torch' not in sys.modules and 'dlib' not in sys.modules, 'heavy import'\n"
        "sys.exit(rc)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.mark.slow
def test_doctor_writes_two_samples_that_verify(tmp_path, capsys):
    assert main(["doctor", "--workspace", str(tmp_path / "ws"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples_verified"] and set(report["samples"]) == {"doctor-sample.png", "doctor-sample.mp4"}
    from faceswap.media import probe_video

    info = probe_video(tmp_path / "ws" / "doctor" / "doctor-sample.mp4")
    assert (info.width, info.height, info.frames, info.has_audio) == (1280, 720, 50, True)


def test_expired_consent_shows_in_verify(outputs):
    """A record past its expiry reads 'expired' (and active the day before), from the ledger alone."""
    from datetime import date, timedelta

    from faceswap.provenance.verify.verifier import LedgerView, Verifier

    view = LedgerView.from_ledger(open_ledger(Workspace(outputs["root"]), writable=False), Workspace(outputs["root"]).keys_dir)
    expiries = [date.fromisoformat(e.data["expires_at"]) for e in view.entries if e.kind == "consent.registered"]
    on_last_day = Verifier(view, today=min(expiries)).verify(outputs["image"].path)
    after = Verifier(view, today=max(expiries) + timedelta(days=1)).verify(outputs["image"].path)
    assert [c["status"] for c in on_last_day.consent] == ["active", "active"]
    assert [c["status"] for c in after.consent] == ["expired", "expired"]


def test_a_mark_without_its_token_is_traced_by_perceptual_hash(outputs):
    """When the mark is found but its token is not read, the frame's perceptual hash names the
    entry; a different picture with the same evidence is not credited to it."""
    from dataclasses import replace

    from faceswap.faces.samples import skimage_astronaut
    from faceswap.media import read_image
    from faceswap.provenance.phash import phash
    from faceswap.provenance.verify.verifier import LedgerView, Verdict, Verifier

    verifier = Verifier(LedgerView.from_ledger(open_ledger(Workspace(outputs["root"]), writable=False), Workspace(outputs["root"]).keys_dir))
    read = verifier.verify(outputs["image"].path)
    assert read.marked and read.detection.token == outputs["image"].token
    tokenless = replace(read.detection, token=None)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", read_image(outputs["image"].path), [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 1)
    same = Verdict(outputs["image"].path, "image", detection=tokenless)
    verifier._attach_entry(same, [phash(jpeg)])
    assert same.matched_by == "perceptual-hash" and same.ledger == "valid"
    assert same.entry.data["token"] == outputs["image"].token
    other = Verdict(outputs["image"].path, "image", detection=tokenless)
    verifier._attach_entry(other, [phash(read_image(skimage_astronaut()))])
    assert other.entry is None and other.ledger == "missing"


def test_an_unmarked_look_alike_is_named_as_similar(outputs, tmp_path, capsys):
    """A copy blurred until its mark is gone is NOT MARKED, and verify says which output it resembles."""
    blurred = cv2.GaussianBlur(cv2.imread(str(outputs["image"].path)), (0, 0), 6)
    cv2.imwrite(str(tmp_path / "blurred.png"), blurred)
    code, report = _verify_json(capsys, tmp_path / "blurred.png", "--workspace", outputs["root"])
    found = report["files"][0]
    assert code == 1 and not found["marked"]
    assert found["similar_output"]["token"] == outputs["image"].token
    assert found["similar_output"]["phash_distance"] <= 10
    assert main(["verify", str(tmp_path / "blurred.png"), "--workspace", str(outputs["root"])]) == 1
    assert "looks like ledger output seq" in capsys.readouterr().out
