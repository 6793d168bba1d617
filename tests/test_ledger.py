"""The provenance ledger: hash chain, signatures, concurrent writers, tamper detection, export."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from faceswap.cli import main
from faceswap.provenance.ledger import ExportedLedger, Ledger, check_chain
from faceswap.signing import RegistrarKey
from faceswap.workspace import Workspace


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    ws = Workspace(tmp_path / "ws").ensure()
    led = Ledger(ws.ledger_path, RegistrarKey.load_or_create(ws.keys_dir))
    for i in range(6):
        led.append("ledger.note", {"i": i})
    return led


def _sql(ledger: Ledger, statement: str, *params) -> None:
    conn = sqlite3.connect(ledger.path)
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def test_chain_verifies_and_key_file_is_private(ledger):
    assert ledger.verify() is None
    assert [e.seq for e in ledger.entries()] == [1, 2, 3, 4, 5, 6]
    key_file = ledger.path.parent / "keys" / "registrar.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    mode = sqlite3.connect(ledger.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_four_processes_append_1000_entries_without_gaps(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    RegistrarKey.load_or_create(ws.keys_dir)
    code = (
        "import sys; from faceswap.provenance.ledger import open_ledger; from faceswap.workspace import Workspace\n"
        "led = open_ledger(Workspace(sys.argv[1]))\n"
        "for i in range(250): led.append('ledger.note', {'writer': int(sys.argv[2]), 'i': i})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(ws.root), str(w)]) for w in range(4)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    led = Ledger(ws.ledger_path, RegistrarKey.load_or_create(ws.keys_dir))
    entries = led.entries()
    assert [e.seq for e in entries] == list(range(1, 1001))
    per_writer = {w: [e.data["i"] for e in entries if e.data["writer"] == w] for w in range(4)}
    assert all(values == list(range(250)) for values in per_writer.values())
    assert led.verify() is None


def test_edited_body_is_named(ledger):
    row = ledger.entries()[2]
    _sql(ledger, "UPDATE ledger SET body = ? WHERE seq = 3", row.body.replace('"i":2', '"i":9'))
    finding = ledger.verify()
    assert finding is not None and finding.seq == 3 and "edited" in finding.problem


def test_edited_kind_column_is_named(ledger):
    _sql(ledger, "UPDATE ledger SET kind = 'output.written' WHERE seq = 4")
    assert ledger.verify().seq == 4


def test_deleted_row_is_named(ledger):
    _sql(ledger, "DELETE FROM ledger WHERE seq = 4")
    finding = ledger.verify()
    assert finding.seq == 4 and "deleted" in finding.problem


def test_deleted_last_rows_are_caught_by_the_signed_head(ledger):
    _sql(ledger, "DELETE FROM ledger WHERE seq >= 5")
    finding = ledger.verify()
    assert finding.seq == 5 and "ends at seq 6" in finding.problem


def test_reordered_rows_are_named(ledger):
    _sql(ledger, "UPDATE ledger SET seq = 100 WHERE seq = 2")
    _sql(ledger, "UPDATE ledger SET seq = 2 WHERE seq = 3")
    _sql(ledger, "UPDATE ledger SET seq = 3 WHERE seq = 100")
    finding = ledger.verify()
    assert finding.seq == 2 and "prev_hash" in finding.problem


def test_row_inserted_and_signed_by_another_key_is_named(ledger, tmp_path):
    from faceswap.provenance.ledger import entry_hash_of, utc_now
    from faceswap.signing import canonical_json

    forger = RegistrarKey.load_or_create(tmp_path / "forger")
    last = ledger.entries()[-1]
    created = utc_now()
    body = canonical_json({"kind": "ledger.note", "created_at": created, "data": {"forged": True}})
    entry_hash = entry_hash_of(last.entry_hash, body)
    _sql(
        ledger,
        "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
        7,
        created,
        "ledger.note",
        body,
        last.entry_hash,
        entry_hash,
        forger.sign(entry_hash),
    )
    finding = ledger.verify()
    assert finding.seq == 7 and "signature" in finding.problem


def test_replaced_key_fails_from_the_first_entry(ledger):
    keys = ledger.path.parent / "keys"
    (keys / "registrar.key").unlink()
    other = Ledger(ledger.path, RegistrarKey.load_or_create(keys))
    finding = other.verify()
    assert finding.seq == 1 and "signature" in finding.problem


def test_failed_on_commit_rolls_back(ledger):
    def fail(_entry):
        raise OSError("disk full")

    with pytest.raises(OSError):
        ledger.append("ledger.note", {"doomed": True}, on_commit=fail)
    assert len(ledger.entries()) == 6 and ledger.verify() is None


def test_export_verifies_without_a_workspace_and_catches_edits(ledger, tmp_path):
    out = tmp_path / "export.jsonl"
    assert ledger.export(out) == 6
    exported = ExportedLedger.load(out)
    assert exported.verify() is None
    lines = out.read_text().splitlines()
    row = json.loads(lines[3])
    row["body"] = row["body"].replace('"i":2', '"i":5')
    lines[3] = json.dumps(row)
    out.write_text("\n".join(lines) + "\n")
    assert ExportedLedger.load(out).verify().seq == 3
    assert check_chain([], exported.public, None) is None


def test_cli_verify_names_the_bad_seq(ledger, capsys):
    ws = str(ledger.path.parent)
    assert main(["ledger", "verify", "--workspace", ws]) == 0
    _sql(ledger, "DELETE FROM ledger WHERE seq = 2")
    capsys.readouterr()
    assert main(["ledger", "verify", "--workspace", ws, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 2
    assert main(["ledger", "verify", "--workspace", ws]) == 1
    assert "seq 2" in capsys.readouterr().out


def test_cli_show_and_export(ledger, tmp_path, capsys):
    ws = str(ledger.path.parent)
    assert main(["ledger", "show", "--workspace", ws, "--kind", "ledger.note", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown) == 6 and shown[0]["body"]["data"] == {"i": 0}
    out = tmp_path / "e.jsonl"
    assert main(["ledger", "export", "--workspace", ws, str(out)]) == 0
    assert Path(out).exists() and ExportedLedger.load(out).verify() is None
