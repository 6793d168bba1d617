"""The shared PostgreSQL ledger: chosen by URL for every command, never showing its password,
migrated from SQLite verified, and an output's file only where its entry committed.
(The chain, tamper and concurrency tests run on both stores in test_ledger.py.)"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import psycopg
import pytest

from faceswap.cli import main
from faceswap.errors import BadInput
from faceswap.ledger import LedgerUnreadable, RegistrarKey, ledger_backend, open_ledger
from faceswap.ledger.chain import head_message
from faceswap.ledger.postgres import PostgresBackend, redact
from faceswap.provenance.output.sink import OutputContext, OutputSink
from faceswap.workspace import LEDGER_URL_ENV, Workspace

CONTEXT = OutputContext(producer="test", model_fingerprint="ab" * 32, consent_record_ids=("astro-1",))


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("faceswap: error:")]
    assert len(lines) == 1, captured.err
    return lines[0]


def test_env_var_or_option_puts_the_ledger_in_postgres_keys_stay_on_disk(postgres_url, tmp_path, monkeypatch, capsys):
    root = tmp_path / "ws"
    monkeypatch.setenv(LEDGER_URL_ENV, postgres_url)
    ledger = open_ledger(Workspace.resolve(root))
    ledger.append("ledger.note", {"hello": "postgres"})
    assert isinstance(ledger.backend, PostgresBackend) and not (root / "ledger.sqlite").exists()
    assert (root / "keys" / "registrar.key").exists() and (root / "consent").is_dir()
    assert main(["ledger", "show", "--workspace", str(root), "--json"]) == 0
    assert [row["kind"] for row in json.loads(capsys.readouterr().out)] == ["ledger.genesis", "ledger.note"]
    monkeypatch.delenv(LEDGER_URL_ENV)
    # the option, before the command or after it, does the same; without either: the SQLite default
    assert main(["--ledger-url", postgres_url, "--workspace", str(root), "ledger", "verify"]) == 0
    capsys.readouterr()
    assert main(["ledger", "verify", "--workspace", str(root), "--ledger-url", postgres_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert main(["ledger", "verify", "--workspace", str(root)]) == 1  # the key is here, no SQLite ledger is
    assert "never recreated" in _error_line(capsys)


def test_a_url_that_is_not_postgresql_is_refused(tmp_path, capsys):
    assert main(["ledger", "show", "--workspace", str(tmp_path / "ws"), "--ledger-url", "mysql://x@y/z"]) == 2
    assert "postgresql://" in _error_line(capsys)
    with pytest.raises(BadInput):
        ledger_backend(Workspace(tmp_path, "sqlite:///x.db"))


def test_the_location_never_holds_the_password(postgres_server, tmp_path, isolated_state_dir, capsys):
    secret = "s3cret-pass/word"
    url = postgres_server.new_schema(password=secret)
    assert "s3cret" not in redact(url) and "s3cret" not in redact(url + "&password=s3cret&sslpassword=s3cret")
    # written unencoded, a password with '/' or '@' still stays out
    assert redact("postgresql://me:s3cret/x@y@db.studio:5432/ledger?sslmode=require") == (
        "postgresql://db.studio:5432/ledger?sslmode=require"
    )
    ws = Workspace(tmp_path / "ws", url)
    ledger = open_ledger(ws)
    ledger.append("ledger.note", {"n": 1})
    assert "s3cret" not in ledger.location and ledger.location.startswith("postgresql://")
    witnessed = [p.read_text() for p in (isolated_state_dir / "witness").iterdir()]
    assert any(ledger.location in text for text in witnessed) and not any("s3cret" in t for t in witnessed)
    assert main(["ledger", "verify", "--workspace", str(ws.root), "--ledger-url", url]) == 0
    assert "s3cret" not in capsys.readouterr().out
    assert main(["ledger", "head", "--workspace", str(ws.root), "--ledger-url", url, "--json"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and json.loads(out)["location"] == ledger.location
    unreachable = f"postgresql://someone:{secret}@127.0.0.1:1/ledger"
    with pytest.raises(LedgerUnreadable) as raised:
        open_ledger(Workspace(tmp_path / "other", unreachable))
    assert "s3cret" not in str(raised.value) and "127.0.0.1:1/ledger" in str(raised.value)
    assert main(["ledger", "verify", "--workspace", str(tmp_path / "other"), "--ledger-url", unreachable]) == 2
    assert "s3cret" not in _error_line(capsys)


def _sqlite_ledger(root):
    ledger = open_ledger(Workspace(root))
    for i in range(5):
        ledger.append("ledger.note", {"i": i})
    return ledger


def test_migrate_copies_entries_and_head_verified_and_refuses_a_non_empty_target(postgres_url, tmp_path, capsys):
    root = tmp_path / "ws"
    source = _sqlite_ledger(root)
    assert main(["ledger", "migrate", "--workspace", str(root), "--to", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["entries"] == 6 and report["head_seq"] == 6 and "password" not in report["target"]
    shared = open_ledger(Workspace(root, postgres_url))
    assert shared.entries() == source.entries() and shared.head() == source.head()
    shared.append("ledger.note", {"after": "migration"})  # the workspace's key signs on
    assert main(["ledger", "verify", "--workspace", str(root), "--ledger-url", postgres_url]) == 0
    assert source.verify() is None and len(source.rows()) == 6  # the SQLite file is left as it was
    capsys.readouterr()
    assert main(["ledger", "migrate", "--workspace", str(root), "--to", postgres_url]) == 2
    assert "already holds 7 entries" in _error_line(capsys)
    assert len(shared.entries()) == 7


def test_migrate_refuses_a_tampered_source_and_writes_nothing(postgres_server, tmp_path, capsys):
    import sqlite3

    root = tmp_path / "ws"
    _sqlite_ledger(root)
    conn = sqlite3.connect(root / "ledger.sqlite")
    conn.execute("UPDATE ledger SET body = replace(body, '\"i\":2', '\"i\":9') WHERE seq = 4")
    conn.commit()
    conn.close()
    url = postgres_server.new_schema()
    assert main(["ledger", "migrate", "--workspace", str(root), "--to", url]) == 1
    assert "seq 4" in _error_line(capsys)
    assert not PostgresBackend(url).exists()  # not even the tables


def test_truncating_a_migrated_ledger_is_caught_by_the_witness(postgres_server, tmp_path):
    root = tmp_path / "ws"
    _sqlite_ledger(root)
    url = postgres_server.new_schema()
    main(["ledger", "migrate", "--workspace", str(root), "--to", url])
    postgres_server.sql(url, "DELETE FROM ledger WHERE seq >= 5")
    last = PostgresBackend(url).rows()[-1]
    key = RegistrarKey.load(root / "keys")  # the head re-signed with the workspace's own key
    head = {"seq": last.seq, "entry_hash": last.entry_hash, "key_id": key.key_id}
    head["signature"] = key.sign(head_message(last.seq, last.entry_hash))
    postgres_server.sql(url, "UPDATE ledger_head SET head = ?", json.dumps(head))
    finding = open_ledger(Workspace(root, url)).verify()
    assert finding is not None and finding.seq == 5 and "removed" in finding.problem


class DropsAtCommit(PostgresBackend):
    """The connection to the server is lost inside the writer transaction, after the output was
    renamed into place and before the commit (a network cut, a server restart)."""

    @contextlib.contextmanager
    def writer(self):
        with super().writer() as txn:
            write_head = txn.write_head

            def cut_then_write_head(head):
                with psycopg.connect(self.url, autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", (txn._conn.info.backend_pid,))
                write_head(head)

            txn.write_head = cut_then_write_head
            yield txn


def test_an_outputs_file_appears_only_with_its_committed_entry(postgres_url, tmp_path, t1_image):
    ws = Workspace(tmp_path / "ws", postgres_url)
    ledger = open_ledger(ws)
    sink = OutputSink.for_workspace(ws, ledger)
    written = sink.write_image(tmp_path / "kept.png", t1_image, CONTEXT)
    assert written.path.exists() and ledger.entries("output.written")[0].data["token"] == written.token
    ledger.backend = DropsAtCommit(postgres_url)
    with pytest.raises(LedgerUnreadable):
        sink.write_image(tmp_path / "lost.png", np.ascontiguousarray(t1_image[::-1]), CONTEXT)
    assert not (tmp_path / "lost.png").exists() and not list(tmp_path.glob(".lost.png*"))
    after = open_ledger(ws)
    assert after.verify() is None and len(after.entries("output.written")) == 1
