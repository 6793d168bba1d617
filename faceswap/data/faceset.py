"""The faceset format: aligned PNG crops plus faceset.jsonl (a header line, then one line per face).

Crops are aligned cut-outs of the consenting subject's own footage, not generated pixels, so they
are written here rather than through the output sink. Every write is atomic: crops land under
temporary names first and faceset.jsonl is replaced in one rename.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.errors import BadInput
from faceswap.hashing import canonical_json, sha256_hex
from faceswap.image_header import header_of

INDEX = "faceset.jsonl"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FacesetHeader:
    subject_id: str
    record_id: str
    record_sha256: str
    backend: str
    model: str
    size: int
    template: str
    threshold: float
    type: str = "faceset"
    version: int = FORMAT_VERSION

    @property
    def alignment(self):
        """How the crops were made (faces.align.Alignment), named by the template."""
        from faceswap.faces.align import Alignment

        return Alignment.parse(self.template)


@dataclass(frozen=True)
class FaceEntry:
    file: str
    sha256: str
    source: str
    source_sha256: str
    frame: int
    face: int
    bbox: list[float]
    kps: list[list[float]]
    landmarks: list[list[float]] | None
    landmark_scheme: str | None
    matrix: list[list[float]]
    identity_similarity: float
    blur: float
    yaw: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.source_sha256, self.frame, self.face)


@dataclass
class Faceset:
    folder: Path
    header: FacesetHeader
    faces: list[FaceEntry]

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX

    def digest(self) -> str:
        """sha256 of the canonical index: it names every crop by its own sha256."""
        lines = [asdict(self.header)] + [asdict(f) for f in self.faces]
        return sha256_hex("\n".join(canonical_json(line) for line in lines))

    def keys(self) -> set[tuple[str, int, int]]:
        return {f.key for f in self.faces}

    def load_crop(self, entry: FaceEntry) -> np.ndarray:
        """The crop, after checking its bytes are the ones the index names."""
        import cv2

        path = self.folder / entry.file
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BadInput(f"{path}: unreadable crop ({error.strerror})") from None
        if sha256_hex(data) != entry.sha256:
            raise BadInput(f"{path}: the crop differs from the one its faceset index names (edited by hand?)")
        from faceswap.faces.align import MAX_SIZE

        header = header_of(data, path)  # no crop is larger than extraction makes them: checked before decoding
        if max(header.width, header.height) > MAX_SIZE:
            raise BadInput(f"{path}: a {header.width}x{header.height} crop; crops are at most {MAX_SIZE} pixels")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise BadInput(f"{path}: not a readable image")
        return image

    def recorded_in(self, built: list[Any]) -> Any:
        """The `faceset.built` ledger entry that holds this faceset's digest for its consent record,
        or BadInput: a faceset changed by hand is not one the framework extracted."""
        digest = self.digest()
        for entry in reversed(built):
            data = entry.data
            if data.get("faceset_sha256") == digest and data.get("record_id") == self.header.record_id:
                return entry
        raise BadInput(
            f"faceset {self.folder} (sha256 {digest[:16]}) has no faceset.built ledger entry: it was changed "
            "outside `faceswap extract`/`faceset clean`; extract it again"
        )

    def index_text(self) -> str:
        """faceset.jsonl as it is written: the header line, then one line per face."""
        lines = [
            json.dumps(asdict(self.header), sort_keys=True),
            *(json.dumps(asdict(f), sort_keys=True) for f in self.faces),
        ]
        return "".join(line + "\n" for line in lines)

    def save(self) -> None:
        write_atomic(self.index_path, self.index_text())

    @classmethod
    def load(cls, folder: Path) -> Faceset:
        index = folder / INDEX
        if not index.is_file():
            raise BadInput(f"no faceset in {folder} (missing {INDEX})")
        try:
            lines = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
            header = FacesetHeader(**lines[0])
            faces = [FaceEntry(**line) for line in lines[1:]]
        except (ValueError, TypeError, IndexError, UnicodeDecodeError) as error:
            raise BadInput(f"{index} is damaged ({error})") from None
        for face in faces:
            if Path(face.file).name != face.file or face.file.startswith("."):
                raise BadInput(f"{index} is damaged: '{face.file}' is not a crop file name")
        return cls(folder, header, faces)


def write_crop(folder: Path, name: str, crop: np.ndarray) -> str:
    """Write one aligned crop atomically; returns its sha256."""
    import cv2

    ok, data = cv2.imencode(".png", crop)
    if not ok:
        raise BadInput(f"could not encode crop {name}")
    payload = data.tobytes()
    write_atomic(folder / name, payload)
    return sha256_hex(payload)
