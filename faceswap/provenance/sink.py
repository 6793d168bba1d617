"""The output sink: the only code that writes generated pixels to disk.

Every frame is watermarked before it is encoded; the file is written under a hidden temporary name
and renamed into place inside the ledger transaction that records it (`output.written`), so a
failure or a kill leaves neither a file nor an entry.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from faceswap.errors import BadInput
from faceswap.provenance.ledger import Entry, Ledger
from faceswap.provenance.phash import phash
from faceswap.provenance.watermark import Watermarker, format_token, new_token
from faceswap.signing import canonical_json, file_sha256, sha256_hex

IMAGE_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}
PARTIAL_MARK = ".faceswap-partial"
PHASH_SAMPLES = 16
T = TypeVar("T")


@dataclass(frozen=True)
class OutputContext:
    """Who made an output and how: recorded in its ledger entry."""

    producer: str
    model_fingerprint: str | None = None
    consent_record_ids: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    path: Path
    token: str
    entry: Entry
    frames: int


@dataclass(frozen=True)
class SinkFrame:
    """A frame to write, with the source timestamp it must keep (video)."""

    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    alpha: np.ndarray | None = None  # matte for image sequences, same height/width, uint8 or uint16


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PARTIAL_MARK}-{os.getpid()}{path.suffix}")


def _to8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
    raise BadInput(f"frames must be uint8 or uint16, got {image.dtype}")


class OutputSink:
    def __init__(self, ledger: Ledger, watermarker: Watermarker | None = None, batch: int = 8) -> None:
        self.ledger = ledger
        self.watermarker = watermarker or Watermarker()
        self.batch = batch

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

    def _token(self) -> int:
        while True:
            token = new_token()
            if not self.ledger.find("output.written", token=format_token(token)):
                return token

    def _record(self, kind: str, final: Path, partial: Path, token: int, context: OutputContext, facts: dict) -> Entry:
        data = {
            "token": format_token(token),
            "media": kind,
            "name": final.name,
            "producer": context.producer,
            "model_fingerprint": context.model_fingerprint,
            "consent_record_ids": list(context.consent_record_ids),
            "settings": context.settings,
            **facts,
        }
        return self.ledger.append("output.written", data, on_commit=lambda _entry: os.replace(partial, final))

    def write_image(self, path: str | Path, image: np.ndarray, context: OutputContext) -> Written:
        import cv2

        final = Path(path)
        suffix = IMAGE_FORMATS.get(final.suffix.lower())
        if suffix is None:
            raise BadInput(f"{final}: images are written as .png or .jpg")
        token = self._token()
        marked = self._mark([image], token)[0]
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []
        ok, encoded = cv2.imencode(suffix, marked, params)
        if not ok:
            raise BadInput(f"{final}: could not encode the image")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial_path(final)
        try:
            partial.write_bytes(encoded.tobytes())
            facts = {
                "sha256": file_sha256(partial),
                "frames": 1,
                "width": int(marked.shape[1]),
                "height": int(marked.shape[0]),
                "phashes": [phash(_to8(marked))],
            }
            entry = self._record("image", final, partial, token, context, facts)
        finally:
            partial.unlink(missing_ok=True)
        return Written(final, format_token(token), entry, 1)

    def write_sequence(
        self,
        folder: str | Path,
        frames: Iterable[SinkFrame | np.ndarray],
        context: OutputContext,
        pattern: str = "frame.{:06d}.png",
    ) -> Written:
        """A folder of PNGs (8- or 16-bit, RGBA when a frame carries a matte), all under one token."""
        import cv2

        final = Path(folder)
        if final.exists():
            raise BadInput(f"{final} already exists; choose a new folder for the sequence")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial_path(final)
        partial.mkdir()
        token = self._token()
        manifest: list[list[str]] = []
        hashes: list[str] = []
        try:
            count = 0
            for batch in batched((_as_sink_frame(f) for f in frames), self.batch):
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
                    (partial / name).write_bytes(encoded.tobytes())
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
            if partial.exists():
                shutil.rmtree(partial)
        return Written(final, format_token(token), entry, count)

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
    ) -> Written:
        """H.264 (yuv420p) MP4; source timestamps kept when frames carry pts; audio copied from
        `audio_from` without re-encoding."""
        import av

        final = Path(path)
        if final.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise BadInput(f"{final}: videos are written as .mp4, .mov or .mkv")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial_path(final)
        token = self._token()
        hashes: list[str] = []
        sample_every = max(1, (expected_frames or PHASH_SAMPLES) // PHASH_SAMPLES)
        count = 0
        width = height = 0
        try:
            with contextlib.ExitStack() as stack:
                container = stack.enter_context(av.open(str(partial), mode="w"))
                source = stack.enter_context(av.open(str(audio_from))) if audio_from else None
                batches = batched((_as_sink_frame(f) for f in frames), self.batch)
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
            partial.unlink(missing_ok=True)
        return Written(final, format_token(token), entry, count)


def _as_sink_frame(item: SinkFrame | np.ndarray) -> SinkFrame:
    return item if isinstance(item, SinkFrame) else SinkFrame(item)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter); itertools.batched needs 3.12."""
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
