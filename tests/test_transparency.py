"""Every output carries its transparency-log proof: a real sink output traced with nothing but the
file, checkpoints, proofs and the trust anchor; a log rewritten with the workspace's own key is
caught by the outputs it made (exit 3, the failure named)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from media_helpers import panning_frames
from test_ledger import SqliteStorage
from test_tlog import rewrite_without

from faceswap.cli import main
from faceswap.ledger import RegistrarKey, open_ledger
from faceswap.ledger.note import Checkpoint, sign_note
from faceswap.ledger.tlog import leaf_text
from faceswap.provenance.credentials import read_credentials
from faceswap.provenance.output.sink import OutputContext, OutputSink
from faceswap.provenance.verify.transparency import INVALID, PROVEN, check_file_proof
from faceswap.workspace import Workspace

CONTEXT = OutputContext(producer="test", model_fingerprint="cd" * 32, consent_record_ids=("rec-a", "rec-b"))
SIZE = (640, 360)


def _frame(i: int = 0):
    return panning_frames(4, SIZE)[i]


def _pad(ledger, rows: int) -> None:
    """Notes until the ledger holds `rows` entries, so the next output lands at seq rows + 1."""
    while len(ledger.entries()) < rows:
        ledger.append("ledger.note", {"pad": len(ledger.entries())})


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A workspace whose sink wrote a PNG, a JPEG and a PNG sequence, then went on logging."""
    base = tmp_path_factory.mktemp("tlog")
    workspace = Workspace(base / "ws")
    sink = OutputSink.for_workspace(workspace)
    outputs = {
        "png": sink.write_image(base / "out" / "a.png", _frame(0), CONTEXT),
        "jpg": sink.write_image(base / "out" / "b.jpg", _frame(1), CONTEXT),
        "sequence": sink.write_sequence(base / "out" / "shot", panning_frames(2, SIZE), CONTEXT),
    }
    for i in range(3):
        sink.ledger.append("ledger.note", {"later": i})
    anchor = base / "root.pem"
    anchor.write_bytes(sink.credentials.root_pem)
    return {"base": base, "workspace": workspace, "sink": sink, "outputs": outputs, "anchor": anchor}


def _files(written) -> list[Path]:
    return sorted(written.path.glob("*.png")) if written.path.is_dir() else [written.path]


@pytest.mark.parametrize("kind", ["png", "jpg", "sequence"])
def test_every_output_carries_a_proof_of_its_own_entry(made, kind):
    written = made["outputs"][kind]
    tree = made["sink"].ledger.tree.sync(made["sink"].ledger.entries())
    for path in _files(written):
        report = read_credentials(path, made["anchor"].read_bytes())
        proof = check_file_proof(str(path), report)
        assert proof.state == PROVEN, proof.problem
        assert report.transparency["leaf"] == leaf_text(written.entry)  # the log's leaf, as the file states it
        assert proof.leaf_index == written.entry.seq - 1 and proof.head.size == written.entry.seq
        assert proof.head.root == tree.root(written.entry.seq)  # the head the ledger had when it was made


def _no_workspace(made, tmp_path) -> list[str]:
    """Options that leave the verifier without any ledger: an empty workspace elsewhere."""
    return ["--workspace", str(tmp_path / "nothing-here"), "--trust-anchor", str(made["anchor"]), "--json"]


def _ledger_cli(made, *args: str) -> list[str]:
    return ["ledger", *args, "--workspace", str(made["workspace"].root)]


def test_an_output_is_traced_into_a_later_checkpoint_with_nothing_but_files(made, tmp_path, capsys):
    written = made["outputs"]["png"]
    checkpoint, proof = tmp_path / "checkpoint", tmp_path / "proof.json"
    assert _cli(capsys, *_ledger_cli(made, "checkpoint", "--out", str(checkpoint)))[0] == 0
    assert _cli(capsys, *_ledger_cli(made, "prove", str(written.entry.seq), "--out", str(proof)))[0] == 0

    code, out, _ = _cli(
        capsys, "verify", str(written.path), "--checkpoint", str(checkpoint), *_no_workspace(made, tmp_path)
    )
    report = json.loads(out)
    assert code == 3 and report["ledger"] is None
    assert report["files"][0]["transparency"]["state"] == "proven"
    assert [link["status"] for link in report["transparency"]["links"]] == ["unproven"]

    args = ["--checkpoint", str(checkpoint), "--proof", str(proof), *_no_workspace(made, tmp_path)]
    code, out, _ = _cli(capsys, "verify", str(written.path), *args)
    report = json.loads(out)
    assert code == 0, report
    assert report["transparency"]["links"][0]["status"] == "linked"
    assert report["transparency"]["links"][0]["required"] is True


