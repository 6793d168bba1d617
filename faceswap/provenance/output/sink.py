"""The output sink: the only code that writes generated pixels to disk.

For every output: refuse a destination that is an input or lies in the workspace's consent, keys or
ledger files; mark every frame with the workspace's watermark secret before it is encoded
(provenance/output/writers.py encodes), unless the frame measurably carries this output's mark already (a
frame marked where it was made is checked, never trusted: no caller flag skips marking); record the
content fingerprints of key frames (provenance/binding.py); write under a hidden partial name created
exclusively (never through a link); read the mark back from a sample of the written file; then,
inside the ledger transaction that records it (`output.written`), sign Content Credentials that name
the entry's position, hash the signed files and rename them into place. A failure (a mark that does
not read back included), a refusal by the guard (consent revoked meanwhile) or a kill leaves neither
a file nor an entry.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from faceswap.atomic import temp_path
from faceswap.colorspace import DisplayTransform, quantise
from faceswap.errors import BadInput, CheckFailed
from faceswap.hashing import canonical_json, file_sha256, safe_name, sha256_hex
from faceswap.ledger import Entry, Ledger, Position
from faceswap.ledger.tlog import OutputProof, output_claim, precommit_output
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.provenance import binding
from faceswap.provenance.credentials import CredentialFacts, IngredientRef, SigningIdentity, sign_file
from faceswap.provenance.output.readback import sample_written
from faceswap.provenance.output.writers import (
    VIDEO_CONTAINERS,
    ExrSequenceWriter,
    ImageWriter,
    MediaWriter,
    PngSequenceWriter,
    SinkFrame,
    VideoWriter,
    frame_names,
    view8,
)
from faceswap.provenance.phash import phash
from faceswap.provenance.watermark.marker import (
    READS_FROM,
    READS_FROM_PIXELS,
    SCHEME,
    Watermarker,
    format_token,
    new_token,
)

IMAGE_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}
PARTIAL_TAG = "faceswap-partial"
PHASH_SAMPLES = 16
T = TypeVar("T")

__all__ = ["Guard", "OutputContext", "OutputSink", "SinkFrame", "Written", "batched"]


class Guard(Protocol):
    """Stops an output that may no longer be made: `poll` between frames, `final` inside the ledger
    transaction with the verified entries. Either raises to refuse."""

    def poll(self) -> None: ...
    def final(self, entries: list[Entry]) -> None: ...


@dataclass(frozen=True)
class OutputContext:
    """Who made an output and how: recorded in its ledger entry and its Content Credentials."""

    producer: str
    model_fingerprint: str | None = None
    consent_record_ids: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    guard: Guard | None = None
    sources: tuple[Path, ...] = ()  # inputs the output must never overwrite; the first is its ingredient
    source_type: str = "trained"  # trained | composite (a swap into real footage) | algorithmic (no model)


@dataclass(frozen=True)
class Written:
    path: Path
    token: str
    entry: Entry
    frames: int
    leftovers_removed: int = 0


def _real(path: Path) -> Path:
    """Where writing `path` really lands: its folder with links resolved, and its own name."""
    return Path(os.path.realpath(path.parent)) / path.name


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(final: Path) -> int:
    """Hidden partial files of `final` left by writers that were killed: removed (links unlinked,
    never followed). Those of live writers stay."""
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.{PARTIAL_TAG}-(\d+)-[0-9a-f]+")
    removed = 0
    if not final.parent.is_dir():
        return 0
    for candidate in final.parent.iterdir():
        match = pattern.match(candidate.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        _discard(candidate)
        removed += 1
    return removed


def _discard(path: Path) -> None:
    """Remove a partial output (never following a link)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class OutputSink:
    def __init__(
        self,
        ledger: Ledger,
        credentials: SigningIdentity,
        marks: WatermarkKeys,
        batch: int = 8,
        protected: Sequence[Path] = (),
    ) -> None:
        """`marks`: the ledger's watermark secrets (the active one marks). `protected`: folders and files
        no output may land in or on (the workspace's consent, keys and ledger files). Most callers
        want `OutputSink.for_workspace`."""
        if batch < 1:
            raise BadInput("the sink's batch size must be at least 1")
        self.ledger = ledger
        self.credentials = credentials
        self.marks = marks
        self.watermarker = Watermarker.marking(marks)
        self.batch = batch
        self.protected = tuple(Path(os.path.realpath(p)) for p in protected)

    @classmethod
    def for_workspace(cls, workspace: Any, ledger: Ledger | None = None, batch: int = 8) -> OutputSink:
        """The workspace's sink: its ledger, its pinned Content Credentials identity and watermark
        secret, its protected paths."""
        from faceswap.ledger import open_ledger, watermark_keys
        from faceswap.provenance.credentials.pinned import identity_for

        ledger = ledger or open_ledger(workspace)
        identity = identity_for(ledger, workspace.keys_dir)
        marks = watermark_keys.for_writing(ledger, workspace.keys_dir)
        return cls(ledger, identity, marks, batch, workspace.protected_paths())

    def check_destination(self, final: Path, sources: Sequence[Path] = ()) -> None:
        """Refuse an output that would overwrite an input or land in the workspace's own state."""
        real = _real(final)
        for source in sources:
            same_file = final.exists() and source.exists() and os.path.samefile(final, source)
            if Path(os.path.realpath(source)) == real or same_file:
                raise BadInput(f"{final}: the output would overwrite an input ({source}); choose another path")
        for guarded in self.protected:
            if _inside(real, guarded) or _inside(guarded, real):
                raise BadInput(f"{final}: outputs may not be written into the workspace's {guarded.name}")

    def reserve_token(self) -> int:
        """A token no output entry uses yet (conversion marks its frames with it before the sink runs)."""
        used = {e.data.get("token") for e in self.ledger.entries("output.written")}
        while True:
            token = new_token()
            if format_token(token) not in used:
                return token

    def write_image(
        self, path: str | Path, image: np.ndarray | SinkFrame, context: OutputContext, token: int | None = None
    ) -> Written:
        final = Path(path)
        suffix = IMAGE_FORMATS.get(final.suffix.lower())
        if suffix is None:
            raise BadInput(f"{final}: images are written as .png or .jpg")
        return self._write(final, [image], ImageWriter(suffix), context, token)

    def write_sequence(
        self,
        folder: str | Path,
        frames: Iterable[SinkFrame | np.ndarray],
        context: OutputContext,
        pattern: str = "frame.{:06d}.png",
        token: int | None = None,
    ) -> Written:
        """A folder of PNGs (8- or 16-bit, RGBA when a frame carries a matte), all under one token,
        each frame with its own Content Credentials."""
        final = Path(folder)
        if final.exists() or final.is_symlink():
            raise BadInput(f"{final} already exists; choose a new folder for the sequence")
        return self._write(final, frames, PngSequenceWriter(pattern), context, token)

    def write_exr_sequence(
        self,
        folder: str | Path,
        frames: Iterable[SinkFrame],
        context: OutputContext,
        display: DisplayTransform,
        ocio: str,
        fps: Fraction | None = None,
        token: int | None = None,
    ) -> Written:
        """A folder of `FOLDER.####.exr` (half float, RGBA with mattes), frames named by their
        numbers, float frames in `display.space`, marked in its display-referred view."""
        final = Path(folder)
        if final.exists() or final.is_symlink():
            raise BadInput(f"{final} already exists; choose a new folder for the sequence")
        token = self.reserve_token() if token is None else token
        writer = ExrSequenceWriter(final.name, display, format_token(token), ocio, fps)
        return self._write(final, frames, writer, context, token)

    def write_video(
        self,
        path: str | Path,
        frames: Iterable[SinkFrame | np.ndarray],
        fps: Fraction,
        context: OutputContext,
        audio_from: Path | None = None,
        time_base: Fraction | None = None,
        crf: int = 18,
        expected_frames: int | None = None,
        token: int | None = None,
        codec: str = "h264",
        alpha: bool = False,
        timecode: str | None = None,
        rebase: bool = False,
    ) -> Written:
        """H.264 MP4/MOV/MKV or ProRes MOV (writers.VIDEO_CODECS; ProRes 4444 with the frames'
        mattes as alpha); source timestamps, audio and start timecode kept (provenance/output/writers.py)."""
        final = Path(path)
        container_format = VIDEO_CONTAINERS.get(final.suffix.lower())
        if container_format is None:
            raise BadInput(f"{final}: videos are written as {', '.join(sorted(VIDEO_CONTAINERS))}")
        writer = VideoWriter(
            container_format, Fraction(fps), audio_from, time_base, crf, codec, alpha, timecode, rebase
        )
        return self._write(final, frames, writer, context, token, expected_frames)

    def _write(
        self,
        final: Path,
        frames: Iterable[SinkFrame | np.ndarray],
        writer: MediaWriter,
        context: OutputContext,
        token: int | None,
        expected_frames: int | None = None,
    ) -> Written:
        """Check, mark, fingerprint, encode, read the mark back, then sign, hash, record and rename
        in one ledger transaction."""
        if final.is_dir() and writer.kind != "sequence":
            raise BadInput(f"{final} is a folder; give a file name")
        self.check_destination(final, context.sources)
        final.parent.mkdir(parents=True, exist_ok=True)
        leftovers = remove_leftovers(final)
        partial = temp_path(final, PARTIAL_TAG)
        token = self.reserve_token() if token is None else token
        content = _Content(writer.kind, expected_frames)
        try:
            writer.begin(partial)
            for batch in self._batches(frames, context):
                marked = self._mark(batch, token, writer.display)
                for item, image in zip(batch, marked, strict=True):
                    writer.add(item, image)
                    content.add(item, image, writer.display)
            facts = {**writer.finish(), **content.facts(), "watermark": self.mark_facts}
            self._read_back(final, partial, writer, token, int(facts["frames"]))
            entry = self._record(final, partial, writer, token, context, facts)
        except BaseException:
            writer.abort()
            raise
        finally:
            _discard(partial)
        return Written(final, format_token(token), entry, int(facts["frames"]), leftovers)

    @property
    def mark_facts(self) -> dict[str, Any]:
        """What the entry records about the mark: its scheme and the watermark key id (never the secret)."""
        return {"scheme": SCHEME, "key_id": self.watermarker.key_id}

    def _read_back(self, final: Path, partial: Path, writer: MediaWriter, token: int, count: int) -> None:
        """Read the token back from a sample of the encoded file; CheckFailed (nothing written) if not."""
        frames = sample_written(partial, writer, count)
        if not frames:
            raise CheckFailed(f"{final}: no frame decodes from the written file; nothing was written")
        found = self.watermarker.detect(frames, legacy=False)
        if found.token is not None and found.token != format_token(token):
            raise BadInput(
                f"{final}: the written file reads token {found.token}, not {format_token(token)}: its frames carried "
                "the watermark of another output of this workspace (under a secret key each output's mark is its "
                "own, so the per-frame check cannot see it), and two marks garble each other; write the unmarked "
                "frames. Nothing was written"
            )
        if found.token != format_token(token):
            h, w = frames[0].shape[:2]
            reliable = f"{READS_FROM[0]}x{READS_FROM[1]}"
            small = f"; at {w}x{h} the mark reads on some pictures only (reliably from about {reliable})"
            raise CheckFailed(
                f"{final}: the watermark did not read back from the written file (token {format_token(token)}, "
                f"read {found.token or 'none'}){small if w * h < READS_FROM_PIXELS else ''}; nothing was written"
            )

    def _batches(self, frames: Iterable[SinkFrame | np.ndarray], context: OutputContext) -> Iterator[list[SinkFrame]]:
        """Batches of frames, the guard polled before each."""
        for batch in batched((_as_sink_frame(f) for f in frames), self.batch):
            if context.guard is not None:
                context.guard.poll()
            yield batch

    def _mark(self, batch: list[SinkFrame], token: int, display: DisplayTransform | None) -> list[np.ndarray]:
        """Every frame marked with this output's token: a frame whose 8-bit view measurably carries the
        mark already (made and marked by the Swapper) passes as it is, the rest are marked here: uint8
        directly; uint16 through their 8-bit view, the mark scaled by 257; float frames (EXR) in their
        display-referred view, the mark carried back through the inverse transform, so an 8-bit render
        of the file holds it. Pixels the mark leaves alone keep their values."""
        out = [f.image for f in batch]
        frames = [f.image for f in batch]
        shown = [display.to_display(f) if f.dtype.kind == "f" and display else None for f in frames]
        views = [view8(f, display) if v is None else quantise(v, 8) for f, v in zip(frames, shown, strict=True)]
        todo = [i for i, view in enumerate(views) if not self.watermarker.carries(view, token)]
        if not todo:
            return out
        marked = self.watermarker.embed([views[i] for i in todo], token)
        for i, mark in zip(todo, marked, strict=True):
            frame, view, display_view = frames[i], views[i], shown[i]
            delta = mark.astype(np.int32) - view.astype(np.int32)
            if frame.dtype == np.uint8:
                out[i] = mark
            elif frame.dtype == np.uint16:
                out[i] = np.clip(frame.astype(np.int32) + delta * 257, 0, 65535).astype(np.uint16)
            else:
                assert display is not None and display_view is not None
                back = display.from_display(display_view + delta.astype(np.float32) / 255.0)
                touched = (delta != 0).any(axis=2, keepdims=True)
                out[i] = np.where(touched, back, frame).astype(np.float32)
        return out

    def _record(
        self,
        final: Path,
        partial: Path,
        writer: MediaWriter,
        token: int,
        context: OutputContext,
        facts: dict[str, Any],
    ) -> Entry:
        """Inside the ledger transaction: sign every file at the entry's position, hash what was
        signed, append, and rename into place; a failure anywhere leaves nothing."""
        signed: list[Any] = []
        published: list[Path] = []
        guard = context.guard.final if context.guard is not None else None

        def entry_data(position: Position) -> dict[str, Any]:
            claim, proof = self._precommit(position, token, context)
            credentials = replace(self._facts(final, token, context, position, facts), transparency=proof.assertion())
            files = self._sign(final, partial, writer, credentials, signed)
            digest = files[0][1] if writer.kind != "sequence" else sha256_hex(canonical_json(files))
            return {
                "token": format_token(token),
                "media": writer.kind,
                "name": safe_name(final),
                "producer": context.producer,
                "model_fingerprint": context.model_fingerprint,
                "consent_record_ids": list(context.consent_record_ids),
                "settings": context.settings,
                **facts,
                "sha256": digest,
                **({"manifest": files} if writer.kind == "sequence" else {}),
                "credentials": {
                    "root_fingerprint": self.credentials.root_fingerprint,
                    "labels": [item.manifest_label for item in signed],
                    "manifest_sha256": [item.manifest_sha256 for item in signed],
                    "sidecars": writer.kind != "sequence" and any(item.sidecar for item in signed),
                },
                "claim": claim,
            }

        def publish(_entry: Entry) -> None:
            for item in signed:
                if item.sidecar is not None:
                    os.replace(item.sidecar, item.final_sidecar)
                    if writer.kind != "sequence":  # a sequence's sidecars sit inside its folder
                        published.append(item.final_sidecar)
            os.replace(partial, final)
            published.append(final)

        try:
            return self.ledger.append("output.written", entry_data, on_commit=publish, guard=guard)
        except BaseException:
            for path in published:  # renamed, but the entry did not commit: no file without its entry
                _discard(path)
            for item in signed:
                item.discard()
            raise

    def _precommit(self, position: Position, token: int, context: OutputContext) -> tuple[dict[str, Any], OutputProof]:
        """The output's transparency-log leaf (its claim) and the checkpoint that ends with it,
        signed now, inside the transaction, so the file carries its own proof (ledger/tlog.py)."""
        claim = output_claim(
            format_token(token),
            context.producer,
            context.model_fingerprint,
            context.consent_record_ids,
            self.ledger.public.key_id,
            self.credentials.root_fingerprint,
        )
        return claim, precommit_output(self.ledger, position, claim)

    def _sign(
        self, final: Path, partial: Path, writer: MediaWriter, credentials: CredentialFacts, signed: list[Any]
    ) -> list[list[str]]:
        """Sign every file of the output (appending to `signed`); [relative name, sha256 after signing]."""
        files: list[list[str]] = []
        for path, relative in frame_names(partial, writer):
            if writer.kind == "sequence":  # each frame signed where it lies; the folder is renamed
                item = sign_file(path, replace(credentials, title=relative.name), self.credentials, final=path)
            else:
                item = sign_file(path, credentials, self.credentials, final=final)
            signed.append(item)
            files.append([str(relative), file_sha256(path)])
        return files

    def _facts(
        self, final: Path, token: int, context: OutputContext, position: Position, facts: dict[str, Any]
    ) -> CredentialFacts:
        ingredients = ()
        if context.sources and context.sources[0].is_file():
            source = context.sources[0]
            ingredients = (IngredientRef(safe_name(source), file_sha256(source), _media_type(source)),)
        fps = Fraction(facts["fps"]) if "fps" in facts else None
        duration = int(round(1000 * facts["frames"] / fps)) if fps else None
        return CredentialFacts(
            token=format_token(token),
            seq=position.seq,
            prev_hash=position.prev_hash,
            registrar_key_id=self.ledger.public.key_id,
            producer=context.producer,
            model_fingerprint=context.model_fingerprint,
            consent_record_ids=tuple(context.consent_record_ids),
            source=context.source_type,
            duration_ms=duration,
            ingredients=ingredients,
            title=safe_name(final),
        )


