"""The consent watch, the ledger's revocation rule, staging and the one workspace object: the parts
every job shares (the jobs themselves are in test_revocation_jobs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from consent_helpers import store_at

from faceswap.consent.gate import ConsentGate, ConsentRefused
from faceswap.consent.watch import ConsentWatch
from faceswap.errors import ConsentDenied
from faceswap.ledger import open_ledger
from faceswap.ledger.chain import RecordRevoked
from faceswap.staging import Staging, sweep
from faceswap.workspace import STATE_ENV, Workspace


def _output_naming(record_ids: list[str]) -> dict:
    return {"token": "0" * 12, "producer": "test", "consent_record_ids": record_ids, "sha256": "0" * 64}


def test_the_watch_sees_a_revocation_from_another_process_within_its_interval(workspace_root):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    grant = gate.authorize("astro", "hanks", "evaluation")
    watch = ConsentWatch(gate, grant, interval=0.2)
    watch.interrupt = False  # this thread is the test, not a job to interrupt
    with watch:
        watch.poll()
        revoke = [sys.executable, "-m", "faceswap.cli", "consent", "revoke", "hanks", "--reason", "withdrawn"]
        subprocess.run([*revoke, "--workspace", str(workspace_root)], check=True, capture_output=True)
        revoked_at = time.monotonic()
        while watch.refusal is None and time.monotonic() - revoked_at < 5:
            time.sleep(0.02)
        seen_after = time.monotonic() - revoked_at
        with pytest.raises(ConsentRefused, match=f"consent record {grant.record_for('hanks').record_id} was revoked"):
            watch.poll()
    assert seen_after < 1.0


def test_a_job_that_does_not_reach_a_boundary_is_interrupted_where_it_is(workspace_root):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    grant = gate.authorize("astro", "hanks", "evaluation")
    with pytest.raises(ConsentRefused, match="revoked"), ConsentWatch(gate, grant, interval=0.1):
        store_at(workspace_root).revoke("astro", "withdrawn")
        revoked_at = time.monotonic()
        while time.monotonic() - revoked_at < 10:  # a long step that never polls
            sum(range(1000))
    assert time.monotonic() - revoked_at < 3.0


def test_the_final_check_uses_the_transactions_rows_and_wins_over_a_stale_watch(workspace_root):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    grant = gate.authorize("astro", "hanks", "evaluation")
    with ConsentWatch(gate, grant, interval=3600) as watch:
        store_at(workspace_root).revoke("astro", "withdrawn")
        watch.poll()  # the thread has not looked yet
        with pytest.raises(ConsentRefused, match="revoked"):
            store.ledger.append("output.written", _output_naming(["other"]), guard=watch.final)
        with pytest.raises(ConsentRefused):
            watch.poll()  # the refusal is kept: the job stops at its next boundary too
    assert store.ledger.entries()[-1].kind == "consent.revoked"


def test_one_subjects_record_is_watched_for_extraction(workspace_root):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    _, granted = gate.authorize_subject("astro")
    gate.recheck(granted)
    store.revoke("astro", "withdrawn")
    with pytest.raises(ConsentRefused, match=f"consent record {granted.record_id} was revoked"):
        gate.recheck(granted)


def test_the_ledger_refuses_any_entry_naming_a_record_after_its_revocation(workspace_root):
    """Whatever a caller's guard decides (here: none), the revocation appended first wins."""
    store = store_at(workspace_root)
    record_id = store.load().for_subject("hanks")[0].record_id
    store.ledger.append("output.written", _output_naming([record_id]))
    store.revoke("hanks", "withdrawn")
    revoked_seq = store.ledger.entries()[-1].seq
    for kind, data in (
        ("output.written", _output_naming(["x", record_id])),
        ("model.trained", {"fingerprint": "f", "consent_record_ids": [record_id, "y"]}),
        ("faceset.built", {"subject_id": "hanks", "record_id": record_id, "faceset_sha256": "0" * 64}),
    ):
        with pytest.raises(RecordRevoked, match=rf"{record_id} was revoked \(ledger seq {revoked_seq}\)"):
            store.ledger.append(kind, data)
    assert isinstance(RecordRevoked("x"), ConsentDenied)
    assert store.ledger.entries()[-1].seq == revoked_seq
    store.ledger.append("output.written", _output_naming(["another-record"]))  # other records are unaffected


