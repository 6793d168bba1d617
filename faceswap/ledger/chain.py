"""The ledger's entries and the one function that checks a chain of them.

entry_hash = sha256(prev_hash || body), signature = Ed25519(entry_hash) by the registrar key active at
that row. The body is canonical JSON carrying kind, created_at and data, so no column can be edited
unseen. Seq 1 is a genesis entry naming the first key; a `key.rotated` entry, signed by the old key
and carrying the new key's proof of possession, hands signing to the new key. A signed head record
names the last row, so rows deleted from the end are detected too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from faceswap.errors import CheckFailed, ConsentDenied
from faceswap.hashing import canonical_json, sha256_hex
from faceswap.ledger.keys import PublicKey

GENESIS_HASH = "0" * 64
GENESIS_KIND = "ledger.genesis"
ROTATION_KIND = "key.rotated"
KINDS = frozenset(
    {
        GENESIS_KIND,
        ROTATION_KIND,
        "consent.registered",
        "consent.revoked",
        "faceset.built",
        "model.trained",
        "output.written",
        "credentials.created",
        "ledger.note",
        "watermark.key",
    }
)


class LedgerTampered(CheckFailed):
    """The chain, the head, the key or the witness says the ledger was changed: exit 1."""


class RecordRevoked(ConsentDenied):
    """An append would name a consent record after its `consent.revoked` entry: exit 1."""


def named_records(kind: str, data: dict[str, Any]) -> set[str]:
    """The consent records an entry's work was done under (a faceset's record, the pair a model or
    an output names); a `consent.*` entry is about its record, not work done under it."""
    if kind.startswith("consent."):
        return set()
    named = {str(rid) for rid in data.get("consent_record_ids") or []}
    return named | ({str(data["record_id"])} if data.get("record_id") else set())


def revoked_before(entries: Iterable[Entry], kind: str, data: dict[str, Any]) -> Entry | None:
    """The `consent.revoked` entry of a record this new entry would name, if there is one."""
    named = named_records(kind, data)
    return next((e for e in entries if e.kind == "consent.revoked" and e.data.get("record_id") in named), None)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash_of(prev_hash: str, body: str) -> str:
    return sha256_hex(prev_hash + body)


def head_message(seq: int, entry_hash: str) -> str:
    return canonical_json({"head_seq": seq, "entry_hash": entry_hash})


def rotation_message(old_key_id: str, new_key_id: str) -> str:
    return canonical_json({"rotate_from": old_key_id, "rotate_to": new_key_id})


@dataclass(frozen=True)
class Entry:
    seq: int
    created_at: str
    kind: str
    body: str
    prev_hash: str
    entry_hash: str
    signature: str

    @cached_property
    def data(self) -> dict[str, Any]:
        return json.loads(self.body)["data"]

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Entry:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Position:
    """Where the next entry goes: its seq and the hash it chains to (the head at that moment)."""

    seq: int
    prev_hash: str


@dataclass(frozen=True)
class Finding:
    """The first thing wrong with a ledger: the seq it is at and what it is."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.problem}"


@dataclass(frozen=True)
class KeyHistory:
    """Which registrar key signs which rows: (first seq, key) spans, oldest first."""

    spans: tuple[tuple[int, PublicKey], ...]

    def key_at(self, seq: int) -> PublicKey:
        chosen = self.spans[0][1]
        for first, key in self.spans:
            if first <= seq:
                chosen = key
        return chosen

    @property
    def first(self) -> PublicKey:
        return self.spans[0][1]

    @property
    def current(self) -> PublicKey:
        return self.spans[-1][1]

    def by_id(self, key_id: str) -> PublicKey | None:
        return next((key for _, key in self.spans if key.key_id == key_id), None)

    def signed_at(self, key_id: str, seq: int) -> bool:
        """Was `key_id` the signing key at row `seq`?"""
        return self.key_at(seq).key_id == key_id


@dataclass
class ChainCheck:
    """What check_chain found: the first problem (or None) and the key history it walked."""

    finding: Finding | None
    history: KeyHistory | None
    last: Position = field(default_factory=lambda: Position(1, GENESIS_HASH))
    genesis_hash: str | None = None


def genesis_data(key: PublicKey, note: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"key_id": key.key_id, "public_key": key.b64, "note": note, **(extra or {})}


def check_chain(
    entries: list[Entry],
    head: dict[str, Any] | None,
    legacy_key: PublicKey | None = None,
    known_good: set[tuple[str, str, str]] | None = None,
) -> ChainCheck:
    """Walk the chain and return the first problem, or none when every row and the head agree.

    The first key comes from the genesis entry; a ledger written before genesis entries existed is
    checked against `legacy_key` (the workspace key, or an export's). `known_good` holds
    (entry_hash, signature, key id) triples already verified in this process: bodies are re-hashed
    every time, only signatures are not re-checked."""
    known_good = known_good if known_good is not None else set()
    spans: list[tuple[int, PublicKey]] = []
    prev_hash, expected, genesis_hash = GENESIS_HASH, 1, None
    finding: Finding | None = None
    for entry in entries:
        finding = _check_entry(entry, expected, prev_hash, spans, legacy_key, known_good)
        if finding is not None:
            break
        if entry.seq == 1 and entry.kind == GENESIS_KIND:
            genesis_hash = entry.entry_hash
        prev_hash, expected = entry.entry_hash, expected + 1
    history = KeyHistory(tuple(spans)) if spans else None
    if finding is None:
        finding = _check_end(head, entries, history, expected - 1)
    return ChainCheck(finding, history, Position(expected, prev_hash), genesis_hash)


