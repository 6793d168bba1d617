"""Occlusion labels attached to a faceset's crops: `faceswap faceset label ID --from FILE` and the
export of crops to label (`faceswap faceset export ID --out DIR`).

A label file names an image. When that image is one of the faceset's crops (by name, any extension)
its polygons are in crop pixels (scaled if the tool saw it at another size); when it is a frame of
the subject's own footage, named `SOURCE.FRAME` (`clip.000123.png` for frame 123 of clip.mp4,
counted from 0 in decode order, as `ffmpeg -i clip.mp4 -start_number 0 clip.%06d.png` numbers
them), its polygons are in frame pixels and reach every crop cut from that frame through the crop's
own alignment matrix.

What a label means: objects labelled `face` (or another `--face-label`) are the face as drawn;
every other object occludes it (a hand, a microphone, hair, glasses). The visible face is the drawn
face, or the crop's landmark hull when none was drawn, less every occluder. It is kept per crop, at
the crop's size, run-length encoded, in `labels/labels.jsonl` beside the faceset's index; the file
changes only inside the `faceset.built` ledger entry (operation `label`) that names its sha256, and
training reads it only when that entry exists. The crops themselves never change.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.data.faceset import FaceEntry, Faceset
from faceswap.data.label_formats import ImageLabels, read_labels, rle_bitmap
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.masks import landmark_mask
from faceswap.hashing import canonical_json, file_sha256, safe_name, sha256_hex
from faceswap.report import Report

LABELS_DIR = "labels"
LABELS_INDEX = "labels.jsonl"
EXPORT_MANIFEST = "faceset-export.json"
FACE_LABELS = ("face",)
LABELS_VERSION = 1
FRAME_NAME = re.compile(r"^(?P<source>.+?)[._-](?P<frame>\d+)$")
LABEL_OPERATION = "label"


@dataclass(frozen=True)
class CropLabel:
    """The visible face of one crop, as labelled."""

    file: str  # the crop's file in the faceset
    crop_sha256: str
    visible: dict[str, Any]  # COCO-style RLE (uncompressed counts) at the crop's size
    label_file: str  # the label file it came from
    image: str  # the image that file labels (the crop itself, or a frame)
    space: str  # "crop" | "frame"
    face_drawn: bool  # a face object was drawn (else the visible face is the landmark hull)
    occluders: list[str]  # the labels of the objects in front of the face
    visible_share: float  # of the crop's pixels

    def mask(self) -> np.ndarray:
        """(size, size) float32, 1 where the face is visible."""
        return rle_bitmap(self.visible, None, None, self.file).astype(np.float32)


@dataclass
class FacesetLabels:
    """The labels of one faceset (`labels/labels.jsonl`: a header line, then one line per crop)."""

    folder: Path  # the faceset's folder
    subject_id: str
    record_id: str
    crops: dict[str, CropLabel] = field(default_factory=dict)

    @property
    def index_path(self) -> Path:
        return self.folder / LABELS_DIR / LABELS_INDEX

    def _lines(self) -> list[dict[str, Any]]:
        header = {"type": "faceset-labels", "version": LABELS_VERSION, "subject_id": self.subject_id}
        header["record_id"] = self.record_id
        return [header, *(asdict(self.crops[name]) for name in sorted(self.crops))]

    def digest(self) -> str:
        return sha256_hex("\n".join(canonical_json(line) for line in self._lines()))

    def save(self) -> None:
        self.index_path.parent.mkdir(exist_ok=True)
        write_atomic(self.index_path, "".join(json.dumps(line, sort_keys=True) + "\n" for line in self._lines()))

    @classmethod
    def load(cls, faceset: Faceset) -> FacesetLabels:
        """The faceset's labels (none yet: an empty set)."""
        path = faceset.folder / LABELS_DIR / LABELS_INDEX
        empty = cls(faceset.folder, faceset.header.subject_id, faceset.header.record_id)
        if not path.exists():
            return empty
        try:
            lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            header = lines[0]
            crops = [CropLabel(**line) for line in lines[1:]]
        except (OSError, ValueError, TypeError, IndexError, UnicodeDecodeError) as error:
            raise BadInput(f"{path} is damaged ({error})") from None
        if header.get("subject_id") != empty.subject_id or header.get("record_id") != empty.record_id:
            raise BadInput(f"{path} labels another subject's or another consent record's faceset")
        return cls(faceset.folder, empty.subject_id, empty.record_id, {c.file: c for c in crops})

    def recorded_in(self, built: list[Any]) -> Any:
        """The `faceset.built` entry (operation `label`) that names these labels, or BadInput."""
        digest = self.digest()
        for entry in reversed(built):
            data = entry.data
            if data.get("labels_sha256") == digest and data.get("record_id") == self.record_id:
                return entry
        raise BadInput(
            f"labels {self.index_path} (sha256 {digest[:16]}) have no ledger entry: they were changed outside "
            "`faceswap faceset label`; import them again"
        )

    def usable(self, faceset: Faceset) -> list[tuple[FaceEntry, CropLabel]]:
        """(crop, label) for every labelled crop still in the faceset, unchanged."""
        by_file = {entry.file: entry for entry in faceset.faces}
        pairs = []
        for name, label in sorted(self.crops.items()):
            entry = by_file.get(name)
            if entry is not None and entry.sha256 == label.crop_sha256:
                pairs.append((entry, label))
        return pairs


