"""The consent store: one signed JSON file per record or revocation in workspace/consent/, each
mirrored by a ledger entry written in the same transaction (the file is renamed into place inside it).

Reading trusts the verified ledger first: a record file counts only when a consent.registered entry
holds its hash and the key that signed it was the ledger's key at that row; a revocation counts when
either its ledger entry or its signed file exists (fail closed).
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

from faceswap.atomic import write_temp
from faceswap.consent.records import (
    MAX_TERM_DAYS,
    PURPOSES,
    REVOCATION_SUFFIX,
    ROLES,
    SUBJECT_KINDS,
    ConsentRecord,
    Revocation,
    schema_errors,
    signed_message,
    status_of,
)
from faceswap.errors import BadInput
from faceswap.hashing import file_sha256
from faceswap.ledger import Entry, Ledger, open_ledger
from faceswap.ledger.chain import KeyHistory
from faceswap.staging import sweep
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
    """The consent folder and the verified ledger, read once, with every disagreement found."""

    records: list[ConsentRecord] = field(default_factory=list)
    revocations: dict[str, Revocation] = field(default_factory=dict)  # record id -> signed file
    problems: list[StoreProblem] = field(default_factory=list)
    registered: dict[str, Entry] = field(default_factory=dict)  # record id -> consent.registered entry
    revoked: dict[str, Entry] = field(default_factory=dict)  # record id -> consent.revoked entry

    def for_subject(self, subject_id: str) -> list[ConsentRecord]:
        """Newest registration first (the ledger's order: timestamps can tie)."""
        found = [r for r in self.records if r.subject_id == subject_id]
        return sorted(found, key=lambda r: self.registered[r.record_id].seq, reverse=True)

    def by_id(self, record_id: str) -> ConsentRecord | None:
        return next((r for r in self.records if r.record_id == record_id), None)

    def is_revoked(self, record_id: str) -> bool:
        return record_id in self.revocations or record_id in self.revoked

    def revocation_note(self, record_id: str) -> str:
        """When and why, from the signed file, else from the ledger entry."""
        if record_id in self.revocations:
            revocation = self.revocations[record_id]
            return f"revoked at {revocation.revoked_at} ({revocation.reason})"
        entry = self.revoked[record_id]
        return f"revoked (ledger seq {entry.seq}: {entry.data.get('reason', 'no reason given')})"

    def status(self, record: ConsentRecord, today: date | None = None) -> str:
        return status_of(self.is_revoked(record.record_id), record.valid_from, record.expires_at, today or utc_today())


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


class ConsentStore:
    def __init__(self, workspace: Workspace, ledger: Ledger | None = None) -> None:
        self.workspace = workspace.ensure()
        self.ledger = ledger or open_ledger(workspace)

    @property
    def folder(self) -> Path:
        return self.workspace.consent_dir

    def load(self, entries: list[Entry] | None = None) -> StoreSnapshot:
        """Read everything; `entries` are already verified ledger rows (inside a writer transaction).

        Otherwise the files and the rows are read under the ledger's writer lock: a record or a
        revocation is renamed into place inside its entry's transaction, so a reader that did not
        wait for it could see the file before its entry and take the store for damaged."""
        if entries is None:
            with self.ledger.backend.guard():
                return self.load(self.ledger.entries())
        history = self.ledger.history
        assert history is not None
        snapshot = StoreSnapshot(
            registered={e.data["record_id"]: e for e in entries if e.kind == "consent.registered"},
            revoked={e.data["record_id"]: e for e in entries if e.kind == "consent.revoked"},
        )
        for path in sorted(self.folder.glob("*.json")):
            if path.name.startswith("."):  # a record or revocation being written right now (write_temp)
                continue
            item = self._read(path, history, snapshot)
            if isinstance(item, Revocation):
                snapshot.revocations[item.record_id] = item
            elif item is not None:
                snapshot.records.append(item)
        return snapshot

    def _read(self, path: Path, history: KeyHistory, snapshot: StoreSnapshot) -> ConsentRecord | Revocation | None:
        """One file, checked against its schema, its signature and its ledger entry."""
        problems = snapshot.problems
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as error:
            problems.append(StoreProblem(path, f"corrupt JSON ({error})"))
            return None
        is_revocation = "revocation_of" in document
        errors = schema_errors(document, "revocation" if is_revocation else None)
        if errors:
            problems.append(StoreProblem(path, "fails the schema: " + "; ".join(errors[:3])))
            return None
        item: ConsentRecord | Revocation = (Revocation if is_revocation else ConsentRecord)(document, path)
        key = history.by_id(item.key_id)
        if key is None:
            problems.append(StoreProblem(path, f"signed by key {item.key_id}, which is not a key of this ledger"))
            return None
        if not item.signature_valid(key):
            problems.append(StoreProblem(path, "signature does not verify"))
            return None
        expected = item.record_id + (REVOCATION_SUFFIX if is_revocation else ".json")
        if path.name != expected:
            problems.append(StoreProblem(path, f"file name should be {expected}"))
            return None
        entries = snapshot.revoked if is_revocation else snapshot.registered
        entry = entries.get(item.record_id)
        hash_field = "revocation_sha256" if is_revocation else "record_sha256"
        if entry is None:
            problems.append(
                StoreProblem(path, f"has no consent.{'revoked' if is_revocation else 'registered'} ledger entry")
            )
            return item if is_revocation else None  # a signed revocation still revokes
        if entry.data.get(hash_field) != item.sha256:
            problems.append(StoreProblem(path, f"differs from the document hashed in ledger seq {entry.seq}"))
            return item if is_revocation else None
        if not history.signed_at(item.key_id, entry.seq):
            problems.append(StoreProblem(path, f"signed by key {item.key_id}, not the ledger's key at seq {entry.seq}"))
            return item if is_revocation else None
        return item

    def verify(self) -> list[StoreProblem]:
        """Every file's schema, signature and ledger entry, and a file for every ledger entry."""
        snapshot = self.load()
        problems = list(snapshot.problems)
        bad_paths = {p.path for p in problems}
        for record_id, revocation in snapshot.revocations.items():
            if record_id not in snapshot.registered and (self.folder / f"{record_id}.json") not in bad_paths:
                problems.append(StoreProblem(revocation.path, f"revokes unknown record {record_id}"))
        present = {r.record_id for r in snapshot.records} | {self._record_id_of(p) for p in bad_paths}
        for record_id, entry in snapshot.registered.items():
            if record_id not in present:
                problems.append(StoreProblem(self.folder / f"{record_id}.json", f"missing (ledger seq {entry.seq})"))
        present_revocations = set(snapshot.revocations) | {
            self._record_id_of(p) for p in bad_paths if p.name.endswith(REVOCATION_SUFFIX)
        }
        for record_id, entry in snapshot.revoked.items():
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
        expires = _validate_registration(request)
        snapshot = self.load()
        if snapshot.problems:
            raise BadInput(f"the consent store is damaged ({snapshot.problems[0]}); run `faceswap consent verify`")
        today = utc_today()
        active = [r for r in snapshot.for_subject(request.subject_id) if snapshot.status(r, today) == "active"]
        if active:
            raise BadInput(
                f"subject '{request.subject_id}' already has an active consent record ({active[0].record_id})"
            )
        backend, model, embeddings, image_hashes = self._reference_embeddings(request)
        key = self.ledger.key
        if key is None:
            raise BadInput("the registrar key is not available: consent cannot be registered")
        document: dict[str, Any] = {
            "record_id": f"{request.subject_id}-{today:%Y%m%d}-{secrets.token_hex(4)}",
            "subject_id": request.subject_id,
            "name": request.name.strip(),
            "kind": SUBJECT_KINDS[1] if request.synthetic else SUBJECT_KINDS[0],
            "purposes": sorted(set(request.purposes)),
            "roles": sorted(set(request.roles)),
            "valid_from": today.isoformat(),
            "expires_at": expires.isoformat(),
            "reference": {"backend": backend, "model": model, "embeddings": embeddings, "image_sha256": image_hashes},
            "evidence_sha256": file_sha256(request.evidence),
            "registrar_key_id": key.key_id,
            "created_at": utc_timestamp(),
        }
        document["signature"] = key.sign(signed_message(document))
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
                "subject_id": record.subject_id,
                "record_sha256": record.sha256,
                "kind": record.kind,
                "purposes": record.purposes,
                "roles": record.roles,
                "valid_from": document["valid_from"],
                "expires_at": document["expires_at"],
                "backend": backend,
                "registrar_key_id": key.key_id,
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
        if snapshot.is_revoked(record.record_id):
            raise BadInput(f"record {record.record_id} is already revoked")
        key = self.ledger.key
        if key is None:
            raise BadInput("the registrar key is not available: consent cannot be revoked here")
        document: dict[str, Any] = {
            "revocation_of": record.record_id,
            "subject_id": record.subject_id,
            "reason": reason.strip(),
            "revoked_at": utc_timestamp(),
            "registrar_key_id": key.key_id,
        }
        document["signature"] = key.sign(signed_message(document))
        revocation = Revocation(document, self.folder / f"{record.record_id}{REVOCATION_SUFFIX}")
        sweep(self.workspace)  # work staged by killed jobs goes now, not at the next job
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

    def _publish(self, path: Path, document: dict[str, Any], kind: str, data: dict[str, Any]) -> Entry:
        if path.exists() or path.is_symlink():
            raise BadInput(f"{path} already exists")
        tmp = write_temp(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
        try:
            return self.ledger.append(kind, data, on_commit=lambda _entry: os.replace(tmp, path))
        finally:
            tmp.unlink(missing_ok=True)


def _validate_registration(request: Registration) -> date:
    """Every check on a registration that needs no files or faces; returns the expiry date."""
    if not SLUG.match(request.subject_id):
        raise BadInput(
            f"subject id '{request.subject_id}' must be a slug: lowercase letters, digits and '-', 2-63 chars"
        )
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
        raise BadInput(f"--expires {expires} is more than 3 years away; consent must be renewed at least that often")
    if not request.evidence.is_file():
        raise BadInput(f"evidence file {request.evidence} does not exist")
    if not request.references:
        raise BadInput("at least one --reference photo is needed")
    return expires


def describe_record(record: ConsentRecord, snapshot: StoreSnapshot) -> dict[str, Any]:
    """What `consent list/show` print: the record without its embeddings, plus its status now."""
    doc = record.document
    revoked = None
    if snapshot.is_revoked(record.record_id):
        file = snapshot.revocations.get(record.record_id)
        entry = snapshot.revoked.get(record.record_id)
        revoked = {
            "at": file.revoked_at if file else (entry.created_at if entry else None),
            "reason": file.reason if file else (entry.data.get("reason") if entry else None),
            "ledger_seq": entry.seq if entry else None,
        }
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
        "registered_seq": snapshot.registered[record.record_id].seq,
        "revoked": revoked,
        "file": str(record.path),
    }
