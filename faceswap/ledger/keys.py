"""The registrar's Ed25519 keys: the private key in workspace/keys/ (0600) signs consent records and
ledger entries; a key's id is the sha256 of its raw public key (16 hex digits).

A key is created only together with a new ledger (see ledger.core.open_ledger); loading never
creates one, so a deleted key is an error, not a silent new identity.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.atomic import write_atomic, write_temp
from faceswap.errors import CheckFailed

PRIVATE_KEY_FILE = "registrar.key"
PUBLIC_KEY_FILE = "registrar.pub"


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
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError):
            raise CheckFailed("a public key in the ledger is not valid base64") from None
        if len(raw) != 32:
            raise CheckFailed("a public key in the ledger is not an Ed25519 key")
        return cls(raw)

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
    """A private signing key and its public half."""

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
    def generate(cls) -> RegistrarKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def load(cls, keys_dir: Path) -> RegistrarKey:
        """The key in `keys_dir`; CheckFailed if it is missing or unreadable (never created here)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = keys_dir / PRIVATE_KEY_FILE
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise CheckFailed(f"registrar key {path} is missing") from None
        except (OSError, ValueError, TypeError) as error:
            raise CheckFailed(f"registrar key {path} is unreadable: {error}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise CheckFailed(f"registrar key {path} is not an Ed25519 key")
        return cls(private)

    def install(self, keys_dir: Path, replace: bool = False) -> None:
        """Write the key files (0600 in a 0700 folder). Without `replace`, an existing key is never
        overwritten: FileExistsError instead."""
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = keys_dir / PRIVATE_KEY_FILE
        tmp = write_temp(path, self.pem(), mode=0o600)
        try:
            if replace:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # fails if a key exists: never overwrite one
        finally:
            tmp.unlink(missing_ok=True)
        write_atomic(keys_dir / PUBLIC_KEY_FILE, self.public.b64 + "\n")


def key_file(keys_dir: Path) -> Path:
    return keys_dir / PRIVATE_KEY_FILE