@dataclass
class LabelReport(Report):
    subject_id: str
    label_files: int = 0
    images: int = 0
    images_matched: int = 0
    crops_labelled: int = 0  # crops given a label by this import
    crops_relabelled: int = 0  # of those, crops that had one already
    total_labelled: int = 0  # crops of the faceset with a label now
    skipped_shapes: int = 0
    occluder_labels: dict[str, int] = field(default_factory=dict)
    unmatched_images: list[str] = field(default_factory=list)
    labels_sha256: str | None = None
    ledger_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        occluders = ", ".join(f"{k} {v}" for k, v in sorted(self.occluder_labels.items())) or "none"
        out = [
            f"{self.subject_id}: {self.images} labelled image(s) in {self.label_files} file(s), {self.images_matched} "
            f"matched; {self.crops_labelled} crop(s) labelled ({self.crops_relabelled} again), "
            f"{self.total_labelled} in all; occluders {occluders}; ledger seq {self.ledger_seq}"
        ]
        if self.unmatched_images:
            out.append(f"not a crop or a frame of this faceset: {', '.join(self.unmatched_images[:10])}")
        if self.skipped_shapes:
            out.append(f"{self.skipped_shapes} shape(s) that cover no area (lines, points) were skipped")
        return out


def label_faceset(
    store: ConsentStore, subject_id: str, source: Path, face_labels: tuple[str, ...] = FACE_LABELS
) -> LabelReport:
    """consent (the subject's active record) -> faceset (as its ledger entry says) -> read labels ->
    map each image's objects onto its crops -> the labels index, in its ledger transaction."""
    if not face_labels or not all(name.strip() for name in face_labels):
        raise BadInput("--face-label must name at least one label")
    record, _ = ConsentGate(store).authorize_subject(subject_id)
    faceset = checked_faceset(store, subject_id, record.record_id)
    built = store.ledger.entries("faceset.built")
    labels = FacesetLabels.load(faceset)
    if labels.crops:
        labels.recorded_in(built)
    found = read_labels(source)
    report = LabelReport(subject_id, label_files=len({f.source for f in found}), images=len(found))
    matcher = CropMatcher(faceset)
    new: dict[str, CropLabel] = {}
    for image in found:
        report.skipped_shapes += image.skipped_shapes
        targets = matcher.targets(image)
        if not targets:
            report.unmatched_images.append(image.image)
            continue
        report.images_matched += 1
        for entry, matrix, space in targets:
            new[entry.file] = crop_label(image, entry, matrix, space, faceset.header.size, face_labels)
            for name in new[entry.file].occluders:
                report.occluder_labels[name] = report.occluder_labels.get(name, 0) + 1
    if not new:
        raise CheckFailed(_nothing_matched(report, source, faceset))
    report.crops_labelled = len(new)
    report.crops_relabelled = sum(1 for name in new if name in labels.crops)
    labels.crops.update(new)
    report.total_labelled = len(labels.crops)
    report.labels_sha256 = labels.digest()
    entry = store.ledger.append(
        "faceset.built",
        {
            "subject_id": subject_id,
            "record_id": record.record_id,
            "faceset_sha256": faceset.digest(),
            "faces": len(faceset.faces),
            "operation": LABEL_OPERATION,
            "labels_sha256": report.labels_sha256,
            "labelled": report.total_labelled,
            "added": report.crops_labelled,
            "face_labels": list(face_labels),
            "label_inputs": sorted({_input_sha256(source, f.source) for f in found}),
        },
        on_commit=lambda _entry: labels.save(),  # a JSON index of plain data; the crops never change
    )
    report.ledger_seq = entry.seq
    return report


