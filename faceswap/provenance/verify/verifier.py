"""`faceswap verify`: is a file from this framework, and under which consent and model?

A file is marked when its watermark passes (watermark/marker.py states the false-positive bound for the
tries made); Content Credentials alone never make it so. The watermark is read with the ledger's
secrets (from the workspace's keys/, or a verifier bundle), then with the public key older outputs
used. A video's decision reads up to VIDEO_SAMPLES frames spread over the whole clip and up to
INTRA_SAMPLES of its intra frames, which a re-encode leaves best marked. The token names its
`output.written` ledger entry; when the token did not survive but a layer did, the entry is looked
up by perceptual hash. The entry's own hash and signature, and the chain up to it, must verify; and
the mark credits it only when it was made with the key the entry records and the file shows the
content the entry recorded (provenance/binding.py; an older entry without fingerprints: its file
hash or perceptual hashes). Anything else is exit 3, naming the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from faceswap.consent.records import status_of
from faceswap.errors import ExitCode, FaceswapError
from faceswap.ledger import Entry, Finding, Ledger, PublicKey, entry_hash_of, watermark_keys
from faceswap.ledger.chain import KeyHistory
from faceswap.ledger.export import ExportedLedger
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.limits import VERIFY, InputLimits
from faceswap.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from faceswap.model.mark import CARRIERS
from faceswap.provenance.binding import BindingCheck
from faceswap.provenance.credentials import CredentialReport, read_credentials
from faceswap.provenance.credentials.agreement import disagreement
from faceswap.provenance.credentials.pinned import trust_anchor_in
from faceswap.provenance.credentials.reader import TRUSTED
from faceswap.provenance.phash import MATCH_DISTANCE, best_distance, phash
from faceswap.provenance.verify.model_marks import ModelMarkReading, marked_models, read_model_marks
from faceswap.provenance.verify.transparency import INVALID, PROVEN, FileProof, against_log, check_file_proof
from faceswap.provenance.watermark.marker import PUBLIC_KEY_ID, Detection, Watermarker

VIDEO_SAMPLES = 48
INTRA_SAMPLES = 8
ANALYSIS_PIXELS = 3840 * 2160  # a still larger than 4K UHD is read scaled down to this


@dataclass
class LedgerView:
    """Entries and their keys, from a workspace ledger or from an export, checked once; and the
    watermark secrets it pins that are available here (keys/, or a verifier bundle's)."""

    entries: list[Entry]
    history: KeyHistory | None
    finding: Finding | None
    source: str
    marks: WatermarkKeys | None = None
    log: Any = field(default=None, repr=False, compare=False)  # its transparency-log tree, built on first need

    @classmethod
    def from_ledger(cls, ledger: Ledger, keys_dir: Path | None = None) -> LedgerView:
        rows, checked = ledger.inspect()
        return cls(rows, checked.history, checked.finding, ledger.location, watermark_keys.load(rows, keys_dir))

    @classmethod
    def from_export(cls, path: Path) -> LedgerView:
        exported = ExportedLedger.load(path)
        checked = exported.check()
        marks = watermark_keys.load(exported.entries, None, exported.watermark_secrets)
        return cls(exported.entries, checked.history, checked.finding, str(path), marks)

    @property
    def unreadable_keys(self) -> list[str]:
        """Pinned watermark secrets not available here: marks made with them cannot be read."""
        if self.marks is None:
            return [p.key_id for p in watermark_keys.pins(self.entries)]
        return list(self.marks.missing)

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
    matched_by: str | None = None  # "token", "credentials" or "perceptual-hash"
    ledger: str = "unavailable"  # valid | tampered | missing | unavailable
    similar: dict[str, Any] | None = None
    consent: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    credentials: CredentialReport | None = None
    credentials_problem: str | None = None
    binding: BindingCheck | None = None
    binding_problem: str | None = None  # the mark does not credit its entry: another key, or other content
    unreadable_keys: tuple[str, ...] = ()  # pinned watermark secrets not available to this verifier
    transparency: FileProof | None = None  # the transparency-log proof its credentials carry
    model_mark: ModelMarkReading | None = None  # its faces read for models' own marks (no entry credited)

    @property
    def model_traced(self) -> bool:
        """Its faces carry a model's own mark: rendered by that model, outside the sink."""
        return self.model_mark is not None and self.model_mark.traced

    @property
    def marked(self) -> bool:
        """The watermark says so; Content Credentials alone never do."""
        return bool(self.detection and self.detection.marked)

    @property
    def forgeable(self) -> bool:
        """Marked only with a layer anyone can compute (the public key, scheme 1)."""
        return self.marked and self.detection is not None and self.detection.key_id in (PUBLIC_KEY_ID, None)

    @property
    def unchanged_output(self) -> bool:
        """Not marked as far as this verifier can read (no secret here), but an output's unchanged
        bytes by its own trusted Content Credentials: traced to their entry in the ledger at hand, or,
        with none, proven into the log by the transparency proof they carry."""
        if self.marked:
            return False
        if self.entry is not None:
            return self.matched_by == "credentials"
        credentials, proof = self.credentials, self.transparency
        return (
            self.ledger == "unavailable"
            and credentials is not None
            and credentials.state == TRUSTED
            and credentials.ok
            and proof is not None
            and proof.state == PROVEN
        )

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return ExitCode.BAD_INPUT
        if not self.marked and not self.unchanged_output:
            return ExitCode.UNTRACED if self.model_traced else ExitCode.REFUSED
        if self.credentials_problem is not None or self.binding_problem is not None:
            return ExitCode.UNTRACED
        if self.transparency and self.transparency.state == INVALID:
            return ExitCode.UNTRACED
        if self.ledger in ("tampered", "missing") or (self.ledger == "unavailable" and self.forgeable):
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
            "binding": self.binding.to_json() if self.binding else None,
            "binding_problem": self.binding_problem,
            "unreadable_keys": list(self.unreadable_keys),
            "transparency": self.transparency.to_json() if self.transparency else None,
            "model_mark": self.model_mark.to_json() if self.model_mark else None,
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
    checks: list = field(default_factory=list)  # a video's frames for content binding, drawn for this reading


def read_sample(path: Path, limits: InputLimits = VERIFY, draw_key: bytes = b"") -> Sample:
    """The file's frames, bounded by `limits` (what a file may declare) and by what the sample may hold
    (sampling.py): an image at most ANALYSIS_PIXELS large, a video's frames spread over it, and frames
    for content binding at positions drawn from the file's bytes and `draw_key` (`Verifier.draw_key`)."""
    from faceswap.media import checked_size, read_view
    from faceswap.provenance.binding import STRETCH_CHECKS
    from faceswap.sampling import sample_video

    checked_size(path, limits)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return Sample("image", [read_view(path, limits, ANALYSIS_PIXELS)], [True])
    got = sample_video(path, limits, VIDEO_SAMPLES, INTRA_SAMPLES, STRETCH_CHECKS, _draws(path, draw_key))
    return Sample("video", got.frames, got.intra, got.checks)


def _draws(path: Path, key: bytes) -> random.Random:
    """Where binding's frames fall in a file: the same for the same file and verifier, so a verdict
    repeats; unknown without the key to whoever made the file, and moved by any change to its bytes."""
    from faceswap.hashing import file_sha256

    return random.Random(hmac.new(key, bytes.fromhex(file_sha256(path)), hashlib.sha256).digest())


def draw_key_of(ledger: LedgerView | None) -> bytes:
    """The key binding's frames are drawn with: from the newest watermark secret present here (empty
    without one: then no keyed token is read and binding is not asked)."""
    keys = ledger.marks.newest_first() if ledger is not None and ledger.marks is not None else ()
    return keys[0].derive(b"faceswap binding frames") if keys else b""


def read_frames(path: Path) -> tuple[str, list]:
    sample = read_sample(path)
    return sample.media, sample.frames


class Verifier:
    def __init__(
        self,
        ledger: LedgerView | None,
        watermarker: Watermarker | None = None,
        trust_anchor: bytes | None = None,
        today: date | None = None,
        limits: InputLimits = VERIFY,
    ) -> None:
        """`watermarker`: default, one that reads the ledger's secrets available here and then the
        public key of older files. `trust_anchor`: the root that Content Credentials must chain to;
        default: the one the ledger pins (its `credentials.created` entry). `today`: the date consent
        status is judged on (default: the UTC date at each lookup). `limits`: what a file may declare
        (limits.py)."""
        self.ledger = ledger
        self.watermarker = watermarker or Watermarker.reading(ledger.marks if ledger else None)
        self.trust_anchor = trust_anchor or (trust_anchor_in(ledger.entries) if ledger else None)
        self.today = today
        self.limits = limits
        self.draw_key = draw_key_of(ledger)
        found = marked_models(ledger.entries, ledger.marks) if ledger is not None else []
        self.models = [m for m in found if ledger is not None and ledger.entry_ok(m.entry)]
        self._analyzer: Any = None

    def sample(self, path: Path) -> Sample:
        """The frames this verifier decides `path` on (binding's drawn with its key)."""
        return read_sample(path, self.limits, self.draw_key)

    def verify(self, path: Path, sample: Sample | None = None) -> Verdict:
        """`sample`: the frames of `path` when the caller has read them already (to show one)."""
        try:
            credentials, sample = self.read(path, sample)
        except FaceswapError as error:
            return Verdict(path, "unknown", error=str(error))
        media, frames = sample.media, sample.frames
        if min(f.shape[0] * f.shape[1] for f in frames) < 64 * 64:
            return Verdict(path, media, error=f"{path}: too small to carry a watermark")
        verdict = Verdict(path, media, detection=self.watermarker.detect(frames, intra=sample.intra))
        verdict.credentials = credentials
        if self.ledger is not None:
            verdict.unreadable_keys = tuple(self.ledger.unreadable_keys)
            hashes = [phash(f) for f in frames[:: max(1, len(frames) // 8)]]
            if verdict.marked:
                self._attach_entry(verdict, hashes)
                if verdict.entry is not None:
                    verdict.binding_problem = self._binding_problem(verdict, sample.checks or frames, hashes)
            else:
                self._by_credentials(verdict)
                if verdict.entry is None:
                    self._note_similar(verdict, hashes)
            if verdict.entry is None:
                verdict.model_mark = read_model_marks(frames, self.models, self._faces)
                if verdict.model_traced:
                    assert verdict.model_mark is not None
                    verdict.consent = self._consent_of(verdict.model_mark.entry)
        verdict.credentials_problem = disagreement(verdict.credentials, verdict.detection.token, verdict.entry)
        verdict.transparency = check_file_proof(str(path), verdict.credentials)
        if self.ledger is not None:
            verdict.transparency = self.ledger.holds_head(verdict.transparency)
        return verdict

    def read(self, path: Path, sample: Sample | None = None) -> tuple[CredentialReport, Sample]:
        """A file's two readings, each within `self.limits`: its Content Credentials first (c2pa holds
        the whole file in memory, and frees it before any frame is decoded), then its frames (unless
        the caller has read them)."""
        from faceswap.media import checked_size

        checked_size(path, self.limits)
        credentials = read_credentials(path, self.trust_anchor, self.limits.file_bytes)
        sample = sample or self.sample(path)
        if not sample.frames:
            raise FaceswapError(f"{path}: no frames could be decoded")
        return credentials, sample

    def _faces(self, frame: Any) -> list:
        """The faces in a frame, for models' own marks (the analyzer is made on first need)."""
        from faceswap.faces.analyzer import FaceAnalyzer

        if self._analyzer is None:
            self._analyzer = FaceAnalyzer("auto")
        return self._analyzer.analyze(frame)

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
            same_key = [e for e in outputs if _key_fits(e, verdict.detection.key_id)]
            scored = [(best_distance(hashes, e.data.get("phashes", [])), e) for e in same_key]
            scored = [(d, e) for d, e in scored if d <= MATCH_DISTANCE]
            if scored:
                entry = min(scored, key=lambda pair: pair[0])[1]
                matched_by = "perceptual-hash"
        if entry is None:
            verdict.ledger = "missing"
            return
        verdict.entry, verdict.matched_by = entry, matched_by
        verdict.ledger = "valid" if self.ledger.entry_ok(entry) else "tampered"
        verdict.consent = self._consent_of(entry)

    def _consent_of(self, entry: Entry) -> list[dict[str, str]]:
        assert self.ledger is not None
        return [
            {"record_id": rid, "status": self.ledger.consent_status(rid, self.today)}
            for rid in entry.data.get("consent_record_ids", [])
        ]

    def _by_credentials(self, verdict: Verdict) -> None:
        """No mark read (a keyed mark whose secret is not here, say): the file's own Content
        Credentials still trace it when they are trusted, name an entry, and c2pa found its bytes
        unchanged. The verdict then is "unchanged output", never "marked"."""
        assert self.ledger is not None
        credentials = verdict.credentials
        if credentials is None or not credentials.ok or not credentials.token:
            return
        entry = next((e for e in self.ledger.outputs() if e.data.get("token") == credentials.token), None)
        if entry is not None and _exact_copy(credentials, entry):
            verdict.entry, verdict.matched_by = entry, "credentials"
            verdict.ledger = "valid" if self.ledger.entry_ok(entry) else "tampered"
            verdict.consent = self._consent_of(entry)

    def _binding_problem(self, verdict: Verdict, frames: list, hashes: list[str]) -> str | None:
        """Why the mark does not credit its entry (another key; content the entry did not record), or None."""
        from faceswap.provenance import binding

        entry, det = verdict.entry, verdict.detection
        assert entry is not None and det is not None
        if _exact_copy(verdict.credentials, entry):
            return None
        recorded = _recorded_key(entry)
        if not _key_fits(entry, det.key_id):
            made = "the public key" if det.key_id == PUBLIC_KEY_ID else f"key {det.key_id or '(scheme 1)'}"
            wanted = f"key {recorded}" if recorded else "the public key or scheme 1"
            return f"a mark of entry {entry.seq} made with {made}, not with {wanted} as the entry records"
        if "binding" in entry.data:
            mirrored = bool(det.undone.get("mirror"))
            verdict.binding = binding.check(entry.data["binding"], frames, mirrored)
            reason = None if verdict.binding.agrees else verdict.binding.reason
        else:
            reason = _legacy_disagreement(verdict.path, entry, hashes)
        return f"a mark of entry {entry.seq} on content that entry did not record ({reason})" if reason else None

    def _note_similar(self, verdict: Verdict, hashes: list[str]) -> None:
        assert self.ledger is not None
        best = min(
            ((best_distance(hashes, e.data.get("phashes", [])), e) for e in self.ledger.outputs()),
            key=lambda pair: pair[0],
            default=None,
        )
        if best and best[0] <= MATCH_DISTANCE:
            verdict.similar = {"ledger_seq": best[1].seq, "phash_distance": best[0], "token": best[1].data.get("token")}


def _recorded_key(entry: Entry) -> str | None:
    """The watermark key id an entry's mark was made with (None: an entry from before keyed marks)."""
    return (entry.data.get("watermark") or {}).get("key_id")


def _key_fits(entry: Entry, read_with: str | None) -> bool:
    """Was the mark read with the key its entry records? An entry from before keyed marks was marked
    with the public key (or scheme 1, read with no key)."""
    recorded = _recorded_key(entry)
    return read_with == recorded if recorded else read_with in (PUBLIC_KEY_ID, None)


def _exact_copy(credentials: CredentialReport | None, entry: Entry) -> bool:
    """The file's own trusted Content Credentials name this entry and c2pa found its bytes unchanged."""
    return bool(
        credentials is not None
        and credentials.ok
        and credentials.media_hash_matched
        and credentials.token == entry.data.get("token")
        and credentials.label in ((entry.data.get("credentials") or {}).get("labels") or [])
    )


def _legacy_disagreement(path: Path, entry: Entry, hashes: list[str]) -> str | None:
    """An entry from before content binding: the file must be the one written (its sha256, or a
    sequence frame's) or look like it (perceptual hash); the public mark alone proves nothing."""
    from faceswap.hashing import file_sha256

    digest = file_sha256(path)
    written = {entry.data.get("sha256")} | {sha for _, sha in entry.data.get("manifest") or []}
    if digest in written or best_distance(hashes, entry.data.get("phashes", [])) <= MATCH_DISTANCE:
        return None
    return "an older entry: neither its file hash nor its perceptual hashes match"


def ledger_view_for(workspace: Any, export: Path | None, limits: InputLimits = VERIFY) -> LedgerView | None:
    """The ledger to look files up in: an export when given (someone else's file: read whole, so its
    size is checked first), else the workspace's, else none."""
    from faceswap.ledger import ledger_exists, open_ledger
    from faceswap.media import checked_size

    if export is not None:
        checked_size(export, limits)
        return LedgerView.from_export(export)
    if ledger_exists(workspace):
        return LedgerView.from_ledger(open_ledger(workspace, writable=False), workspace.keys_dir)
    return None


def describe_verdict(verdict: Verdict) -> str:
    """One human line per file."""
    if verdict.error:
        return f"{verdict.path}: UNREADABLE: {verdict.error}"
    det = verdict.detection
    assert det is not None
    credentials = _credentials_phrase(verdict)
    if verdict.unchanged_output:
        return _unchanged_line(verdict, credentials)
    if verdict.model_traced:
        return _model_line(verdict, credentials)
    if not verdict.marked:
        line = f"{verdict.path}: NOT MARKED ({evidence_summary(det)}){credentials}"
        if verdict.similar:
            s = verdict.similar
            line += f"; looks like ledger output seq {s['ledger_seq']} (perceptual hash distance {s['phash_distance']})"
        if verdict.unreadable_keys:
            line += (
                f"; marks made with watermark key {', '.join(verdict.unreadable_keys)} cannot be read here (the secret "
                "stays with the workspace: ask its operator, or verify with a bundle they export)"
            )
        return line
    key = "public key, anyone can make it" if verdict.forgeable else f"key {det.key_id}"
    proof = f"scheme {det.scheme}, {key}: {evidence_summary(det)}"
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
        public = "; a public mark anyone can make" if verdict.forgeable else ""
        return line + public + "; no ledger available to look it up"
    if verdict.entry is None:
        return line + "; NO LEDGER ENTRY found for it"
    if verdict.binding_problem:
        return f"{line}; NOT CREDITED: {verdict.binding_problem}"
    data = verdict.entry.data
    consent = ", ".join(f"{c['record_id']} ({c['status']})" for c in verdict.consent) or "none recorded"
    how = {"token": "", "credentials": " matched by Content Credentials;"}.get(
        verdict.matched_by or "", " matched by perceptual hash;"
    )
    return (
        f"{line};{how} ledger seq {verdict.entry.seq} ({verdict.ledger}): {data.get('producer')} at "
        f"{verdict.entry.created_at}, model {data.get('model_fingerprint') or '-'}, consent {consent}"
    )


def _model_line(verdict: Verdict, credentials: str) -> str:
    """A file whose faces carry a model's own mark: that model rendered them, and no output entry
    credits the file (the network was run outside the framework's sink, or the frame mark is gone)."""
    reading = verdict.model_mark
    assert reading is not None and verdict.detection is not None
    data = reading.entry.data
    consent = ", ".join(f"{c['record_id']} ({c['status']})" for c in verdict.consent) or "none recorded"
    frame_mark = "frame watermark read but no entry credits it" if verdict.marked else "no frame watermark"
    return (
        f"{verdict.path}: MADE BY MODEL '{data.get('name')}' (its own mark in {reading.faces} faces: "
        f"z {reading.z:.1f}, {reading.agreeing} of {CARRIERS} carriers agreeing, {reading.candidates} models tried, "
        f"false-positive bound "
        f"{reading.bound:.1e}; {frame_mark}){credentials}; model.trained ledger seq {reading.entry.seq}, "
        f"fingerprint {data.get('fingerprint')}, consent {consent}; NO OUTPUT ENTRY: rendered outside the "
        "framework's output path"
    )


def _unchanged_line(verdict: Verdict, credentials: str) -> str:
    assert verdict.detection is not None
    if verdict.entry is None:
        proof = verdict.transparency
        assert proof is not None and proof.head is not None and proof.leaf_index is not None
        return (
            f"{verdict.path}: UNCHANGED OUTPUT (no mark read: {evidence_summary(verdict.detection)}; its trusted Content "
            f"Credentials name it, c2pa found its bytes as signed, and their proof puts it at entry "
            f"{proof.leaf_index + 1} of {proof.head.origin}'s log of {proof.head.size}){credentials}; no ledger "
            "available to look up its consent records"
        )
    data = verdict.entry.data
    consent = ", ".join(f"{c['record_id']} ({c['status']})" for c in verdict.consent) or "none recorded"
    return (
        f"{verdict.path}: UNCHANGED OUTPUT (no mark read: {evidence_summary(verdict.detection)}; its trusted Content "
        f"Credentials name it and c2pa found its bytes as signed){credentials}; ledger seq {verdict.entry.seq} "
        f"({verdict.ledger}): {data.get('producer')} at {verdict.entry.created_at}, model "
        f"{data.get('model_fingerprint') or '-'}, consent {consent}"
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
    """Each layer read, in a few words: 'tiles z 14.2/7.6, scheme-1 sync 12/32'."""
    parts = []
    for e in det.layers:
        if e.layer == "tiles" and e.tries:
            name = "public tiles" if e.details.get("key_id") == PUBLIC_KEY_ID else e.layer
            name += " (intra frames)" if e.details.get("frames") == "intra frames" else ""
            parts.append(f"{name} z {e.score:.1f}/{e.threshold:.1f}")
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
    if abs(u.get("rotation") or 0.0) >= 0.3:
        parts.append(f"rotation {u['rotation']:+.1f} deg")
    if abs((u.get("aspect") or 1.0) - 1.0) > 0.01:
        parts.append(f"aspect x{u['aspect']:.2f}")
    return ", ".join(parts)
