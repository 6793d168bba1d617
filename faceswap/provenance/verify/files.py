"""`faceswap verify` as one call: the files named (folders searched), the ledger and trust anchor they
are checked against, the transparency heads they carry related to the checkpoints and proofs given,
and what is said about them. verifier.py decides one file; this gathers the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceswap.errors import BadInput, ExitCode, FaceswapError, worst
from faceswap.limits import VERIFY, InputLimits
from faceswap.provenance.verify.transparency import Trace, trace
from faceswap.provenance.verify.verifier import (
    LedgerView,
    Verdict,
    Verifier,
    collect_paths,
    describe_verdict,
    ledger_view_for,
)
from faceswap.report import Report

ANCHOR_BYTES = 1 << 20  # a PEM root certificate is a few KB


@dataclass(frozen=True)
class VerifyRequest:
    paths: list[Path]  # images, videos or folders (searched recursively)
    ledger: Path | None = None  # a `ledger export` JSONL instead of the workspace's ledger
    trust_anchor: Path | None = None  # the root Content Credentials must chain to
    checkpoint: list[Path] = field(default_factory=list)  # log checkpoints the files must trace into
    proof: list[Path] = field(default_factory=list)  # log proofs linking heads
    limits: InputLimits = VERIFY


@dataclass
class VerifyReport(Report):
    ledger_view: LedgerView | None
    verdicts: list[Verdict]
    heads: Trace | None  # None when there is nothing to relate

    @property
    def exit_code(self) -> ExitCode:
        return worst({v.exit_code for v in self.verdicts} | ({self.heads.exit_code} if self.heads else set()))

    def to_json(self) -> dict[str, Any]:
        view = self.ledger_view
        return {
            "ledger": view.source if view else None,
            "ledger_problem": str(view.finding) if view and view.finding else None,
            "files": [v.to_json() for v in self.verdicts],
            "transparency": self.heads.to_json() if self.heads else None,
        }

    def lines(self) -> list[str]:
        out = [describe_verdict(verdict) for verdict in self.verdicts]
        if self.ledger_view and self.ledger_view.finding:
            out.append(f"ledger {self.ledger_view.source}: TAMPERED at {self.ledger_view.finding}")
        return out + (self.heads.lines() if self.heads else [])


def verify_files(workspace: Any, request: VerifyRequest) -> VerifyReport:
    """Every file named, against the export given or the workspace's ledger; no files is bad input."""
    paths = collect_paths(request.paths)
    if not paths:
        raise BadInput("no image or video files found")
    view = ledger_view_for(workspace, request.ledger, request.limits)
    anchor = read_anchor(request.trust_anchor) if request.trust_anchor else None
    verifier = Verifier(view, trust_anchor=anchor, limits=request.limits)
    verdicts = [verifier.verify(path) for path in paths]
    return VerifyReport(view, verdicts, _trace_heads(request, verdicts))


def _trace_heads(request: VerifyRequest, verdicts: list[Verdict]) -> Trace | None:
    """The heads the files carry, checked against the checkpoints and proofs given (and each
    other): None when there is nothing to relate."""
    proofs = [v.transparency for v in verdicts if v.transparency is not None]
    if not (request.checkpoint or request.proof or sum(p.state == "proven" for p in proofs) > 1):
        return None
    return trace(proofs, request.checkpoint, request.proof)


def read_anchor(path: Path) -> bytes:
    """A trust anchor someone handed over: bounded in size, and a certificate, before it is used."""
    from faceswap.provenance.credentials import root_fingerprint_of

    try:
        if path.stat().st_size > ANCHOR_BYTES:
            raise FaceswapError(f"{path}: a trust anchor is a certificate of a few KB, not {path.stat().st_size} bytes")
        pem = path.read_bytes()
    except OSError as error:
        raise FaceswapError(f"{path}: unreadable trust anchor ({error.strerror})") from None
    root_fingerprint_of(pem)  # BadInput unless it is a certificate
    return pem
