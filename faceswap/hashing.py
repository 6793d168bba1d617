"""Canonical JSON and sha256: the bytes that records, ledger entries and manifests are hashed and signed as."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(payload: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the bytes that get hashed and signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        # surrogatepass: a name that was not valid UTF-8 on disk still hashes instead of crashing
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safe_name(path: Path | str) -> str:
    """A file name fit for JSON and the ledger: bytes that are not UTF-8 become backslash escapes."""
    name = Path(path).name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
