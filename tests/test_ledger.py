"""The provenance ledger: hash chain, signed head, pinned key, witness, concurrent writers, exports.

Every test that is not about SQLite's own file runs against both stores: the workspace's SQLite
file and a PostgreSQL server (tests/pg_helpers.py), tampered with by SQL as an intruder would."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from faceswap.cli import main
from faceswap.errors import BadInput, CheckFailed
from faceswap.hashing import canonical_json
from faceswap.ledger import (
    Ledger,
    LedgerTampered,
    LedgerUnreadable,
    RegistrarKey,
    entry_hash_of,
    ledger_backend,
    open_ledger,
    postgres,
)
from faceswap.ledger.chain import check_chain, utc_now
from faceswap.ledger.export import ExportedLedger, export_ledger
from faceswap.ledger.sqlite import SqliteBackend
from faceswap.workspace import Workspace

NOTES = 6  # seq 1 is the genesis entry; the notes are seq 2..7


class SqliteStorage:
    """The workspace's own SQLite file, reached under the library as an intruder would."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def sql(self, statement: str, *params) -> None:
        conn = sqlite3.connect(self.workspace.ledger_path)
        conn.execute(statement, params)
        conn.commit()
        conn.close()

    def write_head(self, text: str) -> None:
        (self.workspace.root / "ledger.head.json").write_text(text)

    row_reader = (SqliteBackend, "rows")

    def destroy(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.workspace.ledger_path) + suffix).unlink(missing_ok=True)
        (self.workspace.root / "ledger.head.json").unlink(missing_ok=True)


class PostgresStorage:
    """A schema of the session's PostgreSQL server, reached by SQL."""

    def __init__(self, workspace: Workspace, server) -> None:
        self.workspace, self.server = workspace, server

    def sql(self, statement: str, *params) -> None:
        self.server.sql(self.workspace.ledger_url, statement, *params)

    def write_head(self, text: str) -> None:
        self.sql("UPDATE ledger_head SET head = ? WHERE id = 1", text)

    row_reader = (postgres, "_rows")

    def destroy(self) -> None:
        self.sql("DROP TABLE ledger, ledger_head")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        return SqliteStorage(Workspace(tmp_path / "ws"))
    server = request.getfixturevalue("postgres_server")
    return PostgresStorage(Workspace(tmp_path / "ws", ledger_url=server.new_schema()), server)


@pytest.fixture
def sqlite_only(storage):
    if not isinstance(storage, SqliteStorage):
        pytest.skip("about SQLite's own file")


@pytest.fixture
def workspace(storage) -> Workspace:
    return storage.workspace


@pytest.fixture
def ledger(workspace) -> Ledger:
    led = open_ledger(workspace)
    for i in range(NOTES):
        led.append("ledger.note", {"i": i})
    return led


def _cli(workspace: Workspace, *args: str) -> list[str]:
    """CLI arguments that reach this workspace and its ledger."""
    url = ["--ledger-url", workspace.ledger_url] if workspace.ledger_url else []
    return [*args, "--workspace", str(workspace.root), *url]


def _forge(storage, ledger: Ledger, key: RegistrarKey, data: dict) -> None:
    """Append a row by hand, signed with `key`, chained to the last row."""
    last = ledger.rows()[-1]
    created = utc_now()
    body = canonical_json({"kind": "ledger.note", "created_at": created, "data": data})
    entry_hash = entry_hash_of(last.entry_hash, body)
    storage.sql(
        "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
        last.seq + 1,
        created,
        "ledger.note",
        body,
        last.entry_hash,
        entry_hash,
        key.sign(entry_hash),
    )


def test_new_ledger_starts_with_a_genesis_entry_naming_its_private_key(ledger, workspace):
    assert ledger.verify() is None
    rows = ledger.entries()
    assert [e.seq for e in rows] == list(range(1, NOTES + 2))
    assert rows[0].kind == "ledger.genesis" and rows[0].data["key_id"] == ledger.key.key_id
    key_file = workspace.keys_dir / "registrar.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert ledger.head()["seq"] == NOTES + 1


