"""The ledger as a transparency log: every entry is a leaf of an RFC 9162 Merkle tree, whose heads
are signed as C2SP checkpoints with the registrar key; inclusion and consistency proofs on request.

A leaf is canonical JSON naming the entry's seq, kind and prev_hash (the hash of everything before
it) and what the entry commits to: its entry_hash, or, for an output, its *claim* (token, producer,
model, consent records, the keys that sign it). An output's file carries a proof of its own leaf, and
a file cannot carry a hash of itself: so, as Certificate Transparency logs a precertificate and
embeds the proof in the final certificate, the output's leaf is the claim its Content Credentials
state, settled before the file is signed. The next leaf's prev_hash commits to the whole entry
(the signed file's sha256 included).

The log's origin (checkpoint line 1, and the signing key's name) is derived from the ledger's first
entry, so it names this ledger and survives key rotation.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from faceswap.atomic import write_atomic
from faceswap.errors import BadInput
from faceswap.hashing import canonical_json
from faceswap.ledger.chain import Entry, KeyHistory, LedgerTampered, Position
from faceswap.ledger.keys import PublicKey, RegistrarKey
from faceswap.ledger.merkle import MerkleTree, ProofError, leaf_hash, root_from_inclusion, verify_consistency
from faceswap.ledger.note import Checkpoint, NoteUnverified, NoteVerifier, open_checkpoint, sign_note
from faceswap.report import Report

ORIGIN_PREFIX = "faceswap.ledger/"
OUTPUT_KIND = "output.written"
INCLUSION_TYPE = "faceswap.tlog.inclusion"
CONSISTENCY_TYPE = "faceswap.tlog.consistency"
ASSERTION_SCHEMA = 1


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def origin_of(first: Entry) -> str:
    """The log's name: fixed by its first entry (the genesis), whatever key signs later."""
    return ORIGIN_PREFIX + first.entry_hash[:32]


def output_claim(
    token: str,
    producer: str,
    model_fingerprint: str | None,
    consent_record_ids: Sequence[str],
    registrar_key_id: str,
    credentials_root: str,
) -> dict[str, Any]:
    """What an output's leaf commits to: what its Content Credentials state, nothing that depends
    on the signed file's bytes."""
    return {
        "token": token,
        "producer": producer,
        "model_fingerprint": model_fingerprint,
        "consent_record_ids": list(consent_record_ids),
        "registrar_key_id": registrar_key_id,
        "credentials_root": credentials_root,
    }


def claim_leaf(seq: int, prev_hash: str, claim: dict[str, Any]) -> str:
    return canonical_json({"seq": seq, "kind": OUTPUT_KIND, "prev_hash": prev_hash, "claim": claim})


def leaf_text(entry: Entry) -> str:
    """The leaf of a ledger entry: the one definition the log and every proof use. (A row whose
    body is not a ledger entry, which verification refuses anyway, gets the entry-hash form.)"""
    try:
        claim = entry.data.get("claim") if entry.kind == OUTPUT_KIND else None
    except (ValueError, KeyError, TypeError, AttributeError):
        claim = None
    if isinstance(claim, dict):
        return claim_leaf(entry.seq, entry.prev_hash, claim)
    return canonical_json(
        {"seq": entry.seq, "kind": entry.kind, "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash}
    )


def leaf_hash_of(text: str) -> bytes:
    return leaf_hash(text.encode("utf-8"))


class LogTree:
    """The tree over a ledger's verified rows, kept in step with its appends: after the first sync
    a new row costs a few hashes, not a pass over the ledger."""

    def __init__(self) -> None:
        self.tree = MerkleTree()
        self.head_hash: str | None = None
        self.origin: str | None = None

    def sync(self, rows: list[Entry]) -> MerkleTree:
        """Bring the tree to `rows` (verified: a matching entry hash at the tree's last leaf means
        every earlier row is the same, by the hash chain); rebuilt when they differ."""
        size = self.tree.size
        if size > len(rows) or (size and rows[size - 1].entry_hash != self.head_hash):
            self.tree, size = MerkleTree(), 0
        for entry in rows[size:]:
            self.tree.append(leaf_hash_of(leaf_text(entry)))
        self.head_hash = rows[-1].entry_hash if rows else None
        self.origin = origin_of(rows[0]) if rows else None
        return self.tree

    def add(self, entry: Entry) -> None:
        """An entry just appended after the rows last synced; otherwise the next sync rebuilds."""
        if self.head_hash == entry.prev_hash and self.tree.size == entry.seq - 1:
            self.tree.append(leaf_hash_of(leaf_text(entry)))
            self.head_hash = entry.entry_hash


@dataclass(frozen=True)
class LogKey:
    """The registrar key as the log's checkpoint signer, named by the log's origin."""

    origin: str
    key: RegistrarKey

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.origin, self.key.public.raw)

    def sign(self, checkpoint: Checkpoint) -> str:
        return sign_note(
            checkpoint.text, self.origin, self.key.public.raw, lambda data: base64.b64decode(self.key.sign(data))
        )


