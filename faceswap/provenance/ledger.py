"""The tamper-evident provenance ledger: SQLite (WAL), one hash-chained, signed row per event.

entry_hash = sha256(prev_hash || body), signature = Ed25519(entry_hash). The body is canonical JSON
and carries the row's kind and created_at too, so no column can be edited unseen. Appends hold an
exclusive file lock around one SQLite transaction, so many processes (DDP ranks) can write at once;
a signed head file records the last seq, so deleting rows from the end is detected as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faceswap.errors import BadInput
from faceswap.signing import PublicKey, RegistrarKey, canonical_json, sha256_hex

GENESIS_HASH = "0" * 64
KINDS = frozenset(
    {"consent.registered", "consent.revoked", "faceset.built", "model.trained", "output.written", "ledger.note"}
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL UNIQUE,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_kind ON ledger(kind);
"""
HEAD_FILE = "ledger.head.json"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash_of(prev_hash: str, body: str) -> str:
    return sha256_hex(prev_hash + body)


@dataclass(frozen=True)
class Entry:
    seq: int
    created_at: str
    kind: str
    body: str
    prev_hash: str
    entry_hash: str
    signature: str

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.body)["data"]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "created_at": self.created_at,
            "kind": self.kind,
            "body": self.body,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Entry:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Finding:
    """The first thing wrong with a ledger: the seq it is at and what it is."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.problem}"


def check_chain(entries: list[Entry], public: PublicKey, head: dict[str, Any] | None) -> Finding | None:
    """Walk the chain; return the first problem, or None when every row and the head agree."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                return Finding(expected_seq, f"missing (next row is seq {entry.seq}): a row was deleted")
            return Finding(entry.seq, "out of order or duplicated")
        if entry.prev_hash != prev_hash:
            return Finding(
                entry.seq, "prev_hash does not match the previous entry: rows deleted, inserted or reordered"
            )
        if entry_hash_of(entry.prev_hash, entry.body) != entry.entry_hash:
            return Finding(entry.seq, "body does not match entry_hash: the entry was edited")
        try:
            body = json.loads(entry.body)
        except json.JSONDecodeError:
            return Finding(entry.seq, "body is not JSON")
        if body.get("kind") != entry.kind or body.get("created_at") != entry.created_at:
            return Finding(entry.seq, "kind or created_at column differs from the signed body")
        if not public.verify(entry.signature, entry.entry_hash):
            return Finding(entry.seq, "signature does not verify with the registrar key")
        prev_hash = entry.entry_hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head is None and last_seq > 0:
        return Finding(last_seq, "the signed head record is missing")
    if head is not None:
        if not public.verify(head.get("signature", ""), _head_message(head.get("seq", -1), head.get("entry_hash", ""))):
            return Finding(last_seq, "head record's signature does not verify")
        if head["seq"] > last_seq:
            return Finding(last_seq + 1, f"missing: the signed head says the ledger ends at seq {head['seq']}")
        if head["seq"] == last_seq and head["entry_hash"] != prev_hash:
            return Finding(last_seq, "last entry differs from the signed head")
    return None


def _head_message(seq: int, entry_hash: str) -> str:
    return canonical_json({"head_seq": seq, "entry_hash": entry_hash})


class Ledger:
    def __init__(self, path: Path, key: RegistrarKey) -> None:
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._head_path = self.path.with_name(HEAD_FILE)
        with self._exclusive(), contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file; set once, under the lock
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, kind: str, data: dict[str, Any], on_commit: Callable[[Entry], None] | None = None) -> Entry:
        """Append one entry. `on_commit` runs inside the transaction (e.g. renaming the file the
        entry describes into place); if it raises, the entry is rolled back."""
        if kind not in KINDS:
            raise BadInput(f"unknown ledger entry kind '{kind}'")
        with self._exclusive(), contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT seq, entry_hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev_hash = (row[0] + 1, row[1]) if row else (1, GENESIS_HASH)
                created_at = utc_now()
                body = canonical_json({"kind": kind, "created_at": created_at, "data": data})
                entry_hash = entry_hash_of(prev_hash, body)
                entry = Entry(seq, created_at, kind, body, prev_hash, entry_hash, self.key.sign(entry_hash))
                conn.execute(
                    "INSERT INTO ledger (seq, created_at, kind, body, prev_hash, entry_hash, signature)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.seq,
                        entry.created_at,
                        entry.kind,
                        entry.body,
                        entry.prev_hash,
                        entry.entry_hash,
                        entry.signature,
                    ),
                )
                if on_commit is not None:
                    on_commit(entry)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._write_head(entry)
        return entry

    def _write_head(self, entry: Entry) -> None:
        head = {
            "seq": entry.seq,
            "entry_hash": entry.entry_hash,
            "key_id": self.key.key_id,
            "signature": self.key.sign(_head_message(entry.seq, entry.entry_hash)),
        }
        tmp = self._head_path.with_name(f".{HEAD_FILE}.{os.getpid()}.tmp")
        tmp.write_text(canonical_json(head))
        os.replace(tmp, self._head_path)

    def head(self) -> dict[str, Any] | None:
        if not self._head_path.exists():
            return None
        try:
            return json.loads(self._head_path.read_text())
        except json.JSONDecodeError:
            return {"seq": -1, "entry_hash": "", "signature": ""}

    def entries(self, kind: str | None = None) -> list[Entry]:
        query = "SELECT seq, created_at, kind, body, prev_hash, entry_hash, signature FROM ledger"
        params: tuple[str, ...] = ()
        if kind is not None:
            query += " WHERE kind = ?"
            params = (kind,)
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute(query + " ORDER BY seq", params).fetchall()
        return [Entry(*row) for row in rows]

    def find(self, kind: str, **match: Any) -> list[Entry]:
        """Entries of `kind` whose data has every given key equal to the given value."""
        return [e for e in self.entries(kind) if all(e.data.get(k) == v for k, v in match.items())]

    def verify(self) -> Finding | None:
        return check_chain(self.entries(), self.key.public, self.head())

    def export(self, out: Path) -> int:
        """JSONL: a header line with the public key and head, then every entry. Verifiable alone."""
        entries = self.entries()
        header = {
            "type": "faceswap.ledger.export",
            "public_key": self.key.public.b64,
            "key_id": self.key.key_id,
            "exported_at": utc_now(),
            "head": self.head(),
        }
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(canonical_json(header) + "\n")
            for entry in entries:
                handle.write(canonical_json(entry.to_json()) + "\n")
        os.replace(tmp, out)
        return len(entries)


@dataclass(frozen=True)
class ExportedLedger:
    public: PublicKey
    head: dict[str, Any] | None
    entries: list[Entry]

    @classmethod
    def load(cls, path: Path) -> ExportedLedger:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            header = json.loads(lines[0])
            if header.get("type") != "faceswap.ledger.export":
                raise ValueError("not a faceswap ledger export")
            entries = [Entry.from_json(json.loads(line)) for line in lines[1:] if line.strip()]
        except (OSError, IndexError, ValueError, KeyError, TypeError) as error:
            raise BadInput(f"{path}: not a readable ledger export ({error})") from None
        return cls(PublicKey.from_b64(header["public_key"]), header.get("head"), entries)

    def verify(self) -> Finding | None:
        return check_chain(self.entries, self.public, self.head)

    def find(self, kind: str, **match: Any) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and all(e.data.get(k) == v for k, v in match.items())]


def open_ledger(workspace: Any) -> Ledger:
    """The workspace's ledger, with the workspace's registrar key."""
    workspace.ensure()
    return Ledger(workspace.ledger_path, RegistrarKey.load_or_create(workspace.keys_dir))
