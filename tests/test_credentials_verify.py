"""Content Credentials on what the sink writes, and `faceswap verify` reading them beside the
watermark and the ledger (the standalone signing/reading is tests/test_credentials.py)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import c2pa
import cv2
import pytest
from media_helpers import make_clip, panning_frames
from test_credentials import c2pa_state, flip, mp4_boxes, png_chunks

from faceswap.cli import main
from faceswap.errors import BadInput
from faceswap.media import iter_video_frames
from faceswap.provenance.credentials import read_credentials
from faceswap.provenance.credentials.common import COMPOSITE, settings
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame
from faceswap.workspace import Workspace

CONTEXT = OutputContext(producer="test", model_fingerprint="ab" * 32, consent_record_ids=("rec-a", "rec-b"))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A workspace whose sink wrote one of each format."""
    root = tmp_path_factory.mktemp("cred") / "ws"
    out = root.parent / "out"
    sink = OutputSink.for_workspace(Workspace(root))
    clip = make_clip(root.parent / "plate.mp4", count=10)
    frames = [SinkFrame(f.image, f.pts, f.time_base) for f in iter_video_frames(clip)]
    composite = OutputContext(**{**CONTEXT.__dict__, "sources": (clip,), "source_type": "composite"})
    return {
        "root": root,
        "sink": sink,
        "png": sink.write_image(out / "still.png", panning_frames(1)[0], CONTEXT),
        "jpg": sink.write_image(out / "still.jpg", panning_frames(1)[0], CONTEXT),
        "mp4": sink.write_video(out / "swap.mp4", frames, Fraction(25), composite, audio_from=clip),
        "mov": sink.write_video(out / "swap.mov", panning_frames(4), Fraction(25), CONTEXT),
        "sequence": sink.write_sequence(out / "shot", panning_frames(3), CONTEXT),
    }


def _chunk(png: bytes, kind: bytes) -> bytes:
    """A whole PNG chunk (length, type, body, CRC) as it sits in the file."""
    _, body, offset = next(c for c in png_chunks(png) if c[0] == kind)
    return png[offset : offset + 12 + len(body)]


def _with_chunk(png: bytes, chunk: bytes) -> bytes:
    """`chunk` inserted right after IHDR."""
    ihdr = _chunk(png, b"IHDR")
    at = png.index(ihdr) + len(ihdr)
    return png[:at] + chunk + png[at:]