class _Content:
    """What the entry records of the pictures: perceptual hashes of a spread of frames (the lookup
    when a token is lost) and the content binding's key frames."""

    def __init__(self, kind: str, expected_frames: int | None) -> None:
        self.hashes: list[str] = []
        self.every = max(1, (expected_frames or PHASH_SAMPLES) // PHASH_SAMPLES)
        self.kind = kind
        self.keys = binding.KeyFrames.for_media(kind)
        self.count = 0

    def add(self, item: SinkFrame, image: np.ndarray, display: DisplayTransform | None) -> None:
        take_hash = self.count % self.every == 0 and len(self.hashes) < PHASH_SAMPLES
        if take_hash or self.keys.wants(self.count):
            view = view8(image, display)
            if take_hash:
                self.hashes.append(phash(view))
            self.keys.offer(self.count, view, item.original)
        self.count += 1

    def facts(self) -> dict[str, Any]:
        return {"phashes": self.hashes, "binding": self.keys.record(self.kind)}


def _media_type(path: Path) -> str:
    from faceswap.provenance.credentials import media_type

    return media_type(path)


def _as_sink_frame(item: SinkFrame | np.ndarray) -> SinkFrame:
    return item if isinstance(item, SinkFrame) else SinkFrame(item)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter); itertools.batched needs 3.12."""
    if size < 1:
        raise BadInput("batch size must be at least 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
