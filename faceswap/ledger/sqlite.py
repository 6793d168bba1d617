"""The embedded ledger store: one SQLite file (WAL), a lock file that serialises writers across
processes, and the signed head beside it (`ledger.head.json`).

Every SQLite error becomes one clear LedgerUnreadable line: a damaged file never ends in a traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faceswap.atomic import write_atomic
from faceswap.errors import BadInput
from faceswap.hashing import canonical_json
from faceswap.ledger.chain import Entry

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
COLUMNS = "seq, created_at, kind, body, prev_hash, entry_hash, signature"
HEAD_FILE = "ledger.head.json"


def ledger_files(path: Path) -> tuple[Path, ...]:
    """Every file an SQLite ledger at `path` is made of: outputs must never land on one."""
    names = (path.name, path.name + "-wal", path.name + "-shm", path.name + ".lock", HEAD_FILE)
    return tuple(path.with_name(name) for name in names)


class LedgerUnreadable(BadInput):
    """The ledger's storage cannot be read (a damaged database or head file): exit 2."""


def _damaged(location: str, error: BaseException) -> LedgerUnreadable:
    return LedgerUnreadable(
        f"the ledger {location} is damaged or not a ledger ({error}); restore it from a backup "
        "(`faceswap ledger export` writes one)"
    )


class SqliteTxn:
    """One writer transaction: reads see this transaction's state; the head is written after COMMIT."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.pending_head: dict[str, Any] | None = None

    def rows(self) -> list[Entry]:
        return [Entry(*row) for row in self._conn.execute(f"SELECT {COLUMNS} FROM ledger ORDER BY seq").fetchall()]

    def insert(self, entry: Entry) -> None:
        self._conn.execute(
            f"INSERT INTO ledger ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.seq, entry.created_at, entry.kind, entry.body, entry.prev_hash, entry.entry_hash, entry.signature),
        )

    def write_head(self, head: dict[str, Any]) -> None:
        self.pending_head = head


class SqliteBackend:
    shared = False  # file locks: one machine's processes only (never over a network filesystem)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self.head_path = self.path.with_name(HEAD_FILE)
        self._lock_depth = 0
        self._lock_handle: Any = None

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Exclusive across processes; re-entrant within this object."""
        if self._lock_depth == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_handle = open(self._lock_path, "a+")  # noqa: SIM115 - held across the with-block
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()
                self._lock_handle = None

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as error:
            raise _damaged(self.location, error) from None
        return conn

    @contextlib.contextmanager
    def writer(self) -> Iterator[SqliteTxn]:
        """The one writer transaction at a time; creates the schema on first use."""
        with self.guard():
            conn = self._connect()
            try:
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(SCHEMA)
                    conn.execute("BEGIN IMMEDIATE")
                    problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall() if row[0] != "ok"]
                    if problems:  # never write into a damaged file: the write itself could lose rows
                        raise sqlite3.DatabaseError(problems[0])
                except sqlite3.Error as error:
                    raise _damaged(self.location, error) from None
                txn = SqliteTxn(conn)
                try:
                    yield txn
                    conn.execute("COMMIT")
                except sqlite3.Error as error:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise _damaged(self.location, error) from None
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()
            if txn.pending_head is not None:
                self._write_head(txn.pending_head)

    def rows(self) -> list[Entry]:
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger'").fetchone()
            if not has_table:
                return []
            return [Entry(*row) for row in conn.execute(f"SELECT {COLUMNS} FROM ledger ORDER BY seq").fetchall()]
        except sqlite3.Error as error:
            raise _damaged(self.location, error) from None
        except TypeError as error:  # a row whose columns were edited to the wrong types
            raise _damaged(self.location, error) from None
        finally:
            conn.close()

    def snapshot(self) -> tuple[list[Entry], dict[str, Any] | None]:
        """Rows and head as one view while others append: the head file is written after its row
        commits, so reading it first and the rows after always finds the row it names."""
        head = self.head()
        return self.rows(), head

    def head(self) -> dict[str, Any] | None:
        """The signed head, or None; a head that is not JSON reads as an unverifiable one."""
        try:
            text = self.head_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            return {"unreadable": True}
        try:
            head = json.loads(text)
        except json.JSONDecodeError:
            return {"unreadable": True}
        return head if isinstance(head, dict) else {"unreadable": True}

    def _write_head(self, head: dict[str, Any]) -> None:
        write_atomic(self.head_path, canonical_json(head))

    def integrity(self) -> str | None:
        """SQLite's own page-level check: damage that reads of the rows may not notice."""
        if not self.path.exists():
            return None
        conn = self._connect()
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.Error as error:
            return str(error)
        finally:
            conn.close()
        problems = [row[0] for row in result if row[0] != "ok"]
        return "; ".join(problems[:3]) or None