def test_the_files_own_checkpoint_needs_no_proof(made, tmp_path, capsys):
    written = made["outputs"]["jpg"]
    own = tmp_path / "own"
    own.write_text(read_credentials(written.path).transparency["checkpoint"])
    code, out, _ = _cli(capsys, "verify", str(written.path), "--checkpoint", str(own), *_no_workspace(made, tmp_path))
    assert code == 0 and json.loads(out)["transparency"]["links"][0]["status"] == "linked"
    code, out, _ = _cli(
        capsys,
        "verify",
        str(written.path),
        "--checkpoint",
        str(own),
        "--workspace",
        str(tmp_path / "none"),
        "--trust-anchor",
        str(made["anchor"]),
    )
    assert code == 0 and "logged as leaf" in out and "LINKED" in out


def test_an_older_checkpoint_is_linked_through_the_logs_proofs(made, tmp_path, capsys):
    """A checkpoint published before the file: today's log extends it (consistency) and holds the
    file (inclusion), so both lie on one history."""
    written = made["outputs"]["sequence"]
    older = tmp_path / "older"
    older.write_text(read_credentials(_files(made["outputs"]["png"])[0]).transparency["checkpoint"])
    consistency, inclusion = tmp_path / "consistency.json", tmp_path / "inclusion.json"
    assert _cli(capsys, *_ledger_cli(made, "consistency", str(older), "--out", str(consistency)))[0] == 0
    assert _cli(capsys, *_ledger_cli(made, "prove", str(written.entry.seq), "--out", str(inclusion)))[0] == 0
    frame = _files(written)[0]
    args = ["--checkpoint", str(older), "--proof", str(consistency), "--proof", str(inclusion)]
    code, out, _ = _cli(capsys, "verify", str(frame), *args, *_no_workspace(made, tmp_path))
    assert code == 0, out
    assert {link["status"] for link in json.loads(out)["transparency"]["links"]} == {"linked"}


def test_several_outputs_are_checked_against_each_other(made, tmp_path, capsys):
    paths = [str(made["outputs"][k].path) for k in ("png", "jpg")]
    code, out, _ = _cli(capsys, "verify", *paths, *_no_workspace(made, tmp_path))
    links = json.loads(out)["transparency"]["links"]
    assert code == 0 and len(links) == 1 and links[0]["status"] == "unproven" and not links[0]["required"]


def test_tampered_proofs_in_credentials_are_refused(made, tmp_path):
    """What someone with the Content Credentials key but not the registrar key could state."""
    path = made["outputs"]["png"].path
    report = read_credentials(path, made["anchor"].read_bytes())
    good = report.transparency
    stranger = RegistrarKey.generate()
    origin = good["checkpoint"].split("\n", 1)[0]
    body = Checkpoint.parse(good["checkpoint"].split("\n\n")[0] + "\n")
    stranger_note = sign_note(body.text, origin, stranger.public.raw, lambda d: base64.b64decode(stranger.sign(d)))
    stranger_key = good["log_key"].rsplit("+", 2)[0]
    flipped = base64.b64encode(
        bytes([base64.b64decode(good["inclusion_path"][0])[0] ^ 1]) + base64.b64decode(good["inclusion_path"][0])[1:]
    ).decode()
    variants = {
        "another token": {"leaf": good["leaf"].replace(report.token, "0" * 12)},
        "a path hash changed": {"inclusion_path": [flipped, *good["inclusion_path"][1:]]},
        "another index": {"leaf_index": good["leaf_index"] - 1},
        "a forged signature": {"checkpoint": good["checkpoint"][:-6] + "AAAA=\n"},
        "another key": {"checkpoint": stranger_note, "log_key": stranger_key},
        "another root": {"leaf": good["leaf"].replace(json.loads(good["leaf"])["claim"]["credentials_root"], "e" * 64)},
    }
    assert check_file_proof(str(path), report).state == PROVEN
    for why, change in variants.items():
        proof = check_file_proof(str(path), replace(report, transparency={**good, **change}))
        assert proof.state == INVALID, why


