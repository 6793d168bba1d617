"""Canonical JSON, hashing and the workspace's Ed25519 registrar key.

Consent records and ledger entries are signed with the same key; its id is the sha256 of the raw
public key (short form: the first 16 hex digits).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.errors import CheckFailed

PRIVATE_KEY_FILE = "registrar.key"
PUBLIC_KEY_FILE = "registrar.pub"


def canonical_json(payload: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the bytes that get hashed and signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @property
    def key_id(self) -> str:
        return key_id_of(self.raw)

    @property
    def b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_b64(cls, text: str) -> PublicKey:
        return cls(base64.b64decode(text))

    def verify(self, signature_b64: str, message: bytes | str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if isinstance(message, str):
            message = message.encode("utf-8")
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(base64.b64decode(signature_b64), message)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True


class RegistrarKey:
    """The workspace's signing key, created on first use with mode 0600."""

    def __init__(self, private: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = PublicKey(raw)

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes | str) -> str:
        if isinstance(message, str):
            message = message.encode("utf-8")
        return base64.b64encode(self._private.sign(message)).decode("ascii")

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> RegistrarKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = keys_dir / PRIVATE_KEY_FILE
        if path.exists():
            try:
                private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except ValueError as error:
                raise CheckFailed(f"registrar key {path} is unreadable: {error}") from None
            if not isinstance(private, Ed25519PrivateKey):
                raise CheckFailed(f"registrar key {path} is not an Ed25519 key")
            return cls(private)
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key = cls(private)
        tmp = path.with_name(f".{PRIVATE_KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(tmp, path)  # fails if another process created the key meanwhile: keep theirs
        except FileExistsError:
            os.unlink(tmp)
            return cls.load_or_create(keys_dir)
        os.unlink(tmp)
        (keys_dir / PUBLIC_KEY_FILE).write_text(key.public.b64 + "\n")
        return key
