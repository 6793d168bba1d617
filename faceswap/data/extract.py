"""`faceswap extract`: consent-bound extraction of one subject's faces into a faceset.

Only faces that match the subject's consented reference embeddings are kept; everyone else in the
footage is dropped and counted (Invariant 2). New crops are staged and moved into place only when
the whole input has been read, so a corrupt video or an interrupt leaves no partial faceset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.data.faceset import FaceEntry, Faceset, FacesetHeader, write_crop
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.align import (
    ALIGN_POINTS,
    DEFAULT_POINTS,
    FACE_TYPES,
    MAX_SIZE,
    MIN_SIZE,
    Alignment,
    align_face,
    transform_points,
)
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.faces.identity import IdentityMatcher
from faceswap.hashing import file_sha256, safe_name
from faceswap.limits import OPERATOR, InputLimits
from faceswap.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, iter_video_frames, probe_video, read_image


@dataclass(frozen=True)
class ExtractOptions:
    every: int = 1
    size: int = 256
    backend: str = "auto"
    model_root: Path | None = None
    min_face: int = 80  # pixels (shorter side of the detection box)
    min_blur: float = 10.0  # variance of the Laplacian of the aligned crop
    # how crops are made (faces.align), recorded in the faceset header; None: as the existing faceset's
    # crops were made, or "whole" and DEFAULT_POINTS for a new faceset
    face_type: str | None = None
    align_on: str | None = None
    limits: InputLimits = OPERATOR  # what an input may declare (faceswap/limits.py)

    def validate(self) -> None:
        """Every option checked before anything is read or written."""
        if self.every < 1:
            raise BadInput(f"--every must be 1 or more (every Nth frame), got {self.every}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise BadInput(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {self.size}")
        if self.min_face < 1:
            raise BadInput(f"--min-face must be at least 1 pixel, got {self.min_face}")
        if self.min_blur < 0:
            raise BadInput(f"the minimum blur score must not be negative, got {self.min_blur}")


@dataclass
class ExtractReport:
    subject_id: str
    record_id: str
    inputs: int = 0
    frames_read: int = 0
    faces_found: int = 0
    kept: int = 0
    already_present: int = 0
    dropped_other_identity: int = 0
    dropped_too_small: int = 0
    dropped_blurry: int = 0
    skipped_files: list[str] = field(default_factory=list)
    best_rejected_similarity: float | None = None
    faceset: str | None = None
    faceset_sha256: str | None = None
    total_faces: int = 0
    ledger_seq: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InputFrame:
    source: Path
    source_sha256: str
    frame: int
    image: np.ndarray


def blur_score(crop: np.ndarray) -> float:
    import cv2

    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def yaw_estimate(kps5: np.ndarray) -> float:
    """Degrees, from how far the nose sits off the eyes' midline (positive: turned to image right)."""
    eye_mid = kps5[:2].mean(axis=0)
    eye_dist = float(np.linalg.norm(kps5[1] - kps5[0])) + 1e-6
    offset = float(kps5[2, 0] - eye_mid[0]) / eye_dist
    return float(np.degrees(np.arcsin(np.clip(offset * 1.6, -1.0, 1.0))))


def list_inputs(path: Path) -> tuple[list[Path], list[str]]:
    """Media files under `path` (or `path` itself), and the names of files that are not media."""
    if not path.exists():
        raise BadInput(f"{path}: no such file or directory")
    if path.is_file():
        return [path], []
    media, skipped = [], []
    for item in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        (media if item.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES else skipped).append(item)
    if not media:
        raise BadInput(f"{safe_name(path)}: holds no images or videos ({len(skipped)} other files)")
    return media, [safe_name(p) for p in skipped]


def iter_frames(files: list[Path], every: int, limits: InputLimits = OPERATOR) -> Iterator[InputFrame]:
    """Each input's frames; what a file declares is checked against `limits` before it is decoded."""
    for path in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            probe_video(path, limits)
            digest = file_sha256(path)
            for decoded in iter_video_frames(path, every=every, limits=limits):
                yield InputFrame(path, digest, decoded.index, decoded.image)
        else:
            image = read_image(path, limits)
            yield InputFrame(path, file_sha256(path), 0, image)


