"""The signed, hash-chained ledger and the registrar keys: the foundation that consent, training,
conversion and verification all record into and decide from."""

from __future__ import annotations

from faceswap.errors import BadInput
from faceswap.ledger import watermark_keys
from faceswap.ledger.chain import KINDS, Entry, Finding, LedgerTampered, Position, entry_hash_of
from faceswap.ledger.core import Backend, Ledger
from faceswap.ledger.keys import PublicKey, RegistrarKey, key_file
from faceswap.ledger.sqlite import LedgerUnreadable, SqliteBackend
from faceswap.ledger.witness import Witness

__all__ = [
    "KINDS",
    "Entry",
    "Finding",
    "Ledger",
    "LedgerMissing",
    "LedgerTampered",
    "LedgerUnreadable",
    "Position",
    "PublicKey",
    "RegistrarKey",
    "entry_hash_of",
    "ledger_backend",
    "ledger_exists",
    "open_ledger",
]


class LedgerMissing(BadInput):
    """No ledger where one was expected (read-only use of a workspace that has none)."""


def ledger_backend(workspace) -> Backend:
    """The one place that picks where a workspace's ledger lives: the workspace's PostgreSQL URL
    (--ledger-url, $FACESWAP_LEDGER_URL) when it has one, else its own SQLite file."""
    url = getattr(workspace, "ledger_url", None)
    if url:
        from faceswap.ledger.postgres import PostgresBackend

        return PostgresBackend(url)
    return SqliteBackend(workspace.ledger_path)


def ledger_exists(workspace) -> bool:
    return ledger_backend(workspace).exists() or key_file(workspace.keys_dir).exists()


def open_ledger(workspace, writable: bool = True) -> Ledger:
    """The workspace's ledger with its registrar key, checked for the pairs that must go together.

    A fresh workspace gets a key, a watermark secret and a ledger with a genesis entry pinning both,
    together. A key is never created
    where a ledger exists, and a ledger is never recreated where a key (or a witnessed ledger) existed:
    those are deletions, refused with what to restore. Read-only use works without the private key."""
    backend = ledger_backend(workspace)
    witness = Witness(workspace.state_dir)
    keys = workspace.keys_dir
    workspace.ensure()
    with backend.guard():
        has_key = key_file(keys).exists()
        has_ledger = backend.exists() and bool(backend.rows())
        if not has_key and not has_ledger:
            seen = witness.read(backend.location)
            if seen is not None:
                raise LedgerTampered(
                    f"the ledger {backend.location} and its key are gone, but this machine saw it hold seq "
                    f"{seen.seq} (key {seen.first_key_id}): restore keys/ and the ledger from a backup"
                )
            if not writable:
                raise LedgerMissing(f"no ledger in {workspace.root}")
            key = RegistrarKey.generate()
            key.install(keys)
            mark_key = watermark_keys.WatermarkKey.generate()
            watermark_keys.install(keys, mark_key)
            ledger = Ledger(backend, key, witness)
            ledger.write_genesis("faceswap workspace created", {watermark_keys.GENESIS_FIELD: mark_key.pin()})
            return ledger
        if has_key and not has_ledger:
            key_id = _key_id_or_unreadable(keys)
            raise LedgerTampered(
                f"keys/ holds registrar key {key_id}, but the ledger {backend.location} is missing or empty; a "
                "ledger is never recreated where its key exists: restore the ledger and its signed head from a backup"
            )
        if not has_key:
            if writable:
                raise LedgerTampered(
                    f"the ledger {backend.location} exists but its registrar key {key_file(keys)} is missing: "
                    "restore the key, or copy keys/ from the workspace that created a shared ledger (a key is never "
                    "created where a ledger exists)"
                )
            return Ledger(backend, None, witness)
    return Ledger(backend, RegistrarKey.load(keys), witness)


def _key_id_or_unreadable(keys) -> str:
    try:
        return RegistrarKey.load(keys).key_id
    except BadInput:
        return "(unreadable)"
    except Exception:  # noqa: BLE001 - only for the message
        return "(unreadable)"
