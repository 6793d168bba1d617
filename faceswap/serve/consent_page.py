"""A consent subject's own page: their record's status today and, with the record's access code, what
was made under it, and nothing of anyone else.

What the record id alone shows is what `faceswap verify` already tells anyone holding an output made
under it: the status, the term and the purposes (consent/access.py says why the id is no secret). The
access code adds the revocation, and the facesets, models and outputs whose signed entries name the
record, each reduced to fields about that item (no file names, no settings, no other record ids: an
output made under two people's consent shows the other's record nowhere)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from faceswap.consent.access import code_opens
from faceswap.ledger import Entry
from faceswap.provenance.verify.verifier import LedgerView
from faceswap.serve.explain import CONSENT_WORDS

OUTPUT_FIELDS = ("producer", "media", "frames", "width", "height", "token", "sha256", "model_fingerprint")
MODEL_FIELDS = ("fingerprint", "purpose", "steps")
FACESET_FIELDS = ("faces", "size", "backend")
OPENED_FIELDS = ("revoked", "outputs", "models", "facesets")


@dataclass(frozen=True)
class ConsentPage:
    record_id: str
    status: str
    status_words: str
    tone: str
    kind: str
    purposes: list[str]
    valid_from: str | None
    expires_at: str
    access: str  # none | wrong | opened
    ledger_problem: str | None = None
    revoked: dict[str, Any] | None = None  # from here on only with the access code
    outputs: list[dict[str, Any]] | None = None
    models: list[dict[str, Any]] | None = None
    facesets: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        """Without the access code, the fields it opens are absent, not empty."""
        data = asdict(self)
        if self.access != "opened":
            for key in OPENED_FIELDS:
                data.pop(key)
        return data


@lru_cache(maxsize=1)
def _record_id_pattern() -> re.Pattern[str]:
    from faceswap.consent.records import schema

    return re.compile(schema()["properties"]["record_id"]["pattern"])


def is_record_id(text: str) -> bool:
    """The schema's record id form (anything else is answered without looking)."""
    return bool(_record_id_pattern().fullmatch(text))


def consent_page(view: LedgerView, record_id: str, code: str | None, secret: bytes | None) -> ConsentPage | None:
    """The page for `record_id`, or None when the ledger has no such record."""
    trusted = verified_entries(view)
    registered = [e for e in trusted if e.kind == "consent.registered" and e.data.get("record_id") == record_id]
    if not registered:
        return None
    data = registered[-1].data
    status = view.consent_status(record_id)
    words, tone = CONSENT_WORDS.get(status, (status, "warn"))
    opened = code_opens(secret, record_id, code)
    page = ConsentPage(
        record_id=record_id,
        status=status,
        status_words=words,
        tone=tone,
        kind=str(data.get("kind", "")),
        purposes=list(data.get("purposes") or []),
        valid_from=data.get("valid_from"),
        expires_at=str(data.get("expires_at", "")),
        access="opened" if opened else ("wrong" if code else "none"),
        ledger_problem=str(view.finding) if view.finding else None,
    )
    if not opened:
        return page
    return ConsentPage(**{**asdict(page), **_made_under(trusted, record_id)})


def verified_entries(view: LedgerView) -> list[Entry]:
    """The entries the ledger's check vouched for: all of them, or those before its first problem."""
    if view.history is None:
        return []
    return [e for e in view.entries if view.finding is None or e.seq < view.finding.seq]


def _made_under(entries: list[Entry], record_id: str) -> dict[str, Any]:
    def row(entry: Entry, fields: tuple[str, ...]) -> dict[str, Any]:
        return {"seq": entry.seq, "created_at": entry.created_at, **{k: entry.data.get(k) for k in fields}}

    def under(entry: Entry) -> bool:
        return record_id in (entry.data.get("consent_record_ids") or [])

    revocation = next(
        (e for e in entries if e.kind == "consent.revoked" and e.data.get("record_id") == record_id), None
    )
    return {
        "revoked": (
            {"seq": revocation.seq, "at": revocation.created_at, "reason": revocation.data.get("reason")}
            if revocation
            else None
        ),
        "outputs": [row(e, OUTPUT_FIELDS) for e in entries if e.kind == "output.written" and under(e)],
        "models": [row(e, MODEL_FIELDS) for e in entries if e.kind == "model.trained" and under(e)],
        "facesets": [
            row(e, FACESET_FIELDS)
            for e in entries
            if e.kind == "faceset.built" and e.data.get("record_id") == record_id
        ],
    }