@dataclass(frozen=True)
class OutputProof:
    """What an output's Content Credentials carry: its leaf, the checkpoint signed when it was
    appended (the leaf is that tree's last), and the path between them."""

    leaf: str
    leaf_index: int
    tree_size: int
    inclusion_path: tuple[bytes, ...]
    checkpoint: str
    log_key: str

    def assertion(self) -> dict[str, Any]:
        return {
            "schema": ASSERTION_SCHEMA,
            "leaf": self.leaf,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_path": [b64(h) for h in self.inclusion_path],
            "checkpoint": self.checkpoint,
            "log_key": self.log_key,
        }


class LoggedLedger(Protocol):
    """What the log needs of a ledger (faceswap.ledger.core.Ledger is one), named here so that the
    log does not import the ledger that imports it."""

    key: RegistrarKey | None
    history: KeyHistory | None
    tree: LogTree

    @property
    def location(self) -> str: ...
    def entries(self, kind: str | None = None) -> list[Entry]: ...
    def rows_for(self, position: Position) -> list[Entry]: ...
    def promise_leaf(self, seq: int, leaf: bytes) -> None: ...


def precommit_output(ledger: LoggedLedger, position: Position, claim: dict[str, Any]) -> OutputProof:
    """Inside the append that will record an output at `position`: its leaf, the path a leaf
    appended now gets, and the checkpoint of the tree that ends with it, signed. The ledger refuses
    the append if the entry it records has another leaf."""
    rows = ledger.rows_for(position)
    if ledger.key is None or not rows:
        raise BadInput("an output's proof is signed with the registrar key, which is not available here")
    tree = ledger.tree.sync(rows)
    leaf = claim_leaf(position.seq, position.prev_hash, claim)
    path = tree.next_path()
    root = root_from_inclusion(tree.size, tree.size + 1, leaf_hash_of(leaf), path)
    signer = LogKey(origin_of(rows[0]), ledger.key)
    note = signer.sign(Checkpoint(signer.origin, tree.size + 1, root))
    ledger.promise_leaf(position.seq, leaf_hash_of(leaf))
    return OutputProof(leaf, tree.size, tree.size + 1, tuple(path), note, signer.verifier.vkey)


