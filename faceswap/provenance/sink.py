"""The output sink: the only code that writes generated pixels to disk.

Every frame is watermarked before it is encoded; the file is written under a hidden temporary name
(created exclusively, never through a link) and renamed into place inside the ledger transaction
that records it (`output.written`), so a failure, a refusal or a kill leaves neither a file nor an
entry. A guard may stop the work between frames and once more inside that transaction (consent
revoked meanwhile). Destinations that are an input, or lie among the workspace's consent, keys or
ledger files, are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from faceswap.atomic import exclusive_file, temp_path
from faceswap.errors import BadInput
from faceswap.hashing import canonical_json, file_sha256, safe_name, sha256_hex
from faceswap.ledger import Entry, Ledger
from faceswap.provenance.phash import phash
from faceswap.provenance.watermark import Watermarker, format_token, new_token

IMAGE_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}
VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
PARTIAL_TAG = "faceswap-partial"
PHASH_SAMPLES = 16
T = TypeVar("T")


class Guard(Protocol):
    """Stops an output that may no longer be made: `poll` between frames, `final` inside the ledger
    transaction with the verified entries. Either raises to refuse."""

    def poll(self) -> None: ...
    def final(self, entries: list[Entry]) -> None: ...


@dataclass(frozen=True)
class OutputContext:
    """Who made an output and how: recorded in its ledger entry."""

    producer: str
    model_fingerprint: str | None = None
    consent_record_ids: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    guard: Guard | None = None
    sources: tuple[Path, ...] = ()  # inputs the output must never overwrite


@dataclass(frozen=True)
class Written:
    path: Path
    token: str
    entry: Entry
    frames: int
    leftovers_removed: int = 0


@dataclass(frozen=True)
class SinkFrame:
    """A frame to write, with the source timestamp it must keep (video)."""

    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    alpha: np.ndarray | None = None  # matte for image sequences, same height/width, uint8 or uint16


def _to8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
    raise BadInput(f"frames must be uint8 or uint16, got {image.dtype}")


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
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed += 1
    return removed


class OutputSink:
    def __init__(
        self,
        ledger: Ledger,
        watermarker: Watermarker | None = None,
        batch: int = 8,
        protected: Sequence[Path] = (),
    ) -> None:
        """`protected`: folders and files no output may land in or on (the workspace's consent,
        keys and ledger files)."""
        if batch < 1:
            raise BadInput("the sink's batch size must be at least 1")
        self.ledger = ledger
        self.watermarker = watermarker or Watermarker()
        self.batch = batch
        self.protected = tuple(Path(os.path.realpath(p)) for p in protected)

    def check_destination(self, final: Path, sources: Sequence[Path] = ()) -> None:
        """Refuse an output that would overwrite an input or land in the workspace's own state."""
        real = _real(final)
        for source in sources:
            if Path(os.path.realpath(source)) == real or (
                final.exists() and source.exists() and os.path.samefile(final, source)
            ):
                raise BadInput(f"{final}: the output would overwrite an input ({source}); choose another path")
        for guarded in self.protected:
            if _inside(real, guarded) or _inside(guarded, real):
                raise BadInput(f"{final}: outputs may not be written into the workspace's {guarded.name}")

    def reserve_token(self) -> int:
        """A token no output entry uses yet (the face layer is marked with it before the sink runs)."""
        used = {e.data.get("token") for e in self.ledger.entries("output.written")}
        while True:
            token = new_token()
            if format_token(token) not in used:
                return token

    def _mark(self, frames: list[np.ndarray], token: int) -> list[np.ndarray]:
        """Mark uint8 frames directly; uint16 frames through their 8-bit view, the mark scaled by 257."""
        views = [_to8(f) for f in frames]
        marked = self.watermarker.embed(views, token)
        out = []
        for frame, view, mark in zip(frames, views, marked, strict=True):
            if frame.dtype == np.uint8:
                out.append(mark)
            else:
                delta = (mark.astype(np.int32) - view.astype(np.int32)) * 257
                out.append(np.clip(frame.astype(np.int32) + delta, 0, 65535).astype(np.uint16))
        return out

    def _frames(self, frames: Iterable[SinkFrame | np.ndarray], context: OutputContext) -> Iterator[list[SinkFrame]]:
        """Batches of frames, the guard polled before each."""
        for batch in batched((_as_sink_frame(f) for f in frames), self.batch):
            if context.guard is not None:
                context.guard.poll()
            yield batch

    def _record(
        self, kind: str, final: Path, partial: Path, token: int, context: OutputContext, facts: dict[str, Any]
    ) -> Entry:
        data = {
            "token": format_token(token),
            "media": kind,
            "name": safe_name(final),
            "producer": context.producer,
            "model_fingerprint": context.model_fingerprint,
            "consent_record_ids": list(context.consent_record_ids),
            "settings": context.settings,
            **facts,
        }
        guard = context.guard.final if context.guard is not None else None
        moved: list[Path] = []

        def publish(_entry: Entry) -> None:
            os.replace(partial, final)
            moved.append(final)

        try:
            return self.ledger.append("output.written", data, on_commit=publish, guard=guard)
        except BaseException:
            for path in moved:  # renamed, but the entry did not commit: no file without its entry
                _discard(path)
            raise

    def _prepare(self, final: Path, context: OutputContext) -> tuple[Path, int]:
        self.check_destination(final, context.sources)
        final.parent.mkdir(parents=True, exist_ok=True)
        return temp_path(final, PARTIAL_TAG), remove_leftovers(final)

    def write_image(
        self, path: str | Path, image: np.ndarray, context: OutputContext, token: int | None = None
    ) -> Written:
        import cv2

        final = Path(path)
        suffix = IMAGE_FORMATS.get(final.suffix.lower())
        if suffix is None:
            raise BadInput(f"{final}: images are written as .png or .jpg")
        if final.is_dir():
            raise BadInput(f"{final} is a folder; give an image file name")
        partial, leftovers = self._prepare(final, context)
        token = self.reserve_token() if token is None else token
        marked = self._mark([image], token)[0]
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []
        ok, encoded = cv2.imencode(suffix, marked, params)
        if not ok:
            raise BadInput(f"{final}: could not encode the image")
        try:
            with exclusive_file(partial) as handle:
                handle.write(encoded.tobytes())
            facts = {
                "sha256": file_sha256(partial),
                "frames": 1,
                "width": int(marked.shape[1]),
                "height": int(marked.shape[0]),
                "phashes": [phash(_to8(marked))],
            }
            entry = self._record("image", final, partial, token, context, facts)
        finally:
            _discard(partial)
        return Written(final, format_token(token), entry, 1, leftovers)

    def write_sequence(
        self,
        folder: str | Path,
        frames: Iterable[SinkFrame | np.ndarray],
        context: OutputContext,
        pattern: str = "frame.{:06d}.png",
        token: int | None = None,
    ) -> Written:
        """A folder of PNGs (8- or 16-bit, RGBA when a frame carries a matte), all under one token."""
        import cv2

        final = Path(folder)
        if final.exists() or final.is_symlink():
            raise BadInput(f"{final} already exists; choose a new folder for the sequence")
        partial, leftovers = self._prepare(final, context)
        partial.mkdir(mode=0o755)  # fails on anything already there, links included
        token = self.reserve_token() if token is None else token
        manifest: list[list[str]] = []
        hashes: list[str] = []
        try:
            count = 0
            for batch in self._frames(frames, context):
                marked = self._mark([f.image for f in batch], token)
                for item, image in zip(batch, marked, strict=True):
                    pixels = image
                    if item.alpha is not None:
                        alpha = item.alpha.astype(image.dtype) if item.alpha.dtype != image.dtype else item.alpha
                        pixels = np.dstack([image, alpha])
                    name = pattern.format(count)
                    ok, encoded = cv2.imencode(".png", pixels)
                    if not ok:
                        raise BadInput(f"could not encode frame {count}")
                    with exclusive_file(partial / name) as handle:
                        handle.write(encoded.tobytes())
                    manifest.append([name, sha256_hex(encoded.tobytes())])
                    if len(hashes) < PHASH_SAMPLES:
                        hashes.append(phash(_to8(image)))
                    count += 1
            if count == 0:
                raise BadInput("no frames to write")
            facts = {
                "sha256": sha256_hex(canonical_json(manifest)),
                "files": len(manifest),
                "frames": count,
                "phashes": hashes,
                "manifest": manifest,
            }
            entry = self._record("sequence", final, partial, token, context, facts)
        finally:
            _discard(partial)
        return Written(final, format_token(token), entry, count, leftovers)

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
    ) -> Written:
        """H.264 (yuv420p) MP4/MOV/MKV; source timestamps kept when frames carry pts; audio copied
        from `audio_from` without re-encoding."""
        import av

        final = Path(path)
        container_format = VIDEO_FORMATS.get(final.suffix.lower())
        if container_format is None:
            raise BadInput(f"{final}: videos are written as .mp4, .mov or .mkv")
        if final.is_dir():
            raise BadInput(f"{final} is a folder; give a video file name")
        partial, leftovers = self._prepare(final, context)
        token = self.reserve_token() if token is None else token
        hashes: list[str] = []
        sample_every = max(1, (expected_frames or PHASH_SAMPLES) // PHASH_SAMPLES)
        count = 0
        width = height = 0
        try:
            with contextlib.ExitStack() as stack:
                handle = stack.enter_context(exclusive_file(partial))
                container = stack.enter_context(av.open(handle, mode="w", format=container_format))
                source = stack.enter_context(av.open(str(audio_from))) if audio_from else None
                batches = self._frames(frames, context)
                first = next(batches, None)
                if first is None:
                    raise BadInput("no frames to write")
                height, width = first[0].image.shape[:2]
                stream = _open_video_stream(container, width, height, fps, time_base or first[0].time_base, crf)
                audio = {s.index: container.add_stream_from_template(s) for s in source.streams.audio} if source else {}
                for batch in itertools.chain([first], batches):
                    marked = self._mark([f.image for f in batch], token)
                    for item, image in zip(batch, marked, strict=True):
                        frame = av.VideoFrame.from_ndarray(_to8(image), format="bgr24")
                        if item.pts is not None:
                            frame.pts = item.pts
                            frame.time_base = item.time_base or time_base
                        else:
                            frame.pts = count
                            frame.time_base = Fraction(1, 1) / Fraction(fps)
                        for packet in stream.encode(frame):
                            container.mux(packet)
                        if count % sample_every == 0 and len(hashes) < PHASH_SAMPLES:
                            hashes.append(phash(_to8(image)))
                        count += 1
                for packet in stream.encode():
                    container.mux(packet)
                if source is not None and audio:
                    for packet in source.demux(*source.streams.audio):
                        if packet.dts is None:
                            continue
                        packet.stream = audio[packet.stream.index]
                        container.mux(packet)
                audio_streams = len(audio)
            facts = {
                "sha256": file_sha256(partial),
                "frames": count,
                "width": width,
                "height": height,
                "fps": str(Fraction(fps)),
                "audio_streams": audio_streams,
                "phashes": hashes,
            }
            entry = self._record("video", final, partial, token, context, facts)
        except av.FFmpegError as error:
            raise BadInput(f"{final}: video encoding failed ({error})") from None
        finally:
            _discard(partial)
        return Written(final, format_token(token), entry, count, leftovers)


def _discard(partial: Path) -> None:
    """Remove a partial output that was not renamed into place (never following a link)."""
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.unlink(missing_ok=True)


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


def _open_video_stream(container: Any, width: int, height: int, fps: Fraction, time_base: Fraction | None, crf: int):
    if width % 2 or height % 2:
        raise BadInput(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
    stream = container.add_stream("libx264", rate=Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": str(crf), "preset": "medium"}
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    return stream