def test_sqlite_ledger_is_in_wal_mode(sqlite_only, ledger):
    mode = sqlite3.connect(ledger.backend.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_four_processes_append_1000_entries_without_gaps(workspace):
    ws = workspace
    code = (
        "import sys; from faceswap.ledger import open_ledger; from faceswap.workspace import Workspace\n"
        "led = open_ledger(Workspace(sys.argv[1], sys.argv[3] or None))\n"
        "for i in range(250): led.append('ledger.note', {'writer': int(sys.argv[2]), 'i': i})\n"
    )
    # the four also race to create the workspace: exactly one key and one genesis entry result
    url = ws.ledger_url or ""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(ws.root), str(w), url]) for w in range(4)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    entries = open_ledger(ws).entries()
    assert [e.seq for e in entries] == list(range(1, 1002))
    assert [e.kind for e in entries].count("ledger.genesis") == 1
    per_writer = {w: [e.data["i"] for e in entries if e.data.get("writer") == w] for w in range(4)}
    assert all(values == list(range(250)) for values in per_writer.values())


class AppendsAfterSnapshot:
    """A store on which another writer appends right after each snapshot a reader takes."""

    def __init__(self, inner, other: Ledger) -> None:
        self.inner, self.other = inner, other

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def snapshot(self):
        taken = self.inner.snapshot()
        self.other.append("ledger.note", {"meanwhile": True})
        return taken


def test_reads_while_others_append_never_look_like_tampering(ledger, workspace, tmp_path):
    """A reader's rows, head and witness must be one view: an honest append after it is not a
    truncation (reads used to take the rows first and the head and the witness after them)."""
    from faceswap.ledger.export import verify_ledger
    from faceswap.ledger.witness import Witness
    from faceswap.provenance.verify.verifier import LedgerView

    other = open_ledger(workspace)
    reader = Ledger(AppendsAfterSnapshot(ledger_backend(workspace), other), ledger.key, Witness(workspace.state_dir))
    before = len(ledger.rows())
    assert len(reader.entries()) == before
    assert reader.verify() is None
    assert LedgerView.from_ledger(reader).finding is None
    assert verify_ledger(reader).finding is None
    assert export_ledger(reader, tmp_path / "e.jsonl") == before + 4
    assert ExportedLedger.load(tmp_path / "e.jsonl").verify() is None
    assert open_ledger(workspace).verify() is None and len(ledger.rows()) == before + 5


def test_a_stores_snapshot_is_one_view_while_others_append(storage, ledger, workspace, monkeypatch):
    """Inside the store, an append between reading the rows and reading the head must not pair old
    rows with a newer head."""
    other = open_ledger(workspace)
    owner, name = storage.row_reader
    read_rows = getattr(owner, name)

    def rows_then_append(*args):
        rows = read_rows(*args)
        other.append("ledger.note", {"meanwhile": True})
        return rows

    monkeypatch.setattr(owner, name, rows_then_append)
    rows, head = ledger_backend(workspace).snapshot()
    assert head["seq"] == rows[-1].seq and check_chain(rows, head, None).finding is None
    monkeypatch.undo()
    assert open_ledger(workspace).verify() is None and len(ledger.rows()) == len(rows) + 1


def test_edited_body_is_named_and_blocks_reads_and_appends(storage, ledger):
    row = ledger.rows()[3]
    storage.sql("UPDATE ledger SET body = ? WHERE seq = 4", row.body.replace('"i":2', '"i":9'))
    finding = ledger.verify()
    assert finding is not None and finding.seq == 4 and "edited" in finding.problem
    with pytest.raises(LedgerTampered, match="seq 4"):
        ledger.entries()
    with pytest.raises(LedgerTampered, match="nothing was appended"):
        ledger.append("ledger.note", {"after": "edit"})
    assert len(ledger.rows()) == NOTES + 1


