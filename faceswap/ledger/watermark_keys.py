"""The watermark secret: what makes a mark that credits a ledger entry impossible to compute from the
source. 32 random bytes in `keys/watermark/KEY_ID.secret` (0600, folder 0700), beside the registrar
key; the ledger pins each secret by a commitment (sha256 of the secret under a domain label, whose
first 16 hex digits are the key id), never the secret itself: in the genesis entry of a workspace
created with one, or in a signed `watermark.key` entry (an older workspace's first secret, and every
rotation). The last pin is the active secret; older ones stay on disk so old outputs still read.

Everything that marks or reads derives its own key from the secret with HMAC-SHA256 under a label
(`WatermarkKeys.derive`), so no two uses share a key: the tiles layer uses TILES_LABEL.

One secret serves a whole ledger: a shared PostgreSQL ledger pins one active secret for every
workspace that appends to it, and a workspace whose keys/ lacks the pinned secret refuses to mark
(it never makes its own). The secret reaches another workspace the way the registrar key already
must (a copy of keys/), or by `faceswap keys import-watermark BUNDLE` from a verifier bundle
(`ledger export --with-watermark-keys`), whose secrets count only where this ledger pins them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceswap.atomic import exclusive_file
from faceswap.errors import BadInput, CheckFailed
from faceswap.ledger.chain import GENESIS_KIND, Entry

KIND = "watermark.key"
GENESIS_FIELD = "watermark_key"  # the genesis entry's pin of a workspace's first secret
FOLDER = "watermark"
SUFFIX = ".secret"
SECRET_BYTES = 32
COMMITMENT_LABEL = b"faceswap/watermark-key/v1/commitment\x00"
TILES_LABEL = b"faceswap/watermark/v2/tiles"


def commitment_of(secret: bytes) -> str:
    """What the ledger records about a secret: sha256 under a domain label (reveals nothing of it)."""
    return hashlib.sha256(COMMITMENT_LABEL + secret).hexdigest()


@dataclass(frozen=True)
class WatermarkKey:
    """One secret and its id (the first 16 hex digits of its commitment)."""

    secret: bytes = field(repr=False)

    @property
    def commitment(self) -> str:
        return commitment_of(self.secret)

    @property
    def key_id(self) -> str:
        return self.commitment[:16]

    def derive(self, label: bytes) -> bytes:
        """A key for one use, HMAC-SHA256(secret, label): another label gives an unrelated key."""
        return hmac.new(self.secret, label, hashlib.sha256).digest()

    def pin(self) -> dict[str, str]:
        return {"key_id": self.key_id, "commitment": self.commitment}

    @classmethod
    def generate(cls) -> WatermarkKey:
        return cls(secrets.token_bytes(SECRET_BYTES))


@dataclass(frozen=True)
class Pin:
    """A ledger row naming a secret: where, its id and commitment."""

    seq: int
    key_id: str
    commitment: str


@dataclass(frozen=True)
class WatermarkKeys:
    """The secrets a ledger pins that are present here, oldest first, and the active one's id.

    `derive` is what other work reuses (a per-model key, a verification page): always from the
    active secret. Readers try `newest_first()`; a pinned secret missing here is in `missing`."""

    keys: tuple[WatermarkKey, ...]
    active_id: str
    missing: tuple[str, ...] = ()

    @property
    def active(self) -> WatermarkKey:
        """The secret that marks; CheckFailed, naming what to copy, when it is not here."""
        found = self.by_id(self.active_id)
        if found is None:
            raise _missing(self.active_id)
        return found

    @property
    def key_id(self) -> str:
        return self.active_id

    def derive(self, label: bytes) -> bytes:
        return self.active.derive(label)

    def by_id(self, key_id: str) -> WatermarkKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def newest_first(self) -> tuple[WatermarkKey, ...]:
        return tuple(reversed(self.keys))


def folder(keys_dir: Path) -> Path:
    return Path(keys_dir) / FOLDER


def pins(entries: Iterable[Entry]) -> list[Pin]:
    """Every secret the ledger pins, in ledger order (the last is active)."""
    found = []
    for entry in entries:
        data = entry.data.get(GENESIS_FIELD) if entry.kind == GENESIS_KIND else None
        data = entry.data if entry.kind == KIND else data
        if isinstance(data, dict) and isinstance(data.get("commitment"), str):
            found.append(Pin(entry.seq, str(data["commitment"])[:16], str(data["commitment"])))
    return found


def install(keys_dir: Path, key: WatermarkKey) -> Path:
    """Write the secret's file (0600 in a 0700 folder); never over an existing one."""
    where = folder(keys_dir)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = where / f"{key.key_id}{SUFFIX}"
    try:
        with exclusive_file(path, mode=0o600) as handle:
            handle.write(base64.b64encode(key.secret) + b"\n")
    except FileExistsError:
        if _read(path) != key:
            raise CheckFailed(f"{path} exists and holds another secret") from None
    return path


