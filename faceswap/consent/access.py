"""A consent subject's own access code: what lets one person see the outputs made under their record.

A record id is not a secret: `faceswap verify` prints it for every output made under it, so anyone
holding one such file knows it. The id alone therefore shows only what verify already tells that
person (the record's status and term). The list of outputs made under the record needs the record's
access code: an HMAC of the record id under a random secret kept with the workspace's keys
(`keys/consent-access.key`, 0600, made on first `faceswap consent link`). Only the operator can make a
code, a code opens one record only, and 26 base32 characters (130 bits) cannot be guessed. The secret
is its own file, not the registrar key, so rotating the registrar key does not void codes handed out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from faceswap.atomic import write_temp
from faceswap.errors import BadInput

SECRET_FILE = "consent-access.key"
CODE_CHARS = 26
DOMAIN = b"faceswap/consent-access/v1\x00"


def secret_path(keys_dir: Path) -> Path:
    return keys_dir / SECRET_FILE


def read_secret(keys_dir: Path) -> bytes | None:
    """The secret, or None where no code was ever issued (then no code opens anything)."""
    try:
        secret = secret_path(keys_dir).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BadInput(f"{secret_path(keys_dir)}: unreadable ({error.strerror})") from None
    if len(secret) < 32:
        raise BadInput(f"{secret_path(keys_dir)}: damaged (shorter than 32 bytes)")
    return secret


def ensure_secret(keys_dir: Path) -> bytes:
    """The secret, made once (0600, never overwritten: a second maker's link fails and its copy is read)."""
    existing = read_secret(keys_dir)
    if existing is not None:
        return existing
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = secret_path(keys_dir)
    tmp = write_temp(path, secrets.token_bytes(32), mode=0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    secret = read_secret(keys_dir)
    assert secret is not None
    return secret


def access_code(secret: bytes, record_id: str) -> str:
    digest = hmac.new(secret, DOMAIN + record_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:CODE_CHARS]


def code_opens(secret: bytes | None, record_id: str, code: str | None) -> bool:
    """Whether `code` is `record_id`'s access code (compared in constant time)."""
    if secret is None or not code:
        return False
    given = code.strip().lower().replace("-", "").replace(" ", "")
    return hmac.compare_digest(given.encode("utf-8", "replace"), access_code(secret, record_id).encode("ascii"))