def test_edited_kind_column_is_named(storage, ledger):
    storage.sql("UPDATE ledger SET kind = 'output.written' WHERE seq = 5")
    assert ledger.verify().seq == 5


def test_deleted_row_is_named(storage, ledger):
    storage.sql("DELETE FROM ledger WHERE seq = 4")
    finding = ledger.verify()
    assert finding.seq == 4 and "deleted" in finding.problem


def test_deleted_last_rows_are_caught_and_never_re_signed_over(storage, ledger):
    storage.sql("DELETE FROM ledger WHERE seq >= 6")
    finding = ledger.verify()
    assert finding.seq == 6 and "ends at seq 7" in finding.problem
    with pytest.raises(LedgerTampered):  # an append must not sign a new head over the gap
        ledger.append("ledger.note", {"after": "truncation"})
    assert ledger.verify().seq == 6


def test_truncation_with_a_re_signed_head_is_caught_by_the_witness(storage, ledger, workspace):
    """Someone with the workspace's key deletes rows and signs a new head: the chain alone verifies,
    the witness outside the workspace does not."""
    from faceswap.ledger.chain import head_message

    storage.sql("DELETE FROM ledger WHERE seq >= 6")
    last = ledger.rows()[-1]
    key = RegistrarKey.load(workspace.keys_dir)
    head = {
        "seq": last.seq,
        "entry_hash": last.entry_hash,
        "key_id": key.key_id,
        "signature": key.sign(head_message(last.seq, last.entry_hash)),
    }
    storage.write_head(json.dumps(head))
    assert check_chain(ledger.rows(), ledger.head(), None).finding is None  # the chain alone is fooled
    finding = open_ledger(workspace).verify()
    assert finding is not None and finding.seq == 6 and "removed" in finding.problem


def test_emptied_or_deleted_ledger_is_never_recreated(storage, ledger, workspace):
    storage.sql("DELETE FROM ledger")
    with pytest.raises(LedgerTampered, match="missing or empty"):
        open_ledger(workspace)
    storage.destroy()
    with pytest.raises(LedgerTampered, match="never recreated"):
        open_ledger(workspace)
    shutil.rmtree(workspace.keys_dir)  # key and ledger both gone: the witness remembers
    with pytest.raises(LedgerTampered, match="saw it hold seq 7"):
        open_ledger(workspace)


def test_missing_key_is_never_created_silently(ledger, workspace):
    shutil.rmtree(workspace.keys_dir)
    with pytest.raises(LedgerTampered, match="key .* is missing"):
        open_ledger(workspace)
    assert not (workspace.keys_dir / "registrar.key").exists()
    read_only = open_ledger(workspace, writable=False)  # verify and show still work from genesis
    assert read_only.verify() is None and read_only.key is None


def test_replaced_key_is_refused_before_any_append(ledger, workspace):
    RegistrarKey.generate().install(workspace.keys_dir, replace=True)
    other = open_ledger(workspace)
    assert "restore the workspace's own key" in other.verify().problem
    with pytest.raises(LedgerTampered):
        other.append("ledger.note", {"by": "intruder"})


def test_whole_ledger_re_signed_with_a_new_key_is_caught_by_the_witness(storage, ledger, workspace):
    """Rebuild every row and the head with a fresh key and put that key in keys/."""
    rows = ledger.rows()
    shutil.rmtree(workspace.keys_dir)
    storage.destroy()
    forged = Ledger(ledger_backend(workspace), RegistrarKey.generate(), witness=None)
    forged.key.install(workspace.keys_dir)
    forged.write_genesis("forged")
    for row in rows[1:]:
        forged.append(row.kind, row.data)
    finding = open_ledger(workspace).verify()
    assert finding is not None and "whole ledger was replaced" in finding.problem