def checked_faceset(store: ConsentStore, subject_id: str, record_id: str) -> Faceset:
    faceset = Faceset.load(store.workspace.facesets_dir / subject_id)
    if faceset.header.record_id != record_id:
        raise BadInput(
            f"faceset {faceset.folder} was built under consent record {faceset.header.record_id}, not the active "
            f"record {record_id}"
        )
    faceset.recorded_in(store.ledger.entries("faceset.built"))
    return faceset


def _input_sha256(source: Path, name: str) -> str:
    """The sha256 of the label file `name` (read from `source`, a file or a folder)."""
    if source.is_file():
        return file_sha256(source)
    matches = [p for p in source.rglob("*.json") if safe_name(p) == name]
    return file_sha256(matches[0]) if matches else sha256_hex(name)


def _nothing_matched(report: LabelReport, source: Path, faceset: Faceset) -> str:
    shown = ", ".join(report.unmatched_images[:5])
    return (
        f"none of the {report.images} labelled image(s) in {safe_name(source)} is a crop of faceset "
        f"'{faceset.header.subject_id}' or a frame it was cut from (e.g. {shown}); label the crops "
        "`faceswap faceset export` writes, or frames named SOURCE.FRAME (clip.000123.png)"
    )


class CropMatcher:
    """Which crops a labelled image reaches, and how its pixels map onto each."""

    def __init__(self, faceset: Faceset) -> None:
        self.size = faceset.header.size
        self.by_stem = {Path(entry.file).stem: entry for entry in faceset.faces}
        self.by_frame: dict[tuple[str, int], list[FaceEntry]] = {}
        for entry in faceset.faces:
            self.by_frame.setdefault((Path(entry.source).stem, entry.frame), []).append(entry)

    def targets(self, image: ImageLabels) -> list[tuple[FaceEntry, np.ndarray, str]]:
        """(crop, image -> crop matrix, "crop" | "frame") for every crop the image reaches."""
        crop = self.by_stem.get(image.stem)
        if crop is not None:
            return [(crop, self._crop_scale(image), "crop")]
        named = FRAME_NAME.match(image.stem)
        if named is None:
            return []
        faces = self.by_frame.get((named["source"], int(named["frame"])), [])
        return [(entry, np.asarray(entry.matrix, np.float64), "frame") for entry in faces]

    def _crop_scale(self, image: ImageLabels) -> np.ndarray:
        """Pixel centres of a crop seen at another size onto the crop's own (cv2 convention)."""
        if image.width is None or image.height is None:
            return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if image.width != image.height:
            raise BadInput(
                f"{image.source}: labels a {image.width}x{image.height} image as crop {image.image}, "
                f"which is square ({self.size} px)"
            )
        s = self.size / image.width
        return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]])


def crop_label(
    image: ImageLabels, entry: FaceEntry, matrix: np.ndarray, space: str, size: int, face_labels: tuple[str, ...]
) -> CropLabel:
    """The crop's visible face from the image's objects: the face drawn (else the landmark hull),
    less every other object."""
    faces = [r for r in image.regions if r.label in face_labels]
    others = [r for r in image.regions if r.label not in face_labels]
    face = _union([r.draw(matrix, size) for r in faces], size) if faces else hull_of(entry, size)
    occluded = _union([r.draw(matrix, size) for r in others], size)
    visible = (face > 0.5) & (occluded < 0.5)
    return CropLabel(
        file=entry.file,
        crop_sha256=entry.sha256,
        visible=encode_rle(visible),
        label_file=image.source,
        image=image.image,
        space=space,
        face_drawn=bool(faces),
        occluders=sorted({r.label for r in others}),
        visible_share=round(float(visible.mean()), 5),
    )


def _union(masks: list[np.ndarray], size: int) -> np.ndarray:
    return np.maximum.reduce(masks) if masks else np.zeros((size, size), np.float32)


def hull_of(entry: FaceEntry, size: int) -> np.ndarray:
    """The crop's landmark hull (its landmarks are kept in crop pixels); the whole crop without them."""
    if entry.landmarks is None or entry.landmark_scheme is None:
        return np.ones((size, size), np.float32)
    return landmark_mask(
        np.asarray(entry.landmarks), entry.landmark_scheme, np.asarray(entry.kps), "full", (size, size)
    )


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO-style uncompressed RLE of a bool mask: column-major runs, background first."""
    flat = np.asarray(mask, bool).T.reshape(-1)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}
