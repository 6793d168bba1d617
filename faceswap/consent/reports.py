"""What `faceswap consent register | list | show | verify` say: each a call on the store that returns
a report, so the wording of a record, a listing and a check lives here and not in the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceswap.consent.records import ConsentRecord
from faceswap.consent.registry import ConsentStore, Registration, StoreProblem, describe_record
from faceswap.errors import ExitCode
from faceswap.report import Report

SHOWN_FIELDS = (
    "record_id",
    "subject_id",
    "name",
    "kind",
    "status",
    "purposes",
    "roles",
    "valid_from",
    "expires_at",
    "reference",
    "evidence_sha256",
    "record_sha256",
    "created_at",
    "registered_seq",
    "revoked",
    "file",
)


@dataclass
class Registered(Report):
    record: ConsentRecord
    info: dict[str, Any]  # describe_record's, as `consent show` prints it
    photos: int  # reference photos given

    def to_json(self) -> dict[str, Any]:
        return {**self.info, "ledger_seq": self.info["registered_seq"]}

    def lines(self) -> list[str]:
        record = self.record
        return [
            f"registered {record.record_id}: {record.name} ({record.kind}), purposes {', '.join(record.purposes)}, "
            f"roles {', '.join(record.roles)}, expires {record.expires_at}, {self.photos} reference photo(s) "
            f"[{record.backend}]; ledger seq {self.info['registered_seq']}"
        ]


def register_subject(store: ConsentStore, registration: Registration) -> Registered:
    record = store.register(registration)
    return Registered(record, describe_record(record, store.load()), len(registration.references))


@dataclass
class RecordList(Report):
    rows: list[dict[str, Any]]  # in the order they were registered
    problems: list[str]  # damaged files, said beside the listing

    def to_json(self) -> dict[str, Any]:
        return {"records": self.rows, "problems": self.problems}

    def lines(self) -> list[str]:
        if not self.rows:
            return ["no consent records"]
        return [
            f"{row['record_id']:<40} {row['subject_id']:<20} {row['kind']:<9} {row['status']:<8} "
            f"expires {row['expires_at']}  {','.join(row['purposes'])}"
            for row in self.rows
        ]

    def notes(self) -> list[str]:
        return [f"damaged: {problem}" for problem in self.problems]


def list_records(store: ConsentStore) -> RecordList:
    snapshot = store.load()
    rows = sorted((describe_record(r, snapshot) for r in snapshot.records), key=lambda row: row["registered_seq"])
    return RecordList(rows, [str(p) for p in snapshot.problems])


@dataclass
class ShownRecord(Report):
    info: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.info

    def lines(self) -> list[str]:
        out = []
        for key in SHOWN_FIELDS:
            value = self.info[key]
            if isinstance(value, list):
                value = ", ".join(value)
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            out.append(f"{key:>16}: {value}")
        return out


def show_record(store: ConsentStore, identifier: str) -> ShownRecord:
    """One record, by record id or subject id."""
    snapshot = store.load()
    return ShownRecord(describe_record(store.resolve(snapshot, identifier), snapshot))


@dataclass
class StoreCheck(Report):
    problems: list[StoreProblem]
    records: int
    revocations: int

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.REFUSED if self.problems else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "records": self.records,
            "revocations": self.revocations,
            "problems": [{"file": str(p.path), "problem": p.problem} for p in self.problems],
        }

    def lines(self) -> list[str]:
        if self.problems:
            return [f"BAD {problem.path}: {problem.problem}" for problem in self.problems]
        return [
            f"ok: {self.records} record(s), {self.revocations} revocation(s); every schema and "
            "signature valid, files and ledger agree"
        ]


def check_store(store: ConsentStore) -> StoreCheck:
    """Every signature, schema and ledger entry of the store's records and revocations."""
    problems = store.verify()
    snapshot = store.load()
    return StoreCheck(problems, len(snapshot.records), len(snapshot.revocations))
