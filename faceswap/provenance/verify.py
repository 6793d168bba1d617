"""`faceswap verify`: is a file from this framework, and under which consent and model?

A file is marked when its watermark passes (watermark.py states the false-positive bound for the
tries made). A video's decision reads up to VIDEO_SAMPLES frames spread over the whole clip and up
to INTRA_SAMPLES of its intra frames, which a re-encode leaves best marked. The token names its
`output.written` ledger entry; when the token did not survive but a layer did, the entry is looked
up by perceptual hash. The entry's own hash and signature, and the chain up to it, must verify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from faceswap.consent.records import status_of
from faceswap.errors import ExitCode, FaceswapError
from faceswap.ledger import Entry, Finding, Ledger, PublicKey, entry_hash_of
from faceswap.ledger.chain import KeyHistory
from faceswap.ledger.export import ExportedLedger
from faceswap.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from faceswap.provenance.credentials import CredentialReport, read_credentials
from faceswap.provenance.credentials.agreement import disagreement
from faceswap.provenance.credentials.pinned import trust_anchor_in
from faceswap.provenance.facemark import LazyFaceAnalyzer
from faceswap.provenance.phash import MATCH_DISTANCE, best_distance, phash
from faceswap.provenance.transparency import INVALID, PROVEN, FileProof, against_log, check_file_proof
from faceswap.provenance.watermark import Detection, Watermarker

VIDEO_SAMPLES = 48
INTRA_SAMPLES = 8


@dataclass
class LedgerView:
    """Entries and their keys, from a workspace ledger or from an export, checked once."""

    entries: list[Entry]
    history: KeyHistory | None
    finding: Finding | None
    source: str
    log: Any = field(default=None, repr=False, compare=False)  # its transparency-log tree, built on first need

    @classmethod
    def from_ledger(cls, ledger: Ledger) -> LedgerView:
        rows, checked = ledger.inspect()
        return cls(rows, checked.history, checked.finding, ledger.location)

    @classmethod
    def from_export(cls, path: Path) -> LedgerView:
        exported = ExportedLedger.load(path)
        checked = exported.check()
        return cls(exported.entries, checked.history, checked.finding, str(path))

    def outputs(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "output.written"]

    def holds_head(self, proof: FileProof) -> FileProof:
        """The file's transparency proof, failed if this ledger no longer has the head it carries."""
        from faceswap.ledger.tlog import LogTree

        if self.log is None:
            self.log = LogTree()
            self.log.sync(self.entries)
        return against_log(proof, self.log.origin, self.log.tree)

    def entry_ok(self, entry: Entry) -> bool:
        """The entry's own hash and signature hold, and the chain is sound up to it."""
        if self.history is None or entry_hash_of(entry.prev_hash, entry.body) != entry.entry_hash:
            return False
        signer: PublicKey = self.history.key_at(entry.seq)
        return signer.verify(entry.signature, entry.entry_hash) and (
            self.finding is None or self.finding.seq > entry.seq
        )

    def consent_status(self, record_id: str, today: date | None = None) -> str:
        """A record's status from the ledger alone (an export has no consent files), as of `today`
        (default: the UTC date now)."""
        registered = [
            e for e in self.entries if e.kind == "consent.registered" and e.data.get("record_id") == record_id
        ]
        if not registered:
            return "unknown"
        revoked = any(e.kind == "consent.revoked" and e.data.get("record_id") == record_id for e in self.entries)
        data = registered[-1].data
        valid_from = date.fromisoformat(data["valid_from"]) if data.get("valid_from") else None
        today = today or datetime.now(timezone.utc).date()
        return status_of(revoked, valid_from, date.fromisoformat(data["expires_at"]), today)


@dataclass
class Verdict:
    path: Path
    media: str
    detection: Detection | None = None
    entry: Entry | None = None
    matched_by: str | None = None  # "token" or "perceptual-hash"
    ledger: str = "unavailable"  # valid | tampered | missing | unavailable
    similar: dict[str, Any] | None = None
    consent: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    credentials: CredentialReport | None = None
    credentials_problem: str | None = None
    transparency: FileProof | None = None  # the transparency-log proof its credentials carry

    @property
    def marked(self) -> bool:
        """The watermark says so, or Content Credentials from the trusted signer carry a token."""
        by_credentials = self.credentials is not None and self.credentials.ok and self.credentials.token is not None
        return bool(self.detection and self.detection.marked) or by_credentials

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return ExitCode.BAD_INPUT
        if self.credentials_problem is not None or (self.transparency and self.transparency.state == INVALID):
            return ExitCode.UNTRACED
        if not self.marked:
            return ExitCode.REFUSED
        if self.ledger in ("tampered", "missing"):
            return ExitCode.UNTRACED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        data = self.entry.data if self.entry else {}
        return {
            "path": str(self.path),
            "media": self.media,
            "marked": self.marked,
            "detection": self.detection.to_json() if self.detection else None,
            "ledger": self.ledger,
            "matched_by": self.matched_by,
            "ledger_seq": self.entry.seq if self.entry else None,
            "created_at": self.entry.created_at if self.entry else None,
            "producer": data.get("producer"),
            "model_fingerprint": data.get("model_fingerprint"),
            "consent": self.consent,
            "similar_output": self.similar,
            "credentials": self.credentials.to_json() if self.credentials else None,
            "credentials_problem": self.credentials_problem,
            "transparency": self.transparency.to_json() if self.transparency else None,
            "error": self.error,
            "exit_code": self.exit_code,
        }