def extract(
    store: ConsentStore,
    input_path: Path,
    subject_id: str,
    options: ExtractOptions,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractReport:
    """consent -> inputs -> the subject's faceset -> scan (staged crops) -> index and ledger entry."""
    import time

    started = time.perf_counter()
    options.validate()
    record, _ = ConsentGate(store).authorize_subject(subject_id)
    backend = _backend(record, options, subject_id)
    files, skipped = list_inputs(input_path)
    analyzer = FaceAnalyzer(backend, options.model_root, min_face=options.min_face)
    subject = IdentityMatcher(record.reference_embeddings, backend)
    faceset, is_new = _open_faceset(store, record, options, backend, analyzer.model_name, subject.threshold)
    report = ExtractReport(subject_id, record.record_id, inputs=len(files), skipped_files=skipped)
    staging = faceset.folder / f".staging-{os.getpid()}"
    faceset.folder.mkdir(parents=True, exist_ok=True)
    staging.mkdir()
    try:
        new_entries = _scan(files, options, analyzer, subject, faceset, staging, report, progress)
        if report.kept == 0 and report.already_present == 0:
            raise CheckFailed(_nothing_kept(report, subject_id, subject.threshold))
        if report.kept:
            _commit(store, faceset, new_entries, staging, files, report)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if is_new and not (faceset.folder / "faceset.jsonl").exists():
            shutil.rmtree(faceset.folder, ignore_errors=True)
    report.faceset = str(faceset.folder)
    report.faceset_sha256 = faceset.digest()
    report.total_faces = len(faceset.faces)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _backend(record, options: ExtractOptions, subject_id: str) -> str:
    backend = record.backend if options.backend == "auto" else options.backend
    if backend != record.backend:
        raise BadInput(
            f"subject '{subject_id}' was registered with the {record.backend} backend; embeddings of "
            f"different backends cannot be compared (use --backend {record.backend})"
        )
    return backend


def _open_faceset(
    store: ConsentStore, record, options: ExtractOptions, backend: str, detector: str, threshold: float
) -> tuple[Faceset, bool]:
    """The subject's faceset (new, or the existing one if it was built under this record, at this
    size and alignment, and matches its ledger entry); and whether it is new."""
    folder = store.workspace.facesets_dir / record.subject_id
    existing = Faceset.load(folder) if (folder / "faceset.jsonl").exists() else None
    if existing is not None and existing.header.record_id != record.record_id:
        raise BadInput(
            f"faceset {folder} was built under consent record {existing.header.record_id}, not the active "
            f"record {record.record_id}; move it aside to extract anew"
        )
    if existing is not None:
        existing.recorded_in(store.ledger.entries("faceset.built"))
        if existing.header.size != options.size:
            raise BadInput(
                f"faceset {folder} holds {existing.header.size} px crops; extract with --size {existing.header.size}"
            )
    alignment = _alignment(options, existing, folder)
    if existing is not None:
        return existing, False
    header = FacesetHeader(
        record.subject_id, record.record_id, record.sha256, backend, detector, options.size, alignment.name, threshold
    )
    return Faceset(folder, header, []), True


def _scan(
    files: list[Path],
    options: ExtractOptions,
    analyzer: FaceAnalyzer,
    subject: IdentityMatcher,
    faceset: Faceset,
    staging: Path,
    report: ExtractReport,
    progress: Callable[[int, int], None] | None,
) -> list[FaceEntry]:
    """Every frame's faces: the subject's, new, large and sharp enough, are cropped into `staging`."""
    alignment = faceset.header.alignment
    known = faceset.keys()
    total = sum(_frame_estimate(p, options.every, options.limits) for p in files)
    entries: list[FaceEntry] = []
    for item in iter_frames(files, options.every, options.limits):
        report.frames_read += 1
        if progress:
            progress(report.frames_read, total)
        for index, face in enumerate(analyzer.analyze(item.image)):
            report.faces_found += 1
            similarity = subject.similarity(face.embedding)
            if similarity < subject.threshold:
                report.dropped_other_identity += 1
                best = report.best_rejected_similarity
                report.best_rejected_similarity = similarity if best is None else max(best, similarity)
            elif (item.source_sha256, item.frame, index) in known:
                report.already_present += 1
            elif min(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]) < options.min_face:
                report.dropped_too_small += 1
            else:
                entry = _crop(item, index, face, similarity, alignment, options, staging)
                if entry is None:
                    report.dropped_blurry += 1
                else:
                    entries.append(entry)
                    report.kept += 1
    return entries


