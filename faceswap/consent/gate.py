"""The consent gate: the one place that decides whether two subjects may be swapped for a purpose."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from faceswap.consent.records import PURPOSES, ConsentRecord
from faceswap.consent.registry import ConsentStore, StoreSnapshot, utc_timestamp, utc_today
from faceswap.errors import CheckFailed


class ConsentRefused(CheckFailed):
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

    def authorize(self, subject_a: str, subject_b: str, purpose: str, today: date | None = None) -> ConsentGrant:
        """Grant for A as source (the face put on) and B as target (the footage), or ConsentRefused."""
        if purpose not in PURPOSES:
            raise ConsentRefused(f"unknown purpose '{purpose}' (consent can only be given for {', '.join(PURPOSES)})")
        if subject_a == subject_b:
            raise ConsentRefused("subject A and subject B must be different people")
        today = today or utc_today()
        snapshot = self.store.load()
        if snapshot.problems:
            raise ConsentRefused(f"consent store is damaged ({snapshot.problems[0]}); run `faceswap consent verify`")
        revoked_in_ledger = {e.data["record_id"]: e.seq for e in self.store.ledger.entries("consent.revoked")}
        granted = tuple(
            self._grant_one(snapshot, subject, role, purpose, today, revoked_in_ledger)
            for subject, role in ((subject_a, "source"), (subject_b, "target"))
        )
        return ConsentGrant(
            purpose=purpose,
            subject_a=subject_a,
            subject_b=subject_b,
            records=granted,
            registrar_key_id=self.store.public.key_id,
            granted_at=utc_timestamp(),
        )

    def recheck(self, grant: ConsentGrant) -> ConsentGrant:
        """Re-authorise at run time (conversion): revoked or expired records stop the run."""
        fresh = self.authorize(grant.subject_a, grant.subject_b, grant.purpose)
        for old in grant.records:
            if old.record_id not in fresh.record_ids:
                raise ConsentRefused(
                    f"consent record {old.record_id} of subject '{old.subject_id}' that this model was trained "
                    "under is no longer the subject's active record"
                )
        return fresh

    @staticmethod
    def _grant_one(
        snapshot: StoreSnapshot,
        subject: str,
        role: str,
        purpose: str,
        today: date,
        revoked_in_ledger: dict[str, int],
    ) -> GrantedRecord:
        records = snapshot.for_subject(subject)
        if not records:
            raise ConsentRefused(f"no consent record for subject '{subject}'")
        reasons: list[str] = []
        for record in records:
            reason = _refusal(snapshot, record, role, purpose, today, revoked_in_ledger)
            if reason is None:
                return GrantedRecord(
                    role=role,
                    subject_id=subject,
                    record_id=record.record_id,
                    record_sha256=record.sha256,
                    expires_at=record.document["expires_at"],
                    backend=record.backend,
                )
            reasons.append(reason)
        raise ConsentRefused(f"subject '{subject}': {reasons[0]}")


def _refusal(
    snapshot: StoreSnapshot,
    record: ConsentRecord,
    role: str,
    purpose: str,
    today: date,
    revoked_in_ledger: dict[str, int],
) -> str | None:
    rid = record.record_id
    revocation = snapshot.revocations.get(rid)
    if revocation is not None:
        return f"consent record {rid} was revoked at {revocation.revoked_at} ({revocation.reason})"
    if rid in revoked_in_ledger:
        return (
            f"consent record {rid} was revoked (ledger seq {revoked_in_ledger[rid]}) and its revocation file is missing"
        )
    status = snapshot.status(record, today)
    if status == "expired":
        return f"consent record {rid} expired on {record.expires_at}"
    if status == "not-yet-valid":
        return f"consent record {rid} is valid only from {record.valid_from}"
    if purpose not in record.purposes:
        return f"consent record {rid} does not allow purpose '{purpose}' (allows {', '.join(record.purposes)})"
    if role not in record.roles:
        return f"consent record {rid} does not grant the {role} role (grants {', '.join(record.roles)})"
    return None