def test_a_file_whose_entry_was_removed_from_a_rewritten_log_is_exit_3(tmp_path, capsys):
    """The attacker SECURITY.md names (workspace and state folder) drops an output's entry and
    re-signs the rest with the workspace's own key: the ledger verifies on its own, but the output
    in the world carries the head it was appended to."""
    workspace = Workspace(tmp_path / "ws")
    sink = OutputSink.for_workspace(workspace)
    gone = sink.write_image(tmp_path / "gone.png", _frame(0), CONTEXT)
    sink.write_image(tmp_path / "kept.png", _frame(1), CONTEXT)
    anchor = tmp_path / "root.pem"
    anchor.write_bytes(sink.credentials.root_pem)
    own = tmp_path / "own-checkpoint"
    own.write_text(read_credentials(gone.path).transparency["checkpoint"])

    rewrite_without(SqliteStorage(workspace), sink.ledger, gone.entry.seq, sink.ledger.key)
    rewritten = OutputSink.for_workspace(workspace)
    assert rewritten.ledger.verify() is None
    rewritten.write_image(tmp_path / "after.png", _frame(2), CONTEXT)
    checkpoint, proof = tmp_path / "checkpoint", tmp_path / "proof.json"
    ledger = ["--workspace", str(workspace.root)]
    assert _cli(capsys, "ledger", "checkpoint", "--out", str(checkpoint), *ledger)[0] == 0
    assert _cli(capsys, "ledger", "prove", str(gone.entry.seq), "--out", str(proof), *ledger)[0] == 0

    verify = ["verify", str(gone.path), "--checkpoint", str(checkpoint), "--workspace", str(tmp_path / "none")]
    verify += ["--trust-anchor", str(anchor)]
    code, out, _ = _cli(capsys, *verify)
    assert code == 3 and "NOT LINKED" in out
    code, out, _ = _cli(capsys, *verify, "--proof", str(proof))
    assert code == 3 and "REWRITTEN" in out and "its entry was removed or replaced" in out
    code, _, err = _cli(capsys, "ledger", "consistency", str(own), *ledger)
    assert code == 1 and "the log was rewritten after that checkpoint was signed" in err
    code, out, _ = _cli(capsys, "verify", str(gone.path), *ledger)  # the rewritten workspace itself
    assert code == 3 and "the ledger no longer has the head this file carries" in out


def test_two_outputs_alone_prove_a_rewrite_between_them(tmp_path, capsys):
    """No ledger, no checkpoint, no proof, no watermark secret (only the public trust anchor): two
    outputs whose heads share complete subtrees, or have one size, must agree on them."""
    workspace = Workspace(tmp_path / "ws")
    sink = OutputSink.for_workspace(workspace)
    _pad(sink.ledger, 4)
    before = sink.write_image(tmp_path / "before.png", _frame(0), CONTEXT)  # leaf 4: knows subtree [0, 4)
    assert before.entry.seq == 5
    rewrite_without(SqliteStorage(workspace), sink.ledger, 3, sink.ledger.key)
    again = OutputSink.for_workspace(workspace)
    _pad(again.ledger, 4)
    same_size = again.write_image(tmp_path / "same-size.png", _frame(1), CONTEXT)
    _pad(again.ledger, 6)
    later = again.write_image(tmp_path / "later.png", _frame(2), CONTEXT)  # leaf 6: knows [0, 4) too
    assert (same_size.entry.seq, later.entry.seq) == (5, 7)
    anchor = tmp_path / "root.pem"  # public: whose outputs these are, not a secret
    anchor.write_bytes(again.credentials.root_pem)
    for other, why in ((same_size, "two signed heads of tree size 5"), (later, "disagree on entries 1..4")):
        args = ["--workspace", str(tmp_path / "x"), "--trust-anchor", str(anchor)]
        code, out, _ = _cli(capsys, "verify", str(before.path), str(other.path), *args)
        assert code == 3 and why in out, out


def test_outputs_on_a_postgresql_ledger_carry_proofs(tmp_path, postgres_url):
    workspace = Workspace(tmp_path / "ws", ledger_url=postgres_url)
    sink = OutputSink.for_workspace(workspace)
    written = sink.write_image(tmp_path / "pg.png", _frame(0), CONTEXT)
    proof = check_file_proof(str(written.path), read_credentials(written.path, sink.credentials.root_pem))
    assert proof.state == PROVEN and proof.head.size == written.entry.seq
    assert proof.head.root == open_ledger(workspace).tree.sync(open_ledger(workspace).entries()).root(written.entry.seq)


def test_a_copy_without_credentials_cannot_be_traced_into_a_checkpoint(made, tmp_path, capsys):
    import cv2

    stripped = tmp_path / "shared.png"
    cv2.imwrite(str(stripped), cv2.imread(str(made["outputs"]["png"].path)))  # pixels kept, manifest gone
    checkpoint = tmp_path / "checkpoint"
    assert _cli(capsys, *_ledger_cli(made, "checkpoint", "--out", str(checkpoint)))[0] == 0
    code, out, _ = _cli(
        capsys, "verify", str(stripped), "--checkpoint", str(checkpoint), *_no_workspace(made, tmp_path)
    )
    report = json.loads(out)
    assert code == 3 and report["files"][0]["transparency"]["state"] == "absent"
    assert "no file carries a transparency proof" in report["transparency"]["problems"][0]


def test_a_reader_that_stops_reading_gets_no_traceback(made, capsys, monkeypatch):
    """`faceswap ledger prove 4 | head -c 10`: the pipe closes before the proof is printed."""
    import os
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    closed = open(write_end, "w")  # noqa: SIM115 - the CLI's stdout for this call
    monkeypatch.setattr(sys, "stdout", closed)
    seq = str(made["outputs"]["png"].entry.seq)
    assert main(["ledger", "prove", seq, "--workspace", str(made["workspace"].root)]) == 141
    monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err