@dataclass(frozen=True)
class LogState:
    """The verified rows of a ledger, its tree and its checkpoint signer (None when read-only)."""

    rows: list[Entry]
    tree: MerkleTree
    origin: str
    verifiers: tuple[NoteVerifier, ...]
    signer: LogKey | None

    @classmethod
    def of(cls, ledger: LoggedLedger) -> LogState:
        rows = ledger.entries()
        if not rows:
            raise BadInput(f"the ledger {ledger.location} is empty")
        tree = ledger.tree.sync(rows)
        origin = origin_of(rows[0])
        keys: list[PublicKey] = [key for _, key in ledger.history.spans] if ledger.history else []
        signer = LogKey(origin, ledger.key) if ledger.key is not None else None
        return cls(rows, tree, origin, tuple(NoteVerifier(origin, k.raw) for k in keys), signer)

    def checkpoint(self, size: int | None = None) -> str:
        if self.signer is None:
            raise BadInput("a checkpoint is signed with the workspace's registrar key, which is not available here")
        size = self.tree.size if size is None else size
        return self.signer.sign(Checkpoint(self.origin, size, self.tree.root(size)))

    @property
    def log_key(self) -> str:
        return self.signer.verifier.vkey if self.signer else self.verifiers[-1].vkey

    def head_of(self, note: str) -> Checkpoint:
        """A checkpoint someone kept, checked: signed by one of this log's keys, for this log, and
        a head this log has had (its root is the root of the log's first `size` leaves)."""
        try:
            checkpoint, _ = open_checkpoint(note, self.verifiers)
        except NoteUnverified as error:
            raise LedgerTampered(f"the checkpoint is not one of this log's heads: {error}") from None
        if checkpoint.origin != self.origin:
            raise LedgerTampered(f"the checkpoint is for log {checkpoint.origin}, this ledger is {self.origin}")
        if checkpoint.size > self.tree.size:
            raise LedgerTampered(
                f"the checkpoint names tree size {checkpoint.size} but the log holds {self.tree.size} entries: "
                "entries were removed since it was signed"
            )
        if self.tree.root(checkpoint.size) != checkpoint.root:
            raise LedgerTampered(
                f"the log does not extend the checkpoint: its first {checkpoint.size} entries hash to "
                f"{b64(self.tree.root(checkpoint.size))}, the checkpoint says {b64(checkpoint.root)}; the log was "
                "rewritten after that checkpoint was signed"
            )
        return checkpoint


def inclusion_proof(state: LogState, seq: int, at: Checkpoint | None = None) -> dict[str, Any]:
    """Entry `seq`'s leaf and its path to the current checkpoint (or to `at`, a verified older head)."""
    size = at.size if at is not None else state.tree.size
    if not 1 <= seq <= size:
        raise BadInput(f"seq {seq} is not in a log of {size} entries")
    entry = state.rows[seq - 1]
    leaf = leaf_text(entry)
    return {
        "type": INCLUSION_TYPE,
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": size,
        "leaf": leaf,
        "leaf_hash": b64(leaf_hash_of(leaf)),
        "inclusion_path": [b64(h) for h in state.tree.inclusion_proof(seq - 1, size)],
        "checkpoint": state.checkpoint(size),
        "log_key": state.log_key,
        "entry": entry.to_json(),
    }


def consistency_proof(state: LogState, old: Checkpoint) -> dict[str, Any]:
    """The proof that the current log extends `old` (a head already checked by `head_of`)."""
    size = state.tree.size
    if old.size == 0:
        raise BadInput("a checkpoint of the empty log proves nothing: there is no consistency proof from it")
    proof = state.tree.consistency_proof(old.size, size)
    try:
        verify_consistency(old.size, size, old.root, state.tree.root(), proof)
    except ProofError as error:  # never hand out a proof that does not verify
        raise LedgerTampered(f"the log's own consistency proof fails: {error}") from None
    return {
        "type": CONSISTENCY_TYPE,
        "origin": state.origin,
        "old_size": old.size,
        "old_root": b64(old.root),
        "tree_size": size,
        "root": b64(state.tree.root()),
        "consistency_path": [b64(h) for h in proof],
        "checkpoint": state.checkpoint(),
        "log_key": state.log_key,
    }


@dataclass
class CheckpointMade(Report):
    """A signed checkpoint of the log now, and where it was also written (if anywhere)."""

    state: LogState
    note: str
    written_to: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.state.origin,
            "tree_size": self.state.tree.size,
            "root_hash": b64(self.state.tree.root()),
            "checkpoint": self.note,
            "log_key": self.state.log_key,
            "written_to": str(self.written_to) if self.written_to else None,
        }

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def text(self) -> str:
        """The note itself (already line-ended), unless it went to a file: then where."""
        if self.written_to:
            return (
                f"checkpoint of {self.state.origin} at tree size {self.state.tree.size} written to {self.written_to}\n"
            )
        return self.note


def make_checkpoint(ledger: LoggedLedger, out: Path | None = None) -> CheckpointMade:
    state = LogState.of(ledger)
    note = state.checkpoint()
    if out:
        write_atomic(out, note)
    return CheckpointMade(state, note, out)