def test_row_inserted_and_signed_by_another_key_is_named(storage, ledger):
    _forge(storage, ledger, RegistrarKey.generate(), {"forged": True})
    finding = ledger.verify()
    assert finding.seq == NOTES + 2 and "signature" in finding.problem


def test_reordered_rows_are_named(storage, ledger):
    storage.sql("UPDATE ledger SET seq = 100 WHERE seq = 3")
    storage.sql("UPDATE ledger SET seq = 3 WHERE seq = 4")
    storage.sql("UPDATE ledger SET seq = 4 WHERE seq = 100")
    finding = ledger.verify()
    assert finding.seq == 3 and "prev_hash" in finding.problem


def test_key_rotation_is_signed_by_both_keys_and_old_rows_stay_valid(ledger, workspace, capsys):
    old = ledger.key.key_id
    assert main(_cli(workspace, "keys", "rotate")) == 0
    assert f"{old} -> " in capsys.readouterr().out
    rotated = open_ledger(workspace)
    assert rotated.key.key_id != old and rotated.verify() is None
    rotated.append("ledger.note", {"after": "rotation"})
    rows = rotated.entries()
    rotation = [r.kind for r in rows].index("key.rotated")
    assert [r.kind for r in rows[rotation:]] == ["key.rotated", "watermark.key", "ledger.note"]  # both keys
    assert rotated.history.key_at(rows[-1].seq).key_id == rotated.key.key_id
    assert rotated.history.key_at(2).key_id == old
    assert (workspace.keys_dir / f"registrar.key.{old}.retired").exists()


def test_failed_on_commit_rolls_back_the_row_and_its_head(ledger):
    head = ledger.head()

    def fail(_entry):
        raise OSError("disk full")

    with pytest.raises(OSError):
        ledger.append("ledger.note", {"doomed": True}, on_commit=fail)
    assert len(ledger.entries()) == NOTES + 1 and ledger.verify() is None and ledger.head() == head


def test_guard_sees_verified_rows_and_can_refuse(ledger):
    seen = []

    def guard(rows):
        seen.append(len(rows))
        raise CheckFailed("consent revoked meanwhile")

    with pytest.raises(CheckFailed):
        ledger.append("ledger.note", {"x": 1}, guard=guard)
    assert seen == [NOTES + 1] and len(ledger.rows()) == NOTES + 1


def test_data_may_name_its_own_position(ledger):
    entry = ledger.append("ledger.note", lambda pos: {"seq": pos.seq, "prev": pos.prev_hash})
    assert entry.data == {"seq": entry.seq, "prev": entry.prev_hash} and ledger.verify() is None


