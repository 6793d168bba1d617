"""`ledger export`: JSONL (a header with the public key and the signed head, then every entry) that
anyone can check with no workspace; and a signed head statement people can keep as a witness.

An export becomes a verifier bundle when its header also carries the watermark secrets (only when
the operator asks, `--with-watermark-keys`; the file is then 0600): its holder can read the keyed
marks, and forge or remove them, but content binding still ties every token to what its entry
recorded (SECURITY.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.atomic import write_atomic
from faceswap.errors import BadInput, CheckFailed, ExitCode
from faceswap.hashing import canonical_json
from faceswap.ledger.chain import ChainCheck, Entry, Finding, check_chain, entries_of, utc_now
from faceswap.ledger.core import Ledger
from faceswap.ledger.keys import PublicKey
from faceswap.ledger.watermark_keys import WatermarkKey, WatermarkKeys, bundle_items, from_bundle
from faceswap.ledger.watermark_keys import load as load_watermark_keys
from faceswap.report import Report

EXPORT_TYPE = "faceswap.ledger.export"
HEAD_TYPE = "faceswap.ledger.head"


def _write_atomically(out: Path, lines: list[str], mode: int = 0o644) -> None:
    write_atomic(out, "".join(line + "\n" for line in lines), mode)


def export_ledger(ledger: Ledger, out: Path, watermark: WatermarkKeys | None = None) -> int:
    """Write a verified ledger as JSONL; a ledger that fails verification is not exported. With
    `watermark`, the secrets go into the header (a verifier bundle, written 0600)."""
    head = ledger.head()  # before the rows, which only grow: they hold the row it names
    entries = ledger.entries()
    header = {
        "type": EXPORT_TYPE,
        "public_key": ledger.public.b64,
        "key_id": ledger.public.key_id,
        "exported_at": utc_now(),
        "head": head,
        **({"watermark_keys": bundle_items(watermark)} if watermark is not None else {}),
    }
    lines = [canonical_json(header)] + [canonical_json(e.to_json()) for e in entries]
    _write_atomically(out, lines, 0o600 if watermark is not None else 0o644)
    return len(entries)


@dataclass
class Exported(Report):
    out: Path
    entries: int
    secrets: int | None  # watermark secrets put in the bundle; None: none asked for

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "entries": self.entries, "watermark_secrets": self.secrets}

    def lines(self) -> list[str]:
        if self.secrets is None:
            return [f"exported {self.entries} entries and the public key to {self.out}"]
        return [
            f"exported {self.entries} entries, the public key and {self.secrets} watermark secret(s) to {self.out} "
            "(0600): whoever holds this file can read, forge and remove this workspace's marks; content binding "
            "still ties each mark to what its entry recorded"
        ]


def export_bundle(ledger: Ledger, keys_dir: Path, out: Path, with_watermark_keys: bool = False) -> Exported:
    """The ledger as JSONL, and with `with_watermark_keys` the secrets of keys/watermark/ (a verifier
    bundle): refused when there are none to put in."""
    marks = None
    if with_watermark_keys:
        marks = load_watermark_keys(ledger.entries(), keys_dir)
        if marks is None or not marks.keys:
            raise CheckFailed("no watermark secret of this ledger is in keys/watermark/: nothing to put in a bundle")
    return Exported(out, export_ledger(ledger, out, marks), None if marks is None else len(marks.keys))


def head_statement(ledger: Ledger) -> dict[str, Any]:
    """The verified head, signed: keep it anywhere; `ledger verify --witness FILE` checks that the
    ledger still holds that row."""
    entries = ledger.entries()
    if ledger.key is None:
        raise BadInput("a head statement is signed with the registrar key, which is not available here")
    last = entries[-1]
    first_key = ledger.history.first.key_id if ledger.history else ledger.key.key_id
    statement = {
        "type": HEAD_TYPE,
        "location": ledger.location,
        "first_key_id": first_key,
        "seq": last.seq,
        "entry_hash": last.entry_hash,
        "stated_at": utc_now(),
        "key_id": ledger.key.key_id,
        "public_key": ledger.key.public.b64,
    }
    statement["signature"] = ledger.key.sign(canonical_json(statement))
    return statement


def write_head_statement(ledger: Ledger, out: Path) -> dict[str, Any]:
    statement = head_statement(ledger)
    _write_atomically(out, [json.dumps(statement, indent=2, sort_keys=True)])
    return statement


def check_head_statement(path: Path, entries: list[Entry]) -> Finding | None:
    """Does the ledger still hold the row a kept head statement names?"""
    try:
        statement = json.loads(Path(path).read_text(encoding="utf-8"))
        seq, entry_hash = int(statement["seq"]), str(statement["entry_hash"])
        signature = statement.pop("signature")
        key = PublicKey.from_b64(statement["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadInput(f"{path}: not a readable head statement ({error})") from None
    if statement.get("type") != HEAD_TYPE or not key.verify(signature, canonical_json(statement)):
        raise BadInput(f"{path}: not a signed faceswap head statement")
    if len(entries) < seq:
        return Finding(len(entries) + 1, f"missing: the kept head statement names seq {seq}; rows were removed")
    if entries[seq - 1].entry_hash != entry_hash:
        return Finding(seq, "differs from the kept head statement: the ledger was rewritten")
    return None


@dataclass(frozen=True)
class LedgerVerification:
    """What `ledger verify` found: storage damage, the first chain problem, or neither."""

    entries: int
    key_id: str | None
    finding: Finding | None
    damage: str | None

    @property
    def exit_code(self) -> ExitCode:
        if self.damage:
            return ExitCode.BAD_INPUT
        return ExitCode.REFUSED if self.finding else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.finding is None and self.damage is None,
            "entries": self.entries,
            "key_id": self.key_id,
            "first_bad_seq": self.finding.seq if self.finding else None,
            "problem": self.finding.problem if self.finding else None,
            "storage_damage": self.damage,
        }


def verify_ledger(ledger: Ledger, witness: Path | None = None) -> LedgerVerification:
    """Storage (the backend's own integrity check), then chain, head, key and witness, then a kept head
    statement if one is given."""
    damage = ledger.backend.integrity()
    rows, checked = ledger.inspect()
    finding = checked.finding
    if finding is None and witness is not None:
        finding = check_head_statement(witness, rows)
    key_id = ledger.history.current.key_id if ledger.history else None
    return LedgerVerification(len(rows), key_id, finding, damage)


@dataclass(frozen=True)
class ExportedLedger:
    public: PublicKey
    head: dict[str, Any] | None
    entries: list[Entry]
    watermark_secrets: tuple[WatermarkKey, ...] = ()  # a verifier bundle's (checked against the pins on use)

    @classmethod
    def load(cls, path: Path) -> ExportedLedger:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            header = json.loads(lines[0])
            if header.get("type") != EXPORT_TYPE:
                raise ValueError("not a faceswap ledger export")
            entries = [Entry.from_json(json.loads(line)) for line in lines[1:] if line.strip()]
            public = PublicKey.from_b64(header["public_key"])
            secrets = tuple(from_bundle(header.get("watermark_keys")))
        except (OSError, IndexError, ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise BadInput(f"{path}: not a readable ledger export ({error})") from None
        except Exception as error:  # noqa: BLE001 - a bad key in the header is bad input too
            raise BadInput(f"{path}: not a readable ledger export ({error})") from None
        return cls(public, header.get("head"), entries, secrets)

    def check(self) -> ChainCheck:
        result = check_chain(self.entries, self.head, legacy_key=self.public)
        if result.finding is None and result.history is not None and result.history.current != self.public:
            result.finding = Finding(len(self.entries), "the export's public key is not the ledger's current key")
        return result

    def verify(self) -> Finding | None:
        return self.check().finding

    def find(self, kind: str, **match: Any) -> list[Entry]:
        return entries_of(self.entries, kind, **match)