def _read(path: Path) -> WatermarkKey | None:
    try:
        secret = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, ValueError):
        return None
    return WatermarkKey(secret) if len(secret) == SECRET_BYTES else None


def load(entries: Iterable[Entry], keys_dir: Path | None, extra: Iterable[WatermarkKey] = ()) -> WatermarkKeys | None:
    """The pinned secrets found in keys_dir (or among `extra`, e.g. a verifier bundle's), each checked
    against its commitment; None when the ledger pins none. A file that no pin names is never used."""
    pinned = pins(entries)
    if not pinned:
        return None
    offered = {k.commitment: k for k in extra}
    keys, missing = [], []
    for pin in pinned:
        key = offered.get(pin.commitment)
        if key is None and keys_dir is not None:
            key = _read(folder(keys_dir) / f"{pin.key_id}{SUFFIX}")
        if key is not None and key.commitment == pin.commitment:
            keys.append(key)
        else:
            missing.append(pin.key_id)
    return WatermarkKeys(tuple(keys), pinned[-1].key_id, tuple(missing))


class _AlreadyPinned(Exception):
    """Another process pinned a secret first."""


def for_writing(ledger: Any, keys_dir: Path) -> WatermarkKeys:
    """The ledger's keys with the active secret present: created and pinned (a `watermark.key`
    entry) for a ledger that pins none yet; refused where the pinned secret is missing here."""
    keys = load(ledger.entries(), keys_dir) or _create(ledger, keys_dir)
    if keys.by_id(keys.active_id) is None:
        raise _missing(keys.active_id)
    return keys


def _missing(key_id: str) -> CheckFailed:
    return CheckFailed(
        f"the active watermark secret {key_id} that the ledger pins is not in keys/{FOLDER}/: copy keys/ from "
        "the workspace that holds it, or `faceswap keys import-watermark BUNDLE` (a new secret is never made "
        "where one is pinned)"
    )


def _create(ledger: Any, keys_dir: Path) -> WatermarkKeys:
    key = WatermarkKey.generate()
    path = install(keys_dir, key)

    def only_once(rows: list[Entry]) -> None:
        if pins(rows):
            raise _AlreadyPinned

    try:
        ledger.append(KIND, {**key.pin(), "note": "first watermark secret"}, guard=only_once)
    except _AlreadyPinned:
        path.unlink(missing_ok=True)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    found = load(ledger.entries(), keys_dir)
    assert found is not None
    return found


def rotate(ledger: Any, keys_dir: Path) -> tuple[Entry, str | None, str]:
    """A new active secret, pinned by a `watermark.key` entry; the old ones stay for reading.
    Returns (entry, old key id or None, new key id)."""
    before = load(ledger.entries(), keys_dir)
    key = WatermarkKey.generate()
    path = install(keys_dir, key)
    previous = before.active_id if before else None
    try:
        entry = ledger.append(KIND, {**key.pin(), "previous_key_id": previous, "note": "rotated"})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return entry, previous, key.key_id


def bundle_items(keys: WatermarkKeys) -> list[dict[str, str]]:
    """The secrets as a verifier bundle carries them."""
    return [{"key_id": k.key_id, "secret": base64.b64encode(k.secret).decode("ascii")} for k in keys.keys]


def from_bundle(items: Any) -> list[WatermarkKey]:
    """Secrets from a bundle (checked against the ledger's pins by `load`, never trusted alone)."""
    keys = []
    for item in items or []:
        try:
            secret = base64.b64decode(str(item["secret"]), validate=True)
        except (KeyError, TypeError, ValueError):
            raise BadInput("a watermark secret in the bundle is not valid base64") from None
        if len(secret) != SECRET_BYTES:
            raise BadInput("a watermark secret in the bundle has the wrong length")
        keys.append(WatermarkKey(secret))
    return keys


def import_secrets(entries: list[Entry], keys_dir: Path, offered: list[WatermarkKey]) -> list[str]:
    """Install the offered secrets that these entries pin (others are refused); their key ids."""
    pinned = {p.commitment for p in pins(entries)}
    stray = [k.key_id for k in offered if k.commitment not in pinned]
    if stray:
        raise CheckFailed(f"watermark secret(s) {', '.join(stray)} are not pinned by this workspace's ledger")
    for key in offered:
        install(keys_dir, key)
    return [k.key_id for k in offered]
