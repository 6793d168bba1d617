"""The consent store: one signed JSON file per record or revocation in workspace/consent/.

Every write is mirrored by a ledger entry in the same transaction (the file is renamed into place
inside it), so a record cannot appear without its entry, nor an entry without its record.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from faceswap.consent.records import (
    KINDS,
    MAX_TERM_DAYS,
    PURPOSES,
    REVOCATION_SUFFIX,
    ROLES,
    ConsentRecord,
    Revocation,
    schema_errors,
    signed_message,
    status_of,
)
from faceswap.errors import BadInput
from faceswap.provenance.ledger import Ledger, open_ledger
from faceswap.signing import file_sha256
from faceswap.workspace import Workspace

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class StoreProblem:
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.problem}"


@dataclass
class StoreSnapshot:
    """Everything in the consent folder, read once, with every file that failed a check."""

    records: list[ConsentRecord] = field(default_factory=list)
    revocations: dict[str, Revocation] = field(default_factory=dict)
    problems: list[StoreProblem] = field(default_factory=list)
    registered_seq: dict[str, int] = field(default_factory=dict)  # record id -> its consent.registered entry

    def for_subject(self, subject_id: str) -> list[ConsentRecord]:
        """Newest first. created_at has one-second resolution, so the ledger's order breaks ties
        (a record revoked and its replacement registered within the same second)."""
        found = [r for r in self.records if r.subject_id == subject_id]
        return sorted(
            found, key=lambda r: (r.document["created_at"], self.registered_seq.get(r.record_id, -1)), reverse=True
        )

    def by_id(self, record_id: str) -> ConsentRecord | None:
        return next((r for r in self.records if r.record_id == record_id), None)

    def status(self, record: ConsentRecord, today: date | None = None) -> str:
        return status_of(record, record.record_id in self.revocations, today or utc_today())


@dataclass(frozen=True)
class Registration:
    subject_id: str
    name: str
    references: Sequence[Path]
    purposes: Sequence[str]
    expires_at: str
    evidence: Path
    synthetic: bool = False
    roles: Sequence[str] = ROLES
    backend: str = "auto"
    model_root: Path | None = None


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_atomically(path: Path, text: str) -> Path:
    """Write a hidden temporary file next to `path`; the caller renames it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