def _crop(item: InputFrame, index: int, face, similarity: float, alignment: Alignment, options, staging: Path):
    """The face's aligned crop written into `staging` and its index entry; None when it is blurry."""
    aligned = align_face(item.image, face.kps5, options.size, alignment, face.landmarks, face.landmark_scheme)
    blur = blur_score(aligned.crop)
    if blur < options.min_blur:
        return None
    name = f"{item.source_sha256[:12]}_{item.frame:06d}_{index}.png"
    digest = write_crop(staging, name, aligned.crop)
    landmarks = None
    if face.landmarks is not None:
        landmarks = np.round(transform_points(face.landmarks, aligned.matrix), 2).tolist()
    return FaceEntry(
        file=name,
        sha256=digest,
        source=safe_name(item.source),
        source_sha256=item.source_sha256,
        frame=item.frame,
        face=index,
        bbox=[round(float(v), 2) for v in face.bbox],
        kps=np.round(transform_points(face.kps5, aligned.matrix), 3).tolist(),
        landmarks=landmarks,
        landmark_scheme=face.landmark_scheme,
        matrix=np.round(aligned.matrix, 6).tolist(),
        identity_similarity=round(similarity, 4),
        blur=round(blur, 2),
        yaw=round(yaw_estimate(face.kps5), 2),
    )


def _commit(
    store: ConsentStore,
    faceset: Faceset,
    new_entries: list[FaceEntry],
    staging: Path,
    files: list[Path],
    report: ExtractReport,
) -> None:
    """The crops move into place and the index is saved inside the `faceset.built` entry's
    transaction: a faceset on disk always matches its latest entry."""
    faceset.faces.extend(new_entries)
    digest = faceset.digest()  # everything the index holds must serialise before any crop moves

    def move_into_place(_entry) -> None:
        for entry in new_entries:
            (staging / entry.file).replace(faceset.folder / entry.file)
        faceset.save()  # the JSONL index (text); the crops moved above are inputs: the subject's own footage

    header = faceset.header
    entry = store.ledger.append(
        "faceset.built",
        {
            "subject_id": header.subject_id,
            "record_id": header.record_id,
            "faceset_sha256": digest,
            "faces": len(faceset.faces),
            "added": report.kept,
            "backend": header.backend,
            "size": header.size,
            "inputs": sorted({file_sha256(p) for p in files}),
        },
        on_commit=move_into_place,
    )
    report.ledger_seq = entry.seq


def _alignment(options: ExtractOptions, existing: Faceset | None, folder: Path) -> Alignment:
    """The crops' alignment: as asked, else as the existing faceset's; one faceset never mixes two."""
    held = existing.header.alignment if existing is not None else None
    face_type = options.face_type or (held.face_type if held else "whole")
    points = options.align_on or (held.points if held else DEFAULT_POINTS)
    if face_type not in FACE_TYPES or points not in ALIGN_POINTS:
        raise BadInput(
            f"--face-type must be one of {', '.join(FACE_TYPES)} and --align-on one of {', '.join(ALIGN_POINTS)}"
        )
    wanted = Alignment(face_type, points)
    if held is not None and held != wanted:
        raise BadInput(
            f"faceset {folder} holds {held.name} crops; "
            f"extract with --face-type {held.face_type} --align-on {held.points}"
        )
    return wanted


def _frame_estimate(path: Path, every: int, limits: InputLimits) -> int:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames = probe_video(path, limits).frames
        return max(1, (frames + every - 1) // every) if frames else 0
    return 1


def _nothing_kept(report: ExtractReport, subject_id: str, threshold: float) -> str:
    if report.faces_found == 0:
        return f"no faces found in {report.frames_read} frame(s); nothing extracted"
    if report.dropped_other_identity == report.faces_found:
        return (
            f"none of the {report.faces_found} faces found matched consented subject '{subject_id}' "
            f"(best similarity {report.best_rejected_similarity:.3f} < {threshold}); nothing extracted"
        )
    return (
        f"{report.faces_found} faces found, none kept ({report.dropped_other_identity} other identity, "
        f"{report.dropped_too_small} too small, {report.dropped_blurry} blurry)"
    )
