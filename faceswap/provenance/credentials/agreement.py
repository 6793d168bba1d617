"""Do a file's Content Credentials, its watermark and its ledger entry tell the same story?"""

from __future__ import annotations

from faceswap.ledger import Entry
from faceswap.provenance.credentials.reader import VALID, CredentialReport


def disagreement(report: CredentialReport | None, watermark_token: str | None, entry: Entry | None) -> str | None:
    """Why the manifest cannot be believed for this file, or None. A missing manifest is no
    disagreement (sharing strips them); an invalid one, a valid one from a signer not under the trust
    anchor (or with no anchor to check: "signer unknown"), or one whose token or ledger position
    differs from the watermark's and the entry's, is."""
    if report is None or not report.present:
        return None
    if not report.ok:
        if report.state == VALID:
            who = "signer unknown" if report.trust_anchor is None else "signer not under the trust anchor"
            return f"Content Credentials valid, {who}"
        why = "; ".join(report.reasons[:2]) or report.state
        return f"Content Credentials {report.state}: {why}"
    if watermark_token and report.token and report.token != watermark_token:
        return f"Content Credentials name token {report.token}, the watermark carries {watermark_token}"
    if entry is None:
        return None
    labels = (entry.data.get("credentials") or {}).get("labels") or []
    provenance = report.provenance or {}
    if report.label not in labels:
        return f"Content Credentials {report.label} are not the ones ledger seq {entry.seq} recorded"
    if provenance.get("seq") != entry.seq or provenance.get("prev_hash") != entry.prev_hash:
        return f"Content Credentials name ledger position seq {provenance.get('seq')}, the entry is seq {entry.seq}"
    return None
