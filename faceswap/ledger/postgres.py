"""The shared ledger store: PostgreSQL through psycopg 3, for many processes on many machines.

Same rows as the SQLite store (table `ledger`), and the signed head in table `ledger_head`, written in
the same transaction as the row it names. Writers serialise on a session advisory lock keyed by the
database and schema (`guard`), so appends from DDP ranks, Ray workers and other machines queue up;
the writer transaction runs on the connection that holds it. A dead writer's lock goes with its
connection. The URL's password never appears in `location` (messages, the witness).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from faceswap.errors import BadInput
from faceswap.hashing import canonical_json
from faceswap.ledger.chain import Entry
from faceswap.ledger.sqlite import LedgerUnreadable

SCHEMES = ("postgresql", "postgres")
SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq BIGINT PRIMARY KEY,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL UNIQUE,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_kind ON ledger(kind);
CREATE TABLE IF NOT EXISTS ledger_head (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    head TEXT NOT NULL
);
"""
COLUMNS = "seq, created_at, kind, body, prev_hash, entry_hash, signature"
EXPECTED_COLUMNS = {
    "ledger": {"seq", "created_at", "kind", "body", "prev_hash", "entry_hash", "signature"},
    "ledger_head": {"id", "head"},
}
LOCK_CLASS = 0x66737770  # "fswp": the advisory lock's first key; the second names database and schema
LOCK_KEY = "('x' || substr(md5(current_database() || '.' || coalesce(current_schema(), '')), 1, 8))::bit(32)::int"
SECRET_PARAMS = {"password", "sslpassword"}


def is_ledger_url(value: str) -> bool:
    return urlsplit(value).scheme in SCHEMES


def redact(url: str) -> str:
    """The URL without its user, password or secret parameters: names the ledger in messages and
    keys the witness (the same server, database and schema whoever connects). Split by hand, not
    by urlsplit: an unencoded '/' or '@' in a password must not push it into the host or path."""
    _userinfo, server, query = _split(url)
    kept = urlencode([(k, v) for k, v in query if k not in SECRET_PARAMS], safe="/=")
    return f"postgresql://{server}" + (f"?{kept}" if kept else "")


def _split(url: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(userinfo, host/port/path, query pairs) of a postgresql:// URL."""
    rest = url.split("://", 1)[1]
    authority_and_path, _, query = rest.partition("?")
    userinfo, _, server = authority_and_path.rpartition("@")
    return userinfo, server, parse_qsl(query)


def _secrets(url: str) -> list[str]:
    """The password and secret parameters as written and decoded: scrubbed from error messages."""
    userinfo, _server, query = _split(url)
    found = [userinfo.partition(":")[2]] + [v for k, v in query if k in SECRET_PARAMS]
    return [variant for value in found if value for variant in {value, unquote(value)}]


class PostgresTxn:
    """One writer transaction on the connection that holds the writers' lock."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def rows(self) -> list[Entry]:
        return [Entry(*row) for row in self._conn.execute(f"SELECT {COLUMNS} FROM ledger ORDER BY seq").fetchall()]

    def insert(self, entry: Entry) -> None:
        self._conn.execute(
            f"INSERT INTO ledger ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (entry.seq, entry.created_at, entry.kind, entry.body, entry.prev_hash, entry.entry_hash, entry.signature),
        )

    def write_head(self, head: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO ledger_head (id, head) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET head = EXCLUDED.head",
            (canonical_json(head),),
        )


class PostgresBackend:
    shared = True  # safe for writers on several machines

    def __init__(self, url: str) -> None:
        if not is_ledger_url(url):
            raise BadInput("a ledger URL must start with postgresql:// (FACESWAP_LEDGER_URL or --ledger-url)")
        self.url = url
        self._location = redact(url)
        self._secrets = _secrets(url)
        self._lock_depth = 0
        self._conn: Any = None

    @property
    def location(self) -> str:
        return self._location

    def _unreadable(self, error: BaseException) -> LedgerUnreadable:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return LedgerUnreadable(f"the ledger {self.location} cannot be read ({message})")

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=20, application_name="faceswap")
        except psycopg.Error as error:
            raise self._unreadable(error) from None

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """The guard's connection while it is held (reads inside a writer see its transaction), else
        a short-lived one."""
        import psycopg

        held = self._conn is not None
        conn = self._conn if held else self._connect()
        try:
            yield conn
        except psycopg.Error as error:
            raise self._unreadable(error) from None
        finally:
            if not held:
                conn.close()

    def exists(self) -> bool:
        with self._session() as conn:
            return conn.execute("SELECT to_regclass('ledger') IS NOT NULL").fetchone()[0]

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Exclusive across processes and machines (an advisory lock); re-entrant within this object."""
        import psycopg

        if self._lock_depth == 0:
            conn = self._connect()
            try:
                conn.execute(f"SELECT pg_advisory_lock(%s, {LOCK_KEY})", (LOCK_CLASS,))
            except psycopg.Error as error:
                conn.close()
                raise self._unreadable(error) from None
            self._conn = conn
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                conn, self._conn = self._conn, None
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f"SELECT pg_advisory_unlock(%s, {LOCK_KEY})", (LOCK_CLASS,))
                conn.close()

    @contextlib.contextmanager
    def writer(self) -> Iterator[PostgresTxn]:
        """The one writer transaction at a time; creates the tables on first use. The head is
        written in the same transaction as its row: both commit, or neither."""
        import psycopg

        with self.guard():
            conn = self._conn
            try:
                with conn.transaction():
                    if conn.execute("SELECT to_regclass('ledger_head') IS NULL").fetchone()[0]:
                        conn.execute(SCHEMA)  # under the lock: no two first writers race to create it
                    yield PostgresTxn(conn)
            except psycopg.Error as error:
                raise self._unreadable(error) from None

    def rows(self) -> list[Entry]:
        with self._session() as conn:
            return _rows(conn)

    def head(self) -> dict[str, Any] | None:
        """The signed head, or None; a head that is not JSON reads as an unverifiable one."""
        with self._session() as conn:
            return _head(conn)

    def snapshot(self) -> tuple[list[Entry], dict[str, Any] | None]:
        """Rows and head from one REPEATABLE READ snapshot (inside a writer: its transaction)."""
        with self._session() as conn:
            if self._conn is conn:
                return _rows(conn), _head(conn)
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return _rows(conn), _head(conn)

    def integrity(self) -> str | None:
        """The server keeps its own pages; what can be wrong here is the tables' shape."""
        with self._session() as conn:
            found: dict[str, set[str]] = {}
            for table, column in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name IN ('ledger', 'ledger_head')"
            ).fetchall():
                found.setdefault(table, set()).add(column)
        if not found:
            return None
        problems = [
            f"table {table} lacks {', '.join(sorted(columns - found.get(table, set())))}"
            for table, columns in EXPECTED_COLUMNS.items()
            if columns - found.get(table, set())
        ]
        return "; ".join(problems) or None


def _rows(conn: Any) -> list[Entry]:
    if not conn.execute("SELECT to_regclass('ledger') IS NOT NULL").fetchone()[0]:
        return []
    return [Entry(*row) for row in conn.execute(f"SELECT {COLUMNS} FROM ledger ORDER BY seq").fetchall()]


def _head(conn: Any) -> dict[str, Any] | None:
    if not conn.execute("SELECT to_regclass('ledger_head') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute("SELECT head FROM ledger_head WHERE id = 1").fetchone()
    if row is None:
        return None
    try:
        head = json.loads(row[0])
    except (TypeError, json.JSONDecodeError):
        return {"unreadable": True}
    return head if isinstance(head, dict) else {"unreadable": True}
