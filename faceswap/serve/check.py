"""One upload checked: bounded, read once, verified by verify's Verifier, explained. Runs on a worker
thread; everything it is given lives in the upload's temporary folder, which the caller removes."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.errors import FaceswapError
from faceswap.provenance.verify.changes import FileFacts
from faceswap.provenance.verify.verifier import LedgerView, Sample, Verdict, Verifier
from faceswap.serve.config import ServeConfig
from faceswap.serve.explain import Explanation, explain
from faceswap.serve.frames import FramePreview, preview
from faceswap.serve.upload import Refusal, Upload


class LedgerSource:
    """The workspace's ledger, opened read-only once and checked again for every answer, so a
    revocation made while the server runs shows in the next answer."""

    def __init__(self, workspace: Any) -> None:
        from faceswap.ledger import ledger_exists, open_ledger
        from faceswap.ledger.tlog import LogTree

        self._ledger = open_ledger(workspace, writable=False) if ledger_exists(workspace) else None
        self._keys_dir = workspace.keys_dir  # the watermark secrets its marks are read with
        self._lock = threading.Lock()
        self._log = LogTree()  # the transparency log's tree, kept in step: a new row costs a few hashes

    @property
    def present(self) -> bool:
        return self._ledger is not None

    def view(self) -> LedgerView | None:
        if self._ledger is None:
            return None
        with self._lock:
            view = LedgerView.from_ledger(self._ledger, self._keys_dir)
            self._log.sync(view.entries)
            view.log = self._log
            return view


@dataclass(frozen=True)
class Answer:
    upload: Upload
    facts: FileFacts
    verdict: Verdict
    explanation: Explanation
    frame: FramePreview

    def to_json(self, with_frame_image: bool = True) -> dict[str, Any]:
        """The JSON API's answer (docs/serve.md has the schema)."""
        facts = self.facts
        return {
            "file": {
                "name": self.upload.name,
                "bytes": self.upload.size,
                "sha256": self.upload.sha256,
                "type": facts.format,
                "media": facts.media,
                "width": facts.width,
                "height": facts.height,
                "frames": facts.frames,
            },
            **self.explanation.to_json(),
            "frame": self.frame.to_json(with_frame_image),
            "report": _scrub(self.verdict.to_json(), str(self.upload.path), self.upload.name),
        }


class Checker:
    def __init__(self, config: ServeConfig, ledger: LedgerSource) -> None:
        self.config = config
        self.ledger = ledger

    def check(self, upload: Upload) -> Answer:
        verifier = Verifier(self.ledger.view())
        sample, facts = self.read(upload, verifier)
        verdict = verifier.verify(upload.path, sample)
        if verdict.error is not None:
            raise Refusal(422, _plain(verdict.error, upload))
        frame = preview(sample.frames, sample.intra, verdict.detection)
        return Answer(upload, facts, verdict, explain(verdict, facts), frame)

    def read(self, upload: Upload, verifier: Verifier) -> tuple[Sample, FileFacts]:
        """The frames verify decides on, after the picture's size and length are checked from the
        file's header (nothing is decoded beyond the stated limits)."""
        try:
            frames, codec = self._bounded(upload)
            sample = verifier.sample(upload.path)
        except FaceswapError as error:
            raise Refusal(422, _plain(str(error), upload)) from None
        if not sample.frames:
            raise Refusal(422, f"{upload.name}: no frames could be decoded")
        height, width = sample.frames[0].shape[:2]
        facts = FileFacts(upload.sha256, sample.media, upload.media.label, width, height, frames or 1, codec)
        return sample, facts

    def _bounded(self, upload: Upload) -> tuple[int, str | None]:
        from faceswap.limits import VERIFY
        from faceswap.media import probe_video

        limits = self.config
        if upload.media.kind == "video":
            info = probe_video(upload.path, VERIFY)
            _within(info.width, info.height, limits.max_video_pixels, "video frames")
            if info.frames > limits.max_video_frames:
                raise Refusal(
                    413, f"the video has {info.frames} frames; this page reads up to {limits.max_video_frames}"
                )
            return info.frames, info.codec
        from PIL import Image

        try:
            width, height = image_size(upload.path, upload.media.suffix)
        except Image.DecompressionBombError:
            raise Refusal(
                413, f"the picture is larger than the {limits.max_image_pixels / 1e6:.1f} MP this page reads"
            ) from None
        _within(width, height, limits.max_image_pixels, "images")
        return 1, None


def _within(width: int, height: int, limit: int, what: str) -> None:
    if width * height > limit:
        raise Refusal(413, f"the picture is {width}x{height} pixels; this page reads {what} up to {limit / 1e6:.1f} MP")


def image_size(path: Path, suffix: str) -> tuple[int, int]:
    """Width and height from the image's header alone (a small file can declare a huge picture)."""
    from PIL import Image

    from faceswap.errors import BadInput

    try:
        if suffix == ".exr":
            import OpenEXR

            (x0, y0), (x1, y1) = OpenEXR.File(str(path), header_only=True).header()["dataWindow"]
            return int(x1) - int(x0) + 1, int(y1) - int(y0) + 1
        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except Image.DecompressionBombError:
        raise
    except Exception:  # noqa: BLE001 - Pillow and OpenEXR raise many kinds for damaged headers
        raise BadInput(f"{path}: not a readable image") from None


def _plain(message: str, upload: Upload) -> str:
    """A reader's message about the temporary file, naming the sender's file instead (one line)."""
    return " ".join(message.replace(str(upload.path), upload.name).split())


def _scrub(value: Any, path: str, name: str) -> Any:
    if isinstance(value, str):
        return value.replace(path, name)
    if isinstance(value, dict):
        return {k: _scrub(v, path, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, path, name) for v in value]
    return value
