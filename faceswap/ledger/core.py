"""The ledger: verified before it is trusted, verified again before every append.

Readers get `entries()` only after the chain, the signed head, the pinned key and the witness agree;
writers append inside one exclusive transaction that re-checks all of that first, so an append never
re-signs a head over rows someone removed. Many processes (DDP ranks, Ray workers) may append at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from faceswap.errors import BadInput, CheckFailed
from faceswap.hashing import canonical_json
from faceswap.ledger.chain import (
    GENESIS_KIND,
    KINDS,
    ROTATION_KIND,
    ChainCheck,
    Entry,
    Finding,
    KeyHistory,
    LedgerTampered,
    Position,
    RecordRevoked,
    check_chain,
    entries_of,
    entry_hash_of,
    genesis_data,
    head_message,
    revoked_before,
    rotation_message,
    utc_now,
)
from faceswap.ledger.keys import PublicKey, RegistrarKey
from faceswap.ledger.tlog import LogTree, leaf_hash_of, leaf_text
from faceswap.ledger.witness import Sighting, Witness

DataBuilder = Callable[[Position], dict[str, Any]]


class Txn(Protocol):
    """What a backend's writer yields: one exclusive transaction, committed when the block exits."""

    def rows(self) -> list[Entry]: ...
    def insert(self, entry: Entry) -> None: ...
    def write_head(self, head: dict[str, Any]) -> None: ...


class Backend(Protocol):
    """Where entries are stored. `writer()` is exclusive across every process (and machine, when
    `shared`: writers on several machines may append)."""

    shared: bool

    @property
    def location(self) -> str: ...
    def exists(self) -> bool: ...
    def guard(self) -> Any: ...
    def writer(self) -> AbstractContextManager[Txn]: ...
    def rows(self) -> list[Entry]: ...
    def head(self) -> dict[str, Any] | None: ...
    def snapshot(self) -> tuple[list[Entry], dict[str, Any] | None]: ...
    def integrity(self) -> str | None: ...


