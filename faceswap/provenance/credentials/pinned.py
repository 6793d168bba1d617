"""The workspace's Content Credentials identity, pinned in the ledger: the first sink to need it
creates it and records the root's fingerprint (and the root certificate, which is public) in a
`credentials.created` entry; from then on only that root is accepted, and verifiers with a ledger
export read the trust anchor from that entry."""

from __future__ import annotations

from pathlib import Path

from faceswap.errors import CheckFailed
from faceswap.ledger import Entry, Ledger
from faceswap.provenance.credentials.identity import SigningIdentity, load_identity, load_or_create_identity

KIND = "credentials.created"


class _AlreadyPinned(Exception):
    """Another process recorded the root first."""


def _pinned_root(entries: list[Entry]) -> str | None:
    roots = {e.data.get("root_fingerprint") for e in entries if e.kind == KIND}
    if len(roots) > 1:
        raise CheckFailed("the ledger pins more than one Content Credentials root")
    return next(iter(roots), None)


def identity_for(ledger: Ledger, keys_dir: Path) -> SigningIdentity:
    """The pinned identity, created and recorded on first use."""
    pinned = _pinned_root(ledger.entries())
    if pinned is not None:
        return load_identity(keys_dir, expected_root_fingerprint=pinned)
    identity = load_or_create_identity(keys_dir)

    def only_once(rows: list[Entry]) -> None:
        if _pinned_root(rows) is not None:
            raise _AlreadyPinned

    try:
        ledger.append(
            KIND,
            {"root_fingerprint": identity.root_fingerprint, "root_pem": identity.root_pem.decode("ascii")},
            guard=only_once,
        )
    except _AlreadyPinned:
        return load_identity(keys_dir, expected_root_fingerprint=_pinned_root(ledger.entries()))
    return identity


def trust_anchor_in(entries: list[Entry]) -> bytes | None:
    """The root certificate a ledger (or an export of it) pins, as PEM."""
    for entry in entries:
        if entry.kind == KIND and entry.data.get("root_pem"):
            return str(entry.data["root_pem"]).encode("ascii")
    return None