def collect_paths(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        else:
            out.append(path)
    return out


@dataclass(frozen=True)
class Sample:
    """The frames a decision is made on: an image, or frames spread over a video plus its intra
    (key) frames, which after a re-encode hold the mark best."""

    media: str
    frames: list
    intra: list[bool]


def read_sample(path: Path) -> Sample:
    from faceswap.media import probe_video, read_image

    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return Sample("image", [read_image(path)], [True])
    info = probe_video(path)
    every = max(1, info.frames // VIDEO_SAMPLES) if info.frames else 1
    frames, intra = _decode_sample(path, every)
    return Sample("video", frames, intra)


def _decode_sample(path: Path, every: int) -> tuple[list, list[bool]]:
    """Every `every`-th frame (up to VIDEO_SAMPLES) and up to INTRA_SAMPLES intra frames besides."""
    import av

    frames: list = []
    intra: list[bool] = []
    extra = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                spread = index % every == 0 and len(frames) - extra < VIDEO_SAMPLES
                key = bool(frame.key_frame) and extra < INTRA_SAMPLES
                if spread or key:
                    frames.append(frame.to_ndarray(format="bgr24"))
                    intra.append(bool(frame.key_frame))
                    extra += int(key and not spread)
                if len(frames) - extra >= VIDEO_SAMPLES and index >= every * VIDEO_SAMPLES:
                    break  # the spread is complete (a container that did not say its length)
    except av.FFmpegError as error:
        from faceswap.errors import BadInput

        raise BadInput(f"{path}: video is corrupt or unreadable ({error.strerror or error})") from None
    except IndexError:
        from faceswap.errors import BadInput

        raise BadInput(f"{path}: has no video stream") from None
    return frames, intra


def read_frames(path: Path) -> tuple[str, list]:
    sample = read_sample(path)
    return sample.media, sample.frames


class Verifier:
    def __init__(
        self,
        ledger: LedgerView | None,
        watermarker: Watermarker | None = None,
        trust_anchor: bytes | None = None,
        faces: Any = None,
        today: date | None = None,
    ) -> None:
        """`trust_anchor`: the root that Content Credentials must chain to; default: the one the
        ledger pins (its `credentials.created` entry). `faces`: a face analyzer for the face layer,
        "auto" (one made on first need), or None: skipped, since conversion does not write that
        layer (docs/watermark.md has the measurements). `today`: the date consent status is judged
        on (default: the UTC date at each lookup)."""
        self.ledger = ledger
        self.watermarker = watermarker or Watermarker()
        self.trust_anchor = trust_anchor or (trust_anchor_in(ledger.entries) if ledger else None)
        self.faces = LazyFaceAnalyzer() if faces == "auto" else faces
        self.today = today

    def verify(self, path: Path, sample: Sample | None = None) -> Verdict:
        """`sample`: the frames of `path` when the caller has read them already (to show one)."""
        try:
            sample = sample or read_sample(path)
            media, frames = sample.media, sample.frames
            if not frames:
                raise FaceswapError(f"{path}: no frames could be decoded")
        except FaceswapError as error:
            return Verdict(path, "unknown", error=str(error))
        if min(f.shape[0] * f.shape[1] for f in frames) < 64 * 64:
            return Verdict(path, media, error=f"{path}: too small to carry a watermark")
        verdict = Verdict(path, media, detection=self.watermarker.detect(frames, self.faces, intra=sample.intra))
        verdict.credentials = read_credentials(path, self.trust_anchor)
        if self.ledger is not None:
            hashes = [phash(f) for f in frames[:: max(1, len(frames) // 8)]]
            if verdict.marked:
                self._attach_entry(verdict, hashes)
            else:
                self._note_similar(verdict, hashes)
        verdict.credentials_problem = disagreement(verdict.credentials, verdict.detection.token, verdict.entry)
        verdict.transparency = check_file_proof(str(path), verdict.credentials)
        if self.ledger is not None:
            verdict.transparency = self.ledger.holds_head(verdict.transparency)
        return verdict

    def _attach_entry(self, verdict: Verdict, hashes: list[str]) -> None:
        assert self.ledger is not None and verdict.detection is not None
        outputs = self.ledger.outputs()
        entry, matched_by = None, None
        credentials = verdict.credentials
        token, source = verdict.detection.token, "token"
        if token is None and credentials is not None and credentials.ok and credentials.token:
            token, source = credentials.token, "credentials"
        if token:
            # a token read intact names one entry; a ledger without it (an older export) does not hold
            # this output, so the perceptual hash must not credit it to a look-alike
            entry = next((e for e in outputs if e.data.get("token") == token), None)
            matched_by = source if entry else None
        else:
            scored = [(best_distance(hashes, e.data.get("phashes", [])), e) for e in outputs]
            scored = [(d, e) for d, e in scored if d <= MATCH_DISTANCE]
            if scored:
                entry = min(scored, key=lambda pair: pair[0])[1]
                matched_by = "perceptual-hash"
        if entry is None:
            verdict.ledger = "missing"
            return
        verdict.entry, verdict.matched_by = entry, matched_by
        verdict.ledger = "valid" if self.ledger.entry_ok(entry) else "tampered"
        verdict.consent = [
            {"record_id": rid, "status": self.ledger.consent_status(rid, self.today)}
            for rid in entry.data.get("consent_record_ids", [])
        ]

    def _note_similar(self, verdict: Verdict, hashes: list[str]) -> None:
        assert self.ledger is not None
        best = min(
            ((best_distance(hashes, e.data.get("phashes", [])), e) for e in self.ledger.outputs()),
            key=lambda pair: pair[0],
            default=None,
        )
        if best and best[0] <= MATCH_DISTANCE:
            verdict.similar = {"ledger_seq": best[1].seq, "phash_distance": best[0], "token": best[1].data.get("token")}


def ledger_view_for(workspace: Any, export: Path | None) -> LedgerView | None:
    """The ledger to look files up in: an export when given, else the workspace's, else none."""
    from faceswap.ledger import ledger_exists, open_ledger

    if export is not None:
        return LedgerView.from_export(export)
    if ledger_exists(workspace):
        return LedgerView.from_ledger(open_ledger(workspace, writable=False))
    return None


def describe_verdict(verdict: Verdict) -> str:
    """One human line per file."""
    if verdict.error:
        return f"{verdict.path}: UNREADABLE: {verdict.error}"
    det = verdict.detection
    assert det is not None
    credentials = _credentials_phrase(verdict)
    if not verdict.marked:
        line = f"{verdict.path}: NOT MARKED ({evidence_summary(det)}){credentials}"
        if verdict.similar:
            s = verdict.similar
            line += f"; looks like ledger output seq {s['ledger_seq']} (perceptual hash distance {s['phash_distance']})"
        return line
    proof = f"scheme {det.scheme}: {evidence_summary(det)}"
    if det.token:
        fixed = (
            f"{det.token_corrected_bits} of 160 code bits corrected"
            if det.token_corrected_bits is not None
            else f"{det.token_corrected_bytes} bytes corrected"
        )
        proof += f"; token {det.token} from {det.token_from} ({fixed})"
    else:
        proof += "; token lost"
    undone = undone_summary(det)
    proof += f"; undone: {undone}" if undone else ""
    line = f"{verdict.path}: MARKED ({proof}; false-positive bound {det.false_positive_bound:.1e}){credentials}"
    if verdict.ledger == "unavailable":
        return line + "; no ledger available to look it up"
    if verdict.entry is None:
        return line + "; NO LEDGER ENTRY found for it"
    data = verdict.entry.data
    consent = ", ".join(f"{c['record_id']} ({c['status']})" for c in verdict.consent) or "none recorded"
    how = {"token": "", "credentials": " matched by Content Credentials;"}.get(
        verdict.matched_by or "", " matched by perceptual hash;"
    )
    return (
        f"{line};{how} ledger seq {verdict.entry.seq} ({verdict.ledger}): {data.get('producer')} at "
        f"{verdict.entry.created_at}, model {data.get('model_fingerprint') or '-'}, consent {consent}"
    )


def _credentials_phrase(verdict: Verdict) -> str:
    if verdict.credentials_problem:
        return f"; {verdict.credentials_problem}"
    report = verdict.credentials
    if report is None or not report.present:
        return "; no Content Credentials"
    return f"; Content Credentials {report.state}{_transparency_phrase(verdict.transparency)}"


def _transparency_phrase(proof: FileProof | None) -> str:
    if proof is None or proof.state not in (PROVEN, INVALID):
        return ""
    if proof.state == INVALID:
        return f"; TRANSPARENCY PROOF FAILS: {proof.problem}"
    assert proof.head is not None
    return f", logged as leaf {proof.leaf_index} of its signed checkpoint (tree size {proof.head.size})"


def evidence_summary(det: Detection) -> str:
    """Each layer read, in a few words: 'tiles z 14.2/7.6, scheme-1 sync 12/32, faces: none found'."""
    parts = []
    for e in det.layers:
        if e.layer in ("tiles", "face") and e.tries:
            name = "tiles (intra frames)" if e.details.get("frames") == "intra frames" else e.layer
            parts.append(f"{name} z {e.score:.1f}/{e.threshold:.1f}")
        elif e.layer == "face":
            parts.append("faces: none found")
        elif e.layer == "v1-sync":
            parts.append(f"scheme-1 sync {int(e.score)}/32")
    return ", ".join(parts)


def undone_summary(det: Detection) -> str:
    u = det.undone
    parts = ["mirror"] if u.get("mirror") else []
    if u.get("borders"):
        parts.append("borders")
    if u.get("scale") and abs(u["scale"] - 1.0) > 0.01:
        parts.append(f"scale x{u['scale']:.2f}")
    return ", ".join(parts)