class Ledger:
    def __init__(
        self,
        backend: Backend,
        key: RegistrarKey | None,
        witness: Witness | None = None,
        legacy_key: PublicKey | None = None,
    ) -> None:
        """`key` signs appends (None: read-only). `legacy_key` checks a ledger written before
        genesis entries existed (the workspace's own key)."""
        self.backend = backend
        self.key = key
        self.witness = witness
        self.legacy_key = legacy_key or (key.public if key else None)
        self._known_good: set[tuple[str, str, str]] = set()
        self.history: KeyHistory | None = None
        self.tree = LogTree()  # the transparency log's tree (ledger/tlog.py), kept in step with appends
        self._building: tuple[Position, list[Entry]] | None = None
        self._promised: tuple[int, bytes] | None = None

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def public(self) -> PublicKey:
        """The key that signs new rows (after any rotation), from the last verification."""
        if self.history is None:
            self.entries()
        assert self.history is not None
        return self.history.current

    def rows(self) -> list[Entry]:
        """Every row as stored, unverified: for showing and reporting, never for deciding."""
        return self.backend.rows()

    def inspect(self) -> tuple[list[Entry], ChainCheck]:
        """The rows as stored and what checking them found, read as one view while others append.

        The witness first, then the store's snapshot: rows only grow, so rows read after the witness
        hold the row it names (read the other way round, an honest append in between would look like
        rows removed)."""
        sighting = self._sighting()
        rows, head = self.backend.snapshot()
        return rows, self._check(rows, head, sighting)

    def check(self, rows: list[Entry] | None = None, head: dict[str, Any] | None = None) -> ChainCheck:
        """Chain, head, pinned key and witness; the first problem found, or none. Given rows come
        from inside the writer transaction, where nobody appends meanwhile."""
        if rows is None:
            return self.inspect()[1]
        return self._check(rows, self.backend.head() if head is None else head, self._sighting())

    def _sighting(self) -> Sighting | None:
        return self.witness.read(self.location) if self.witness is not None else None

    def _check(self, rows: list[Entry], head: dict[str, Any] | None, sighting: Sighting | None) -> ChainCheck:
        result = check_chain(rows, head, self.legacy_key, self._known_good)
        if result.finding is None and result.history is not None:
            result.finding = self._check_pins(rows, result.history, sighting)
        if result.finding is None and not rows and self.key is not None:
            result.finding = Finding(1, "the ledger is empty: it has no genesis entry")
        self.history = result.history
        return result

    def _check_pins(self, rows: list[Entry], history: KeyHistory, sighting: Sighting | None) -> Finding | None:
        if sighting is not None:
            found = sighting.check(rows, history.first.key_id)
            if found is not None:
                return found
        if self.key is not None and self.key.key_id != history.current.key_id:
            return Finding(
                len(rows),
                f"the registrar key in keys/ is {self.key.key_id}, but the ledger is signed by key "
                f"{history.current.key_id}: restore the workspace's own key (keys are changed only by "
                "`faceswap keys rotate`)",
            )
        return None

    def verify(self) -> Finding | None:
        return self.check().finding

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Verified entries (LedgerTampered otherwise), optionally of one kind."""
        rows, result = self.inspect()
        if result.finding is not None:
            raise LedgerTampered(f"ledger {self.location} fails verification at {result.finding}")
        return rows if kind is None else [e for e in rows if e.kind == kind]

    def find(self, kind: str, **match: Any) -> list[Entry]:
        return entries_of(self.entries(), kind, **match)

    def head(self) -> dict[str, Any] | None:
        return self.backend.head()

    def append(
        self,
        kind: str,
        data: dict[str, Any] | DataBuilder,
        on_commit: Callable[[Entry], None] | None = None,
        guard: Callable[[list[Entry]], None] | None = None,
    ) -> Entry:
        """Append one entry after verifying the whole ledger inside the writer transaction.

        `data` may be a function of the entry's Position (seq, prev_hash), for content that must
        name where it lands (a signed manifest). `guard` sees the verified entries and may refuse
        (e.g. a consent revoked meanwhile); whatever it decides, an entry that names a consent record
        after that record's `consent.revoked` entry is refused. `on_commit` runs inside the transaction (renaming the
        file the entry describes into place); if it or the commit fails, nothing is appended."""
        if kind not in KINDS or kind in (GENESIS_KIND, ROTATION_KIND):
            raise BadInput(f"cannot append a ledger entry of kind '{kind}'")
        return self._append(kind, data, on_commit, guard)

    def _append(
        self,
        kind: str,
        data: dict[str, Any] | DataBuilder,
        on_commit: Callable[[Entry], None] | None,
        guard: Callable[[list[Entry]], None] | None,
        signer: RegistrarKey | None = None,
    ) -> Entry:
        signer = signer or self.key
        if signer is None:
            raise CheckFailed(f"ledger {self.location} is open read-only (no registrar key)")
        with self.backend.writer() as txn:
            rows = txn.rows()
            checked = self.check(rows, self.backend.head()) if rows or kind != GENESIS_KIND else None
            if checked is not None and checked.finding is not None:
                raise LedgerTampered(
                    f"ledger {self.location} fails verification at {checked.finding}; nothing was appended"
                )
            position = checked.last if checked is not None else Position(1, "0" * 64)
            if guard is not None:
                guard(rows)
            entry = self._build(kind, data, position, rows, signer)
            revoked = revoked_before(rows, kind, entry.data)
            if revoked is not None:  # whatever the caller's guard decided: revocation appended first wins
                raise RecordRevoked(
                    f"consent record {revoked.data['record_id']} was revoked (ledger seq {revoked.seq}); no {kind} "
                    "entry may name it after that: nothing was appended"
                )
            txn.insert(entry)
            if on_commit is not None:
                on_commit(entry)
            txn.write_head(
                {
                    "seq": entry.seq,
                    "entry_hash": entry.entry_hash,
                    "key_id": signer.key_id,
                    "signature": signer.sign(head_message(entry.seq, entry.entry_hash)),
                }
            )
            self._known_good.add((entry.entry_hash, entry.signature, signer.key_id))
        self.tree.add(entry)
        if self.witness is not None:
            first = self.history.first.key_id if self.history else signer.key_id
            self.witness.advance(Sighting(self.location, first, entry.seq, entry.entry_hash))
        return entry

    def _build(
        self, kind: str, data: dict[str, Any] | DataBuilder, position: Position, rows: list[Entry], signer: RegistrarKey
    ) -> Entry:
        """The signed entry at `position`; a data builder may ask for the rows it is built on
        (`rows_for`) and promise the entry's transparency-log leaf (`promise_leaf`), which is kept."""
        self._building, self._promised = (position, rows), None
        try:
            payload = data(position) if callable(data) else data
            created_at = utc_now()
            body = canonical_json({"kind": kind, "created_at": created_at, "data": payload})
            entry_hash = entry_hash_of(position.prev_hash, body)
            entry = Entry(position.seq, created_at, kind, body, position.prev_hash, entry_hash, signer.sign(entry_hash))
            if self._promised is not None and self._promised != (entry.seq, leaf_hash_of(leaf_text(entry))):
                raise LedgerTampered(
                    f"the entry at seq {entry.seq} is not the leaf its proof was signed for; nothing was appended"
                )
            return entry
        finally:
            self._building, self._promised = None, None

    def rows_for(self, position: Position) -> list[Entry]:
        """The verified rows an append at `position` is being built on (only while building it)."""
        if self._building is None or self._building[0] != position:
            raise RuntimeError("rows_for is only answered while the entry at that position is being built")
        return self._building[1]

    def promise_leaf(self, seq: int, leaf: bytes) -> None:
        """The entry being built at `seq` must have transparency-log leaf hash `leaf`."""
        self._promised = (seq, leaf)

    def write_genesis(self, note: str, extra: dict[str, Any] | None = None) -> Entry:
        """Seq 1, naming the first registrar key (and, in `extra`, what else a new workspace pins)."""
        assert self.key is not None
        return self._append(GENESIS_KIND, genesis_data(self.key.public, note, extra), None, None)

    def rotate(self, new_key: RegistrarKey, install: Callable[[], None]) -> Entry:
        """Hand signing to `new_key`: an entry signed by the old key, with the new key's proof;
        `install` puts the new key file in place inside the same transaction."""
        assert self.key is not None
        old = self.key
        data = {
            "old_key_id": old.key_id,
            "new_key_id": new_key.key_id,
            "new_public_key": new_key.public.b64,
            "proof": new_key.sign(rotation_message(old.key_id, new_key.key_id)),
        }
        entry = self._append(ROTATION_KIND, data, lambda _entry: install(), None, signer=old)
        self.key = new_key
        self.history = None
        return entry