def _verify(capsys, root, *paths, extra=()):
    code = main(["verify", *map(str, paths), "--workspace", str(root), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)["files"]


@pytest.mark.parametrize("kind", ["png", "jpg", "mp4", "mov", "sequence"])
def test_every_written_file_carries_credentials_c2pa_trusts(outputs, kind, capsys):
    written = outputs[kind]
    anchor = outputs["sink"].credentials.root_pem
    files = sorted(written.path.glob("*.png")) if kind == "sequence" else [written.path]
    assert files and all(c2pa_state(f, anchor) == "Trusted" for f in files)  # c2pa's own Reader, not ours
    labels = written.entry.data["credentials"]["labels"]
    assert len(labels) == len(files)
    code, verdicts = _verify(capsys, outputs["root"], *files)
    assert code == 0
    for verdict in verdicts:
        credentials = verdict["credentials"]
        assert credentials["state"] == "trusted" and credentials["token"] == written.token
        assert verdict["detection"]["token"] == written.token and verdict["credentials_problem"] is None
        assert credentials["provenance"]["seq"] == written.entry.seq
        assert credentials["provenance"]["prev_hash"] == written.entry.prev_hash


def test_a_swap_into_footage_is_composite_and_names_its_input(outputs):
    report = read_credentials(outputs["mp4"].path, outputs["sink"].credentials.root_pem)
    assert report.digital_source_type == COMPOSITE
    assert [i["title"] for i in report.ingredients] == ["plate.mp4"]


@pytest.mark.parametrize("kind", ["png", "mp4"])
def test_flipped_media_bytes_make_verify_exit_3(outputs, kind, tmp_path, capsys):
    copy = tmp_path / outputs[kind].path.name
    copy.write_bytes(outputs[kind].path.read_bytes())
    data = copy.read_bytes()
    if kind == "png":  # edit pixels and keep the manifest: the file still decodes, its hash differs
        image = cv2.imread(str(copy))
        image[10:20, 10:20] = 255 - image[10:20, 10:20]
        copy.write_bytes(_with_chunk(cv2.imencode(".png", image)[1].tobytes(), _chunk(data, b"caBX")))
    else:
        _, offset, size = next(b for b in mp4_boxes(data) if b[0] == b"mdat")
        flip(copy, offset + size // 2)
    code, verdicts = _verify(capsys, outputs["root"], copy)
    assert code == 3 and "Content Credentials invalid" in verdicts[0]["credentials_problem"]


def test_a_manifest_from_another_output_is_a_mismatch(outputs, tmp_path, capsys):
    """The jpg's manifest store pasted into the png's place: c2pa calls it invalid, and even a
    valid one would name another token."""
    sink = outputs["sink"]
    other = sink.write_image(tmp_path / "other.png", panning_frames(2)[1], CONTEXT)
    theirs, ours = other.path.read_bytes(), outputs["png"].path.read_bytes()
    without = ours.replace(_chunk(ours, b"caBX"), b"")
    pasted = tmp_path / "pasted.png"
    pasted.write_bytes(_with_chunk(without, _chunk(theirs, b"caBX")))
    code, verdicts = _verify(capsys, outputs["root"], pasted)
    assert code == 3 and verdicts[0]["credentials"]["token"] == other.token
    assert verdicts[0]["detection"]["token"] == outputs["png"].token


def test_a_stripped_manifest_still_verifies_by_watermark(outputs, tmp_path, capsys):
    stripped = tmp_path / "shared.png"
    cv2.imwrite(str(stripped), cv2.imread(str(outputs["png"].path)))  # re-encoding drops the caBX chunk
    code, verdicts = _verify(capsys, outputs["root"], stripped)
    assert code == 0 and verdicts[0]["credentials"]["state"] == "absent"
    assert verdicts[0]["matched_by"] == "token" and verdicts[0]["ledger_seq"] == outputs["png"].entry.seq


def test_another_trust_anchor_makes_our_credentials_untrusted(outputs, tmp_path, capsys):
    from faceswap.provenance.credentials import load_or_create_identity, write_trust_anchor

    stranger = write_trust_anchor(load_or_create_identity(tmp_path / "stranger"), tmp_path / "stranger.pem")
    code, verdicts = _verify(capsys, outputs["root"], outputs["png"].path, extra=("--trust-anchor", str(stranger)))
    assert code == 3 and verdicts[0]["credentials"]["state"] == "valid"
    ours = tmp_path / "ours.pem"
    assert main(["keys", "trust-anchor", str(ours), "--workspace", str(outputs["root"])]) == 0
    capsys.readouterr()
    code, _ = _verify(capsys, outputs["root"], outputs["png"].path, extra=("--trust-anchor", str(ours)))
    assert code == 0


def test_a_ledger_export_carries_the_trust_anchor(outputs, tmp_path, capsys):
    export = tmp_path / "ledger.jsonl"
    assert main(["ledger", "export", "--workspace", str(outputs["root"]), str(export)]) == 0
    capsys.readouterr()
    code = main(["verify", str(outputs["mp4"].path), "--ledger", str(export), "--workspace", str(tmp_path), "--json"])
    verdict = json.loads(capsys.readouterr().out)["files"][0]
    assert code == 0 and verdict["credentials"]["state"] == "trusted"


def test_a_signing_failure_leaves_no_file_and_no_entry(outputs, tmp_path):
    from dataclasses import replace

    sink = outputs["sink"]
    broken = OutputSink(sink.ledger, replace(sink.credentials, key_pem=b"not a key"), sink.marks)
    before = len(sink.ledger.entries("output.written"))
    with pytest.raises(BadInput, match="Content Credentials signing failed"):
        broken.write_image(tmp_path / "never.png", panning_frames(1)[0], CONTEXT)
    assert list(tmp_path.iterdir()) == [] and len(sink.ledger.entries("output.written")) == before


def test_the_root_is_pinned_in_the_ledger(outputs):
    entries = outputs["sink"].ledger.entries("credentials.created")
    assert len(entries) == 1
    assert entries[0].data["root_fingerprint"] == outputs["sink"].credentials.root_fingerprint
    assert c2pa.__name__  # c2pa-python is a real dependency, imported by the reader
    assert settings()["verify"]["remote_manifest_fetch"] is False
    assert Path(outputs["root"] / "keys" / "c2pa" / "signer.key").stat().st_mode & 0o777 == 0o600
