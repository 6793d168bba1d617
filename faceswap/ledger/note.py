"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, and the transparency-log
checkpoint they carry (c2sp.org/tlog-checkpoint): origin, tree size, base64 root hash.

A note is text ending in a newline, a blank line, then signature lines `— <key name> <base64(key id
|| signature)>`. The key id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key).
Verifiers ignore signatures from keys they do not know, reject the note when a known key's signature
fails, and accept it only when at least one known key's signature verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from faceswap.errors import BadInput

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 64 * 1024
NAME = re.compile(r"[^\s+]+")
SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class NoteError(BadInput):
    """A note that is malformed (exit 2), or, as NoteUnverified, not signed by a known key."""


class NoteUnverified(NoteError):
    """A well-formed note that no known key signed, or whose known key's signature fails."""


def key_id_of(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise NoteError(f"a note key name must be non-empty, without spaces or '+': {name!r}")


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 note verifier key: name, id and public key (the `name+hex(id)+base64` vkey)."""

    name: str
    public: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public) != 32:
            raise NoteError("an Ed25519 note key is 32 bytes")

    @property
    def key_id(self) -> int:
        return key_id_of(self.name, self.public)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        name, _, rest = str(vkey).partition("+")
        hex_id, _, encoded = rest.partition("+")
        try:
            raw = base64.b64decode(encoded, validate=True)
            key_id = int(hex_id, 16) if re.fullmatch(r"[0-9a-f]{8}", hex_id) else -1
        except (binascii.Error, ValueError):
            raise NoteError(f"not a note verifier key: {vkey!r}") from None
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError(f"not an Ed25519 note verifier key: {vkey!r}")
        verifier = cls(name, raw[1:])
        if verifier.key_id != key_id:
            raise NoteError(f"the verifier key's id does not match its name and key: {vkey!r}")
        return verifier

    def verifies(self, text: str, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text.encode("utf-8"))
        except (InvalidSignature, ValueError):
            return False
        return True


def sign_note(text: str, name: str, public: bytes, sign: Callable[[bytes], bytes]) -> str:
    """`text` with one Ed25519 signature line by the key `name`/`public`; `sign` signs bytes."""
    _check_text(text)
    verifier = NoteVerifier(name, public)
    signature = verifier.key_id.to_bytes(4, "big") + sign(text.encode("utf-8"))
    return f"{text}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(signature).decode('ascii')}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text ends in a newline and holds no control characters")


@dataclass(frozen=True)
class OpenedNote:
    text: str
    signed_by: tuple[str, ...]  # vkeys whose signatures verified


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """The note's text once a known key's signature verifies; NoteError otherwise."""
    known = {(v.name, v.key_id): v for v in verifiers}
    text, lines = _split(note)
    verified: list[str] = []
    for line in lines:
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        _check_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("malformed note: a signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("malformed note: a signature is too short")
        verifier = known.get((name, int.from_bytes(raw[:4], "big")))
        if verifier is None:
            continue
        if not verifier.verifies(text, raw[4:]):
            raise NoteUnverified(f"the note's signature by {name} does not verify")
        verified.append(verifier.vkey)
    if not verified:
        raise NoteUnverified("the note has no signature by a known key")
    return OpenedNote(text, tuple(verified))


def _split(note: str) -> tuple[str, list[str]]:
    if not isinstance(note, str) or any(ord(c) < 0x20 and c != "\n" for c in note) or not note.endswith("\n"):
        raise NoteError("malformed note")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("malformed note: no signatures")
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    if not lines or len(lines) > MAX_SIGNATURES or not all(line.startswith(SIGNATURE_PREFIX) for line in lines):
        raise NoteError("malformed note: bad signature lines")
    return text, lines


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: the text of a C2SP checkpoint note."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is at least three non-empty lines: origin, tree size, root hash")
        origin, size, root = lines[0], lines[1], lines[2]
        if not SIZE.fullmatch(size):
            raise NoteError(f"a checkpoint's tree size is a decimal number without leading zeros, not {size!r}")
        try:
            raw = base64.b64decode(root, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise NoteError("a checkpoint's root hash is 32 bytes in base64")
        return cls(origin, int(size), raw, tuple(lines[3:-1]))


def open_checkpoint(note: str, verifiers: Iterable[NoteVerifier]) -> tuple[Checkpoint, OpenedNote]:
    """A signed checkpoint, verified; its origin must be the name of a key that signed it."""
    opened = open_note(note, verifiers)
    checkpoint = Checkpoint.parse(opened.text)
    if not any(vkey.split("+", 1)[0] == checkpoint.origin for vkey in opened.signed_by):
        raise NoteUnverified(f"the checkpoint of {checkpoint.origin} is not signed by that log's key")
    return checkpoint, opened


def read_note(path: Path) -> str:
    """A note file's text (UTF-8, at most MAX_NOTE_BYTES); BadInput when it cannot be one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_NOTE_BYTES + 1)
    except OSError as error:
        raise BadInput(f"{path}: cannot read ({error.strerror or error})") from None
    if len(data) > MAX_NOTE_BYTES:
        raise BadInput(f"{path}: larger than a checkpoint can be ({MAX_NOTE_BYTES} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"{path}: not a signed note (not UTF-8 text)") from None