def _check_entry(
    entry: Entry,
    expected: int,
    prev_hash: str,
    spans: list[tuple[int, PublicKey]],
    legacy_key: PublicKey | None,
    known_good: set[tuple[str, str, str]],
) -> Finding | None:
    """One row: its place in the chain, its hash, its body, its signature; a genesis or a rotation
    adds to `spans` (the key history)."""
    if entry.seq != expected:
        if entry.seq > expected:
            return Finding(expected, f"missing (next row is seq {entry.seq}): a row was deleted")
        return Finding(entry.seq, "out of order or duplicated")
    if entry.prev_hash != prev_hash:
        return Finding(entry.seq, "prev_hash does not match the previous entry: rows deleted, inserted or reordered")
    if entry_hash_of(entry.prev_hash, entry.body) != entry.entry_hash:
        return Finding(entry.seq, "body does not match entry_hash: the entry was edited")
    try:
        body = json.loads(entry.body)
        data = body["data"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return Finding(entry.seq, "body is not a ledger entry")
    if body.get("kind") != entry.kind or body.get("created_at") != entry.created_at:
        return Finding(entry.seq, "kind or created_at column differs from the signed body")
    if entry.kind not in KINDS:
        return Finding(entry.seq, f"unknown kind '{entry.kind}'")
    problem = _first_key(entry, data, spans, legacy_key) if entry.seq == 1 else None
    if problem is None and entry.seq > 1 and entry.kind == GENESIS_KIND:
        problem = "a second genesis entry"
    if problem is not None:
        return Finding(entry.seq, problem)
    signer = KeyHistory(tuple(spans)).key_at(entry.seq)
    proof = (entry.entry_hash, entry.signature, signer.key_id)
    if proof not in known_good:
        if not signer.verify(entry.signature, entry.entry_hash):
            return Finding(entry.seq, f"signature does not verify with registrar key {signer.key_id}")
        known_good.add(proof)
    if entry.kind == ROTATION_KIND:
        return _rotate(entry, data, signer, spans)
    return None


def _first_key(
    entry: Entry, data: dict[str, Any], spans: list[tuple[int, PublicKey]], legacy_key: PublicKey | None
) -> str | None:
    """Seq 1 names the first key (genesis), or the legacy key stands in; None when one was found."""
    if entry.kind == GENESIS_KIND:
        try:
            spans.append((1, PublicKey.from_b64(data["public_key"])))
        except (CheckFailed, KeyError, TypeError):
            return "genesis entry does not hold a valid public key"
        return None
    if legacy_key is None:
        return "the ledger has no genesis entry naming its key"
    spans.append((1, legacy_key))
    return None


def _rotate(
    entry: Entry, data: dict[str, Any], signer: PublicKey, spans: list[tuple[int, PublicKey]]
) -> Finding | None:
    """A key.rotated row: signed by the old key (already checked) and proven by the new one."""
    try:
        new_key = PublicKey.from_b64(data["new_public_key"])
        proof_ok = new_key.verify(data["proof"], rotation_message(signer.key_id, new_key.key_id))
    except (CheckFailed, KeyError, TypeError):
        proof_ok = False
    if not proof_ok or data.get("old_key_id") != signer.key_id:
        return Finding(entry.seq, "key rotation is not signed by both the old and the new key")
    spans.append((entry.seq + 1, new_key))
    return None


def _check_end(
    head: dict[str, Any] | None, entries: list[Entry], history: KeyHistory | None, last_seq: int
) -> Finding | None:
    """The signed head against the last row (a missing head, or rows deleted from the end)."""
    if head is None:
        return Finding(last_seq, "the signed head record is missing") if last_seq > 0 else None
    if last_seq == 0 or history is None:
        return Finding(1, f"the ledger is empty but its signed head names seq {head.get('seq')}")
    return _check_head(head, entries, history, last_seq)


def _check_head(head: dict[str, Any], entries: list[Entry], history: KeyHistory, last_seq: int) -> Finding | None:
    try:
        seq, entry_hash, signature = int(head["seq"]), str(head["entry_hash"]), str(head["signature"])
    except (KeyError, TypeError, ValueError):
        return Finding(last_seq, "the head record is unreadable")
    if seq < 1 or not history.key_at(seq).verify(signature, head_message(seq, entry_hash)):
        return Finding(last_seq, "head record's signature does not verify")
    if seq > last_seq:
        return Finding(last_seq + 1, f"missing: the signed head says the ledger ends at seq {seq}")
    if entries[seq - 1].entry_hash != entry_hash:
        return Finding(seq, "entry differs from the signed head")
    return None


def entries_of(entries: Iterable[Entry], kind: str, **match: Any) -> list[Entry]:
    """Entries of `kind` whose data has every given key equal to the given value."""
    return [e for e in entries if e.kind == kind and all(e.data.get(k) == v for k, v in match.items())]
