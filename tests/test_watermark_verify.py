"""`faceswap verify` on scheme 2 outputs after sharing, on the doctor's samples, and on files marked
by scheme 1 (which must keep verifying)."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from faceswap import doctor as doctor_module
from faceswap.cli import main
from faceswap.provenance.output.sink import OutputContext, OutputSink
from faceswap.provenance.verify.verifier import LedgerView, Verifier, describe_verdict
from faceswap.workspace import Workspace

CONTEXT = OutputContext(producer="doctor", settings={"sample": "test card"})


@pytest.fixture(scope="module")
def doctor(tmp_path_factory):
    """The doctor's two samples, written through the sink into a fresh workspace."""
    root = tmp_path_factory.mktemp("doctor") / "ws"
    sink = OutputSink.for_workspace(Workspace(root))
    ledger = sink.ledger
    out = root.parent
    image = sink.write_image(out / "doctor-sample.png", doctor_module.test_card(), CONTEXT)
    frames = (doctor_module.test_card(phase=i / 8.0) for i in range(10))
    video = sink.write_video(out / "doctor-sample.mp4", frames, Fraction(25), CONTEXT)
    return {"root": root, "ledger": ledger, "image": image, "video": video, "sink": sink}


def _crop_area(image: np.ndarray, area: float) -> np.ndarray:
    h, w = image.shape[:2]
    k = np.sqrt(area)
    ch, cw = int(h * k) // 2 * 2, int(w * k) // 2 * 2
    return np.ascontiguousarray(image[(h - ch) // 3 : (h - ch) // 3 + ch, (w - cw) // 2 : (w - cw) // 2 + cw])


def _verifier(doctor) -> Verifier:
    return Verifier(LedgerView.from_ledger(doctor["ledger"]), doctor["sink"].watermarker)


def test_doctor_image_verifies_after_jpeg_50_and_a_crop_to_80_percent(doctor, tmp_path):
    image = cv2.imread(str(doctor["image"].path))
    attacked = {
        "jpeg50.jpg": (image, [cv2.IMWRITE_JPEG_QUALITY, 50]),
        "crop80.png": (_crop_area(image, 0.8), []),
        "crop80-jpeg50.jpg": (_crop_area(image, 0.8), [cv2.IMWRITE_JPEG_QUALITY, 50]),
    }
    verifier = _verifier(doctor)
    for name, (pixels, params) in attacked.items():
        cv2.imwrite(str(tmp_path / name), pixels, params)
        verdict = verifier.verify(tmp_path / name)
        assert verdict.exit_code == 0 and verdict.matched_by == "token", (name, describe_verdict(verdict))
        assert verdict.detection.token == doctor["image"].token


def test_doctor_video_verifies_after_a_crop_to_80_percent_reencoded(doctor, tmp_path):
    from media_helpers import reencode

    from faceswap.media import iter_video_frames

    source = tmp_path / "cropped-source.mp4"
    import av

    frames = [_crop_area(f.image, 0.8) for f in iter_video_frames(doctor["video"].path)]
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    attacked = reencode(source, tmp_path / "crop80-crf28.mp4", crf=28)
    verdict = _verifier(doctor).verify(attacked)
    assert verdict.exit_code == 0 and verdict.detection.token == doctor["video"].token


def test_verify_json_says_what_was_undone_and_how_the_entry_was_found(doctor, tmp_path, capsys):
    image = cv2.imread(str(doctor["image"].path))
    h, w = image.shape[:2]
    shared = cv2.copyMakeBorder(_crop_area(image, 0.6)[:, ::-1], 90, 90, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    cv2.imwrite(str(tmp_path / "shared.jpg"), shared, [cv2.IMWRITE_JPEG_QUALITY, 80])
    code = main(["verify", str(tmp_path / "shared.jpg"), "--workspace", str(doctor["root"]), "--json"])
    report = json.loads(capsys.readouterr().out)["files"][0]
    assert code == 0 and report["matched_by"] == "token" and report["ledger"] == "valid"
    det = report["detection"]
    assert det["scheme"] == 2 and det["token_from"] == "tiles" and det["token"] == doctor["image"].token
    assert det["undone"]["mirror"] is True and det["undone"]["borders"][0] >= 88
    tiles = det["layers"][0]
    assert tiles["layer"] == "tiles" and tiles["detected"] and 0 < det["false_positive_bound"] < 1e-6
    code = main(["verify", str(tmp_path / "shared.jpg"), "--workspace", str(doctor["root"])])
    line = capsys.readouterr().out
    assert code == 0 and line.count("\n") == 1 and "undone: mirror, borders" in line and "scheme 2" in line


def test_scheme_1_outputs_keep_verifying(tmp_path, t1_image, capsys):
    """A file the previous scheme wrote (rivaGan + dwtDctSvd) is still found, read and traced."""
    from legacy_outputs import write_legacy_output

    from faceswap.ledger import open_ledger

    root = tmp_path / "ws"
    entry, token = write_legacy_output(open_ledger(Workspace(root)), tmp_path / "old.png", t1_image, scheme=1)
    code = main(["verify", str(tmp_path / "old.png"), "--workspace", str(root), "--json"])
    report = json.loads(capsys.readouterr().out)["files"][0]
    assert code == 0 and report["matched_by"] == "token" and report["detection"]["token"] == token
    det = report["detection"]
    assert det["scheme"] == 1 and det["token_from"] == "v1-grid" and det["sync_agreement"] >= 30
    assert det["key_id"] is None and report["ledger_seq"] == entry.seq