class ConsentStore:
    def __init__(self, workspace: Workspace, ledger: Ledger | None = None) -> None:
        self.workspace = workspace.ensure()
        self.ledger = ledger or open_ledger(workspace)
        self.public = self.ledger.key.public

    @property
    def folder(self) -> Path:
        return self.workspace.consent_dir

    def load(self) -> StoreSnapshot:
        snapshot = StoreSnapshot(
            registered_seq={e.data["record_id"]: e.seq for e in self.ledger.entries("consent.registered")}
        )
        for path in sorted(self.folder.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(document, dict):
                    raise ValueError("not a JSON object")
            except (OSError, UnicodeDecodeError, ValueError) as error:
                snapshot.problems.append(StoreProblem(path, f"corrupt JSON ({error})"))
                continue
            is_revocation = "revocation_of" in document
            errors = schema_errors(document, "revocation" if is_revocation else None)
            if errors:
                snapshot.problems.append(StoreProblem(path, "fails the schema: " + "; ".join(errors[:3])))
                continue
            item: ConsentRecord | Revocation = (Revocation if is_revocation else ConsentRecord)(document, path)
            if not item.signature_valid(self.public):
                signer = document.get("registrar_key_id")
                why = (
                    "signature does not verify"
                    if signer == self.public.key_id
                    else (f"signed by key {signer}, not this workspace's registrar key {self.public.key_id}")
                )
                snapshot.problems.append(StoreProblem(path, why))
                continue
            expected = item.record_id + (REVOCATION_SUFFIX if is_revocation else ".json")
            if path.name != expected:
                snapshot.problems.append(StoreProblem(path, f"file name should be {expected}"))
                continue
            if isinstance(item, Revocation):
                snapshot.revocations[item.record_id] = item
            else:
                snapshot.records.append(item)
        return snapshot

    def verify(self) -> list[StoreProblem]:
        """Every file's schema and signature, and agreement between the files and the ledger."""
        snapshot = self.load()
        problems = list(snapshot.problems)
        bad_paths = {p.path for p in problems}
        registered = {e.data["record_id"]: e for e in self.ledger.entries("consent.registered")}
        revoked = {e.data["record_id"]: e for e in self.ledger.entries("consent.revoked")}
        for record in snapshot.records:
            entry = registered.get(record.record_id)
            if entry is None:
                problems.append(StoreProblem(record.path, "has no consent.registered ledger entry"))
            elif entry.data["record_sha256"] != record.sha256:
                problems.append(StoreProblem(record.path, f"differs from the record hashed in ledger seq {entry.seq}"))
        for record_id, revocation in snapshot.revocations.items():
            entry = revoked.get(record_id)
            if entry is None:
                problems.append(StoreProblem(revocation.path, "has no consent.revoked ledger entry"))
            elif entry.data["revocation_sha256"] != revocation.sha256:
                problems.append(StoreProblem(revocation.path, f"differs from ledger seq {entry.seq}"))
            if snapshot.by_id(record_id) is None and (self.folder / f"{record_id}.json") not in bad_paths:
                problems.append(StoreProblem(revocation.path, f"revokes unknown record {record_id}"))
        present = {r.record_id for r in snapshot.records} | {self._record_id_of(p.path) for p in snapshot.problems}
        for record_id, entry in registered.items():
            if record_id not in present:
                problems.append(StoreProblem(self.folder / f"{record_id}.json", f"missing (ledger seq {entry.seq})"))
        present_revocations = set(snapshot.revocations) | {
            self._record_id_of(p.path) for p in snapshot.problems if p.path.name.endswith(REVOCATION_SUFFIX)
        }
        for record_id, entry in revoked.items():
            if record_id not in present_revocations:
                problems.append(
                    StoreProblem(self.folder / f"{record_id}{REVOCATION_SUFFIX}", f"missing (ledger seq {entry.seq})")
                )
        return problems

    @staticmethod
    def _record_id_of(path: Path) -> str:
        name = path.name
        return name[: -len(REVOCATION_SUFFIX)] if name.endswith(REVOCATION_SUFFIX) else path.stem

    def register(self, request: Registration) -> ConsentRecord:
        """Validate everything first; only then write the record and its ledger entry together."""
        subject = request.subject_id
        if not SLUG.match(subject):
            raise BadInput(f"subject id '{subject}' must be a slug: lowercase letters, digits and '-', 2-63 chars")
        unknown = sorted(set(request.purposes) - set(PURPOSES))
        if unknown or not request.purposes:
            raise BadInput(f"purpose must be one of {', '.join(PURPOSES)} (got {', '.join(unknown) or 'none'})")
        bad_roles = sorted(set(request.roles) - set(ROLES))
        if bad_roles or not request.roles:
            raise BadInput(f"role must be one of {', '.join(ROLES)}")
        if not request.name.strip():
            raise BadInput("--name must not be empty")
        today = utc_today()
        try:
            expires = date.fromisoformat(request.expires_at)
        except ValueError:
            raise BadInput(f"--expires '{request.expires_at}' is not a date (YYYY-MM-DD)") from None
        if expires <= today:
            raise BadInput(f"--expires {expires} is not in the future")
        if expires > today + timedelta(days=MAX_TERM_DAYS):
            raise BadInput(
                f"--expires {expires} is more than 3 years away; consent must be renewed at least that often"
            )
        if not request.evidence.is_file():
            raise BadInput(f"evidence file {request.evidence} does not exist")
        if not request.references:
            raise BadInput("at least one --reference photo is needed")
        snapshot = self.load()
        if snapshot.problems:
            raise BadInput(f"the consent store is damaged ({snapshot.problems[0]}); run `faceswap consent verify`")
        active = [r for r in snapshot.for_subject(subject) if snapshot.status(r, today) == "active"]
        if active:
            raise BadInput(f"subject '{subject}' already has an active consent record ({active[0].record_id})")
        backend, model, embeddings, image_hashes = self._reference_embeddings(request)
        document: dict[str, Any] = {
            "record_id": f"{subject}-{today:%Y%m%d}-{secrets.token_hex(4)}",
            "subject_id": subject,
            "name": request.name.strip(),
            "kind": KINDS[1] if request.synthetic else KINDS[0],
            "purposes": sorted(set(request.purposes)),
            "roles": sorted(set(request.roles)),
            "valid_from": today.isoformat(),
            "expires_at": expires.isoformat(),
            "reference": {"backend": backend, "model": model, "embeddings": embeddings, "image_sha256": image_hashes},
            "evidence_sha256": file_sha256(request.evidence),
            "registrar_key_id": self.public.key_id,
            "created_at": utc_timestamp(),
        }
        document["signature"] = self.ledger.key.sign(signed_message(document))
        errors = schema_errors(document)
        if errors:
            raise BadInput("record would not validate: " + "; ".join(errors))
        record = ConsentRecord(document, self.folder / f"{document['record_id']}.json")
        self._publish(
            record.path,
            document,
            "consent.registered",
            {
                "record_id": record.record_id,
                "subject_id": subject,
                "record_sha256": record.sha256,
                "kind": record.kind,
                "purposes": record.purposes,
                "roles": record.roles,
                "expires_at": document["expires_at"],
                "backend": backend,
            },
        )
        return record

    def _reference_embeddings(self, request: Registration) -> tuple[str, str, list[list[float]], list[str]]:
        from faceswap.faces.analyzer import FaceAnalyzer
        from faceswap.media import read_image

        images = [(path, read_image(path)) for path in request.references]
        analyzer = FaceAnalyzer(request.backend, request.model_root)
        embeddings, hashes = [], []
        for path, image in images:
            faces = analyzer.analyze(image)
            if len(faces) != 1:
                raise BadInput(f"reference photo {path} must show exactly one face, found {len(faces)}")
            embeddings.append([round(float(v), 6) for v in faces[0].embedding])
            hashes.append(file_sha256(path))
        return analyzer.name, analyzer.model_name, embeddings, hashes

    def revoke(self, identifier: str, reason: str) -> Revocation:
        if not reason.strip():
            raise BadInput("--reason must not be empty")
        snapshot = self.load()
        record = self.resolve(snapshot, identifier)
        if record.record_id in snapshot.revocations:
            raise BadInput(f"record {record.record_id} is already revoked")
        document: dict[str, Any] = {
            "revocation_of": record.record_id,
            "subject_id": record.subject_id,
            "reason": reason.strip(),
            "revoked_at": utc_timestamp(),
            "registrar_key_id": self.public.key_id,
        }
        document["signature"] = self.ledger.key.sign(signed_message(document))
        revocation = Revocation(document, self.folder / f"{record.record_id}{REVOCATION_SUFFIX}")
        self._publish(
            revocation.path,
            document,
            "consent.revoked",
            {
                "record_id": record.record_id,
                "subject_id": record.subject_id,
                "revocation_sha256": revocation.sha256,
                "reason": revocation.reason,
            },
        )
        return revocation

    def resolve(self, snapshot: StoreSnapshot, identifier: str) -> ConsentRecord:
        """A record id, or a subject id (its newest record)."""
        record = snapshot.by_id(identifier)
        if record is None:
            records = snapshot.for_subject(identifier)
            record = records[0] if records else None
        if record is None:
            raise BadInput(f"no consent record or subject '{identifier}'")
        return record

    def _publish(self, path: Path, document: dict[str, Any], kind: str, data: dict[str, Any]) -> None:
        if path.exists():
            raise BadInput(f"{path} already exists")
        tmp = _write_atomically(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
        try:
            self.ledger.append(kind, data, on_commit=lambda _entry: os.replace(tmp, path))
        finally:
            if tmp.exists():
                tmp.unlink()


def describe(record: ConsentRecord, snapshot: StoreSnapshot) -> dict[str, Any]:
    """What `consent list/show` print: the record without its embeddings, plus its status now."""
    revocation = snapshot.revocations.get(record.record_id)
    doc = record.document
    return {
        "record_id": record.record_id,
        "subject_id": record.subject_id,
        "name": record.name,
        "kind": record.kind,
        "status": snapshot.status(record),
        "purposes": record.purposes,
        "roles": record.roles,
        "valid_from": doc["valid_from"],
        "expires_at": doc["expires_at"],
        "reference": {
            "backend": doc["reference"]["backend"],
            "model": doc["reference"]["model"],
            "photos": len(doc["reference"]["image_sha256"]),
        },
        "evidence_sha256": doc["evidence_sha256"],
        "record_sha256": record.sha256,
        "created_at": doc["created_at"],
        "revoked": None if revocation is None else {"at": revocation.revoked_at, "reason": revocation.reason},
        "file": str(record.path),
    }
