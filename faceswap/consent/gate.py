"""The consent gate: the one place that decides whether subjects may be used, for extraction,
training, conversion and dubbing. It reads the consent files and the verified ledger together."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from faceswap.consent.records import PURPOSES, ConsentRecord
from faceswap.consent.registry import ConsentStore, StoreSnapshot, utc_timestamp, utc_today
from faceswap.errors import ConsentDenied
from faceswap.ledger import Entry

DUBBING = "dubbing-research"


class ConsentRefused(ConsentDenied):
    """No grant: the message names the subject, the record and the reason."""


@dataclass(frozen=True)
class GrantedRecord:
    role: str
    subject_id: str
    record_id: str
    record_sha256: str
    expires_at: str
    backend: str


@dataclass(frozen=True)
class ConsentGrant:
    """Proof that both subjects consented to this purpose, as of `granted_at`; kept in checkpoints."""

    purpose: str
    subject_a: str
    subject_b: str
    records: tuple[GrantedRecord, ...]
    registrar_key_id: str
    granted_at: str

    @property
    def record_ids(self) -> list[str]:
        return [r.record_id for r in self.records]

    def record_for(self, subject_id: str) -> GrantedRecord:
        return next(r for r in self.records if r.subject_id == subject_id)

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["records"] = [asdict(r) for r in self.records]
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ConsentGrant:
        records = tuple(GrantedRecord(**r) for r in payload["records"])
        return cls(**{**payload, "records": records})


class ConsentGate:
    def __init__(self, store: ConsentStore) -> None:
        self.store = store

    def snapshot(self, entries: list[Entry] | None = None) -> StoreSnapshot:
        """The store as the gate sees it; refuses while any file disagrees with the ledger."""
        snapshot = self.store.load(entries)
        if snapshot.problems:
            raise ConsentRefused(f"consent store is damaged ({snapshot.problems[0]}); run `faceswap consent verify`")
        return snapshot

    def authorize(
        self,
        subject_a: str,
        subject_b: str,
        purpose: str,
        today: date | None = None,
        entries: list[Entry] | None = None,
    ) -> ConsentGrant:
        """Grant for A as source (the face put on) and B as target (the footage), or ConsentRefused."""
        if purpose not in PURPOSES:
            raise ConsentRefused(f"unknown purpose '{purpose}' (consent can only be given for {', '.join(PURPOSES)})")
        if subject_a == subject_b:
            raise ConsentRefused("subject A and subject B must be different people")
        snapshot = self.snapshot(entries)
        today = today or utc_today()
        granted = tuple(
            decide(snapshot, subject, role, purpose, today)
            for subject, role in ((subject_a, "source"), (subject_b, "target"))
        )
        return ConsentGrant(
            purpose=purpose,
            subject_a=subject_a,
            subject_b=subject_b,
            records=granted,
            registrar_key_id=self.store.ledger.public.key_id,
            granted_at=utc_timestamp(),
        )

    def authorize_subject(self, subject: str) -> tuple[ConsentRecord, GrantedRecord]:
        """A subject's active record, for any purpose and role (extraction builds facesets that
        training then checks against the grant)."""
        snapshot = self.snapshot()
        granted = decide(snapshot, subject, None, None, utc_today())
        record = snapshot.by_id(granted.record_id)
        assert record is not None
        return record, granted

    def authorize_model(self, model: Entry, entries: list[Entry] | None = None) -> ConsentGrant:
        """Consent for a trained model, taken from its signed `model.trained` entry: the records it
        was trained under must still be their subjects' active records for its purpose."""
        data = model.data
        snapshot = self.snapshot(entries)
        ids = list(data.get("consent_record_ids") or [])
        hashes = list(data.get("consent_record_sha256") or [])
        subjects = data.get("subjects") or {}
        if len(ids) != 2 or len(hashes) != 2:
            raise ConsentRefused(f"model.trained entry seq {model.seq} does not name two consent records")
        if not subjects:  # entries written before subjects were recorded: read them off the records' entries
            owners = [snapshot.registered.get(rid) for rid in ids]
            if any(o is None for o in owners):
                raise ConsentRefused(f"model.trained entry seq {model.seq} names a consent record the ledger lacks")
            subjects = {"a": owners[0].data["subject_id"], "b": owners[1].data["subject_id"]}
        fresh = self.authorize(subjects["a"], subjects["b"], data.get("purpose", ""), entries=entries)
        for record_id, record_sha in zip(ids, hashes, strict=True):
            now = next((r for r in fresh.records if r.record_id == record_id), None)
            if now is None or now.record_sha256 != record_sha:
                raise ConsentRefused(
                    f"consent record {record_id} that this model was trained under (ledger seq {model.seq}) is no "
                    "longer its subject's active record; train again under the current consent"
                )
        return fresh

    def authorize_dub(self, grant: ConsentGrant, entries: list[Entry] | None = None) -> ConsentGrant:
        """Dubbing with a model's grant: it must be for dubbing research, and subject A, whose own
        footage (the plate) is altered with B's performance, must also grant the target role."""
        if grant.purpose != DUBBING:
            raise ConsentRefused(
                f"the model was trained under consent for '{grant.purpose}'; dubbing needs a model trained for "
                f"'{DUBBING}'"
            )
        snapshot = self.snapshot(entries)
        granted = grant.record_for(grant.subject_a)
        record = snapshot.by_id(granted.record_id)
        reason = "record missing" if record is None else refusal(snapshot, record, "target", DUBBING, utc_today())
        if reason is not None:
            raise ConsentRefused(
                f"subject '{grant.subject_a}' (the plate's actor): {reason}; dubbing alters footage of them"
            )
        return grant

    def recheck(self, grant: ConsentGrant | GrantedRecord, entries: list[Entry] | None = None) -> None:
        """Re-authorise while working: revoked, expired or replaced records stop the run. A grant
        of two subjects (training, conversion, dubbing) or one subject's record (extraction)."""
        if isinstance(grant, GrantedRecord):
            snapshot = self.snapshot(entries)
            current = [decide(snapshot, grant.subject_id, None, None, utc_today())]
            held: tuple[GrantedRecord, ...] = (grant,)
        else:
            current = list(self.authorize(grant.subject_a, grant.subject_b, grant.purpose, entries=entries).records)
            held = grant.records
        for old in held:
            if old.record_id not in {r.record_id for r in current}:
                raise ConsentRefused(
                    f"consent record {old.record_id} of subject '{old.subject_id}' is no longer the subject's "
                    "active record"
                )