def _root_page(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    conn.close()
    return page


def _damage(path: Path, damage: str) -> None:
    """Damage the checkpointed database file in place, the same way every run."""
    data = bytearray(path.read_bytes())
    noise = random.Random(damage).randbytes
    page_size = int.from_bytes(data[16:18], "big")
    if damage == "truncated":
        del data[len(data) // 3 :]
    elif damage == "garbage":
        data[:] = noise(len(data))
    elif damage == "row":  # a note's body edited on disk, the file still a valid database
        at = data.find(b'{"i":3}')
        data[at : at + 7] = b'{"i":9}'
    else:  # noise over the first 600 bytes of a b-tree page: its header and cell pointers
        page = _root_page(path, "ledger" if damage == "table page" else "ledger_kind")
        data[(page - 1) * page_size : (page - 1) * page_size + 600] = noise(600)
    path.write_bytes(bytes(data))


UNREADABLE = "faceswap: error: the ledger {path} is damaged or not a ledger ({why}); restore it from a backup"
MALFORMED = "database disk image is malformed"


@pytest.mark.parametrize(
    ("damage", "code", "stream", "said", "append_error"),
    [
        ("truncated", 2, "err", UNREADABLE.replace("{why}", MALFORMED), LedgerUnreadable),
        ("garbage", 2, "err", UNREADABLE.replace("{why}", "file is not a database"), LedgerUnreadable),
        ("table page", 2, "err", UNREADABLE.replace("{why}", MALFORMED), LedgerUnreadable),
        (
            "index page",
            2,
            "out",
            f"DAMAGED: the ledger's storage fails its integrity check ({MALFORMED}",
            LedgerUnreadable,
        ),
        ("row", 1, "out", "TAMPERED: seq 5: body does not match entry_hash: the entry was edited", LedgerTampered),
    ],
)
def test_damaged_database_is_one_clear_error(
    sqlite_only, ledger, workspace, damage, code, stream, said, append_error, capsys
):
    """Storage SQLite cannot read is exit 2 with one line (the error's, or DAMAGED when the rows still
    read but SQLite's integrity check fails); a row edited on disk is TAMPERED at that row, exit 1.
    Either way nothing is appended and the file is left as it was found."""
    path = ledger.backend.path
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _damage(path, damage)
    damaged = path.read_bytes()
    assert main(_cli(workspace, "ledger", "verify")) == code
    printed = dict(zip(("out", "err"), capsys.readouterr(), strict=True))
    assert printed[stream].startswith(said.format(path=path)), printed
    assert len(printed[stream].splitlines()) == 1 and "Traceback" not in printed["out"] + printed["err"]
    shown = main(_cli(workspace, "ledger", "show"))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if damage == "index page":  # the rows themselves still read and verify: shown as stored
        assert shown == 0 and len(out.splitlines()) == NOTES + 1
    else:
        assert shown == code
    with pytest.raises(append_error):
        open_ledger(workspace).append("ledger.note", {"after": damage})
    assert path.read_bytes() == damaged


def test_malformed_head_is_reported_not_a_traceback(storage, ledger, workspace, capsys):
    storage.write_head("{not json")
    assert main(_cli(workspace, "ledger", "verify")) == 1
    assert "head record" in capsys.readouterr().out


def test_export_verifies_without_a_workspace_and_catches_edits(ledger, tmp_path):
    out = tmp_path / "export.jsonl"
    assert export_ledger(ledger, out) == NOTES + 1
    assert ExportedLedger.load(out).verify() is None
    lines = out.read_text().splitlines()
    row = json.loads(lines[4])
    row["body"] = row["body"].replace('"i":2', '"i":5')
    lines[4] = json.dumps(row)
    out.write_text("\n".join(lines) + "\n")
    assert ExportedLedger.load(out).verify().seq == 4
    with pytest.raises(BadInput):
        ExportedLedger.load(tmp_path / "missing.jsonl")


def test_kept_head_statement_catches_a_later_rewrite(storage, ledger, workspace, tmp_path, capsys):
    kept = tmp_path / "head.json"
    assert main(_cli(workspace, "ledger", "head", "--export", str(kept))) == 0
    assert main(_cli(workspace, "ledger", "verify", "--witness", str(kept))) == 0
    storage.sql("DELETE FROM ledger WHERE seq >= 6")
    capsys.readouterr()
    assert main(_cli(workspace, "ledger", "verify", "--witness", str(kept))) == 1


def test_cli_verify_names_the_bad_seq(storage, ledger, workspace, capsys):
    assert main(_cli(workspace, "ledger", "verify")) == 0
    storage.sql("DELETE FROM ledger WHERE seq = 3")
    capsys.readouterr()
    assert main(_cli(workspace, "ledger", "verify", "--json")) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 3
    assert main(_cli(workspace, "ledger", "verify")) == 1
    assert "seq 3" in capsys.readouterr().out


def test_cli_show_and_export(ledger, workspace, tmp_path, capsys):
    assert main(_cli(workspace, "ledger", "show", "--kind", "ledger.note", "--json")) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown) == NOTES and shown[0]["body"]["data"] == {"i": 0}
    out = tmp_path / "e.jsonl"
    assert main(_cli(workspace, "ledger", "export", str(out))) == 0
    assert Path(out).exists() and ExportedLedger.load(out).verify() is None
