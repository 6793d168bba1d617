"""Consent records and revocations as signed JSON documents, validated against consent/schema.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.hashing import canonical_json, sha256_hex
from faceswap.ledger.keys import PublicKey

PURPOSES = ("vfx-prototyping", "dubbing-research", "evaluation")
ROLES = ("source", "target")
SUBJECT_KINDS = ("person", "synthetic")
MAX_TERM_DAYS = 3 * 365 + 1
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "consent" / "schema.json"
REVOCATION_SUFFIX = ".revocation.json"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _validator(definition: str | None) -> Any:
    import jsonschema

    root = schema()
    target = root if definition is None else {**root["$defs"][definition], "$defs": root["$defs"]}
    return jsonschema.Draft202012Validator(target)


def schema_errors(document: dict[str, Any], definition: str | None = None) -> list[str]:
    """Every way `document` breaks the schema, as short sentences naming the field."""
    errors = sorted(_validator(definition).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}" for e in errors]


def signed_message(document: dict[str, Any]) -> str:
    return canonical_json({k: v for k, v in document.items() if k != "signature"})


def document_sha256(document: dict[str, Any]) -> str:
    """Hash of the whole signed document: what grants, models and the ledger point at."""
    return sha256_hex(canonical_json(document))


@dataclass(frozen=True)
class SignedDocument:
    """A signed JSON document on disk: a consent record or a revocation."""

    document: dict[str, Any]
    path: Path

    @property
    def sha256(self) -> str:
        return document_sha256(self.document)

    @property
    def key_id(self) -> str:
        return str(self.document.get("registrar_key_id", ""))

    def signature_valid(self, public: PublicKey) -> bool:
        return self.key_id == public.key_id and public.verify(
            self.document.get("signature", ""), signed_message(self.document)
        )


@dataclass(frozen=True)
class ConsentRecord(SignedDocument):
    @property
    def record_id(self) -> str:
        return self.document["record_id"]

    @property
    def subject_id(self) -> str:
        return self.document["subject_id"]

    @property
    def name(self) -> str:
        return self.document["name"]

    @property
    def kind(self) -> str:
        return self.document["kind"]

    @property
    def purposes(self) -> list[str]:
        return list(self.document["purposes"])

    @property
    def roles(self) -> list[str]:
        return list(self.document["roles"])

    @property
    def valid_from(self) -> date:
        return date.fromisoformat(self.document["valid_from"])

    @property
    def expires_at(self) -> date:
        return date.fromisoformat(self.document["expires_at"])

    @property
    def backend(self) -> str:
        return self.document["reference"]["backend"]

    @property
    def reference_embeddings(self) -> np.ndarray:
        return np.asarray(self.document["reference"]["embeddings"], dtype=np.float32)


@dataclass(frozen=True)
class Revocation(SignedDocument):
    @property
    def record_id(self) -> str:
        return self.document["revocation_of"]

    @property
    def reason(self) -> str:
        return self.document["reason"]

    @property
    def revoked_at(self) -> str:
        return self.document["revoked_at"]


def status_of(revoked: bool, valid_from: date | None, expires_at: date, today: date) -> str:
    """The one definition of a record's status, for the store (files + ledger) and for verify
    (a ledger export alone)."""
    if revoked:
        return "revoked"
    if today > expires_at:
        return "expired"
    if valid_from is not None and today < valid_from:
        return "not-yet-valid"
    return "active"