def decide(snapshot: StoreSnapshot, subject: str, role: str | None, purpose: str | None, today: date) -> GrantedRecord:
    """The subject's newest record that allows `role` and `purpose` today (None: any), or ConsentRefused
    with the reason the newest record gives."""
    records = snapshot.for_subject(subject)
    if not records:
        raise ConsentRefused(f"no consent record for subject '{subject}'")
    reasons: list[str] = []
    for record in records:
        reason = refusal(snapshot, record, role, purpose, today)
        if reason is None:
            return GrantedRecord(
                role=role or "any",
                subject_id=subject,
                record_id=record.record_id,
                record_sha256=record.sha256,
                expires_at=record.document["expires_at"],
                backend=record.backend,
            )
        reasons.append(reason)
    raise ConsentRefused(f"subject '{subject}': {reasons[0]}")


def refusal(
    snapshot: StoreSnapshot, record: ConsentRecord, role: str | None, purpose: str | None, today: date
) -> str | None:
    """Why `record` does not grant `role` for `purpose` today, or None when it does."""
    rid = record.record_id
    status = snapshot.status(record, today)
    if status == "revoked":
        return f"consent record {rid} was {snapshot.revocation_note(rid)}"
    if status == "expired":
        return f"consent record {rid} expired on {record.expires_at}"
    if status == "not-yet-valid":
        return f"consent record {rid} is valid only from {record.valid_from}"
    if purpose is not None and purpose not in record.purposes:
        return f"consent record {rid} does not allow purpose '{purpose}' (allows {', '.join(record.purposes)})"
    if role is not None and role not in record.roles:
        return f"consent record {rid} does not grant the {role} role (grants {', '.join(record.roles)})"
    return None