def test_staged_files_move_in_with_their_entry_and_go_back_when_it_is_refused(workspace_root):
    ws = Workspace(workspace_root)
    ledger = open_ledger(ws)
    final = workspace_root / "models" / "m" / "model.safetensors"
    with Staging.open(ws, "test") as staging:
        (staging.folder / "w").write_bytes(b"first")
        staging.commit(ledger, "output.written", _output_naming([]), [(staging.folder / "w", final)])
    assert final.read_bytes() == b"first"
    seq = ledger.entries()[-1].seq

    def refuse(_rows) -> None:
        raise ConsentRefused("no")

    with Staging.open(ws, "test") as staging:
        (staging.folder / "w").write_bytes(b"second")
        (staging.folder / "d").mkdir()
        (staging.folder / "d" / "crop.png").write_bytes(b"crop")
        moves = [(staging.folder / "w", final), (staging.folder / "d", workspace_root / "facesets" / "x")]
        with pytest.raises(ConsentRefused):
            staging.commit(ledger, "output.written", _output_naming([]), moves, guard=refuse)
        occupied = workspace_root / "facesets" / "x" / "someone-elses.png"
        occupied.parent.mkdir(parents=True)
        occupied.write_bytes(b"theirs")
        with pytest.raises(OSError):  # the second rename fails inside the transaction: the first is undone
            staging.commit(ledger, "output.written", _output_naming([]), moves)
    assert final.read_bytes() == b"first" and occupied.read_bytes() == b"theirs"
    assert not (occupied.parent / "crop.png").exists() and ledger.entries()[-1].seq == seq
    assert list(ws.staging_dir.iterdir()) == []


def test_staging_of_killed_processes_is_swept_and_live_ones_kept(workspace_root):
    ws = Workspace(workspace_root)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = Staging.open(ws, "extract").folder.name.split(".")[1]
    killed = ws.staging_dir / f"extract.{host}.{dead.pid}.00ff"
    other_machine = ws.staging_dir / f"extract.elsewhere.{dead.pid}.00ff"
    for folder in (killed, other_machine):
        (folder / "faceset").mkdir(parents=True)
        (folder / "faceset" / "crop.png").write_bytes(b"crop")
    assert sweep(ws) == 1
    remaining = sorted(p.name for p in ws.staging_dir.iterdir())
    assert killed.name not in remaining and other_machine.name in remaining
    assert any(name.endswith(f".{os.getpid()}." + name.rsplit(".", 1)[1]) for name in remaining)  # ours: alive


def test_flag_and_environment_give_the_same_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESWAP_LEDGER_URL", "postgresql://u@h/db")
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    from_env = Workspace.resolve(tmp_path / "ws")
    monkeypatch.delenv("FACESWAP_LEDGER_URL")
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "elsewhere"))
    from_flags = Workspace.resolve(tmp_path / "ws", "postgresql://u@h/db", tmp_path / "state")
    assert from_env == from_flags and from_env.state_dir == tmp_path / "state"
    assert Workspace(Path("w")).state_dir == tmp_path / "elsewhere"  # resolved once, when the object is made


def test_a_watch_whose_thread_was_not_started_checks_when_polled(workspace_root):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    grant = gate.authorize("astro", "hanks", "evaluation")
    watch = ConsentWatch(gate, grant, interval=0.05)
    watch.poll()
    store_at(workspace_root).revoke("astro", "withdrawn")
    time.sleep(0.06)
    with pytest.raises(ConsentRefused, match="revoked"):
        watch.poll()
