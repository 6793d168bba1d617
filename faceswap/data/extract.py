"""`faceswap extract`: consent-bound extraction of one subject's faces into a faceset.

Only faces that match the subject's consented reference embeddings are kept; everyone else in the
footage is dropped and counted (Invariant 2). Consent is watched while the footage is read (a
revocation stops the extraction within seconds), and new crops are written in the workspace's
staging folder and moved into the faceset only inside the `faceset.built` entry's transaction, which
re-checks consent: a revocation, a corrupt video, a failed append or a kill leaves no faceset (and no
crops in one) without its entry.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from faceswap.atomic import process_alive, write_atomic
from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import CHECK_EVERY_SECONDS, ConsentWatch
from faceswap.data.faceset import INDEX, FaceEntry, Faceset, FacesetHeader, write_crop
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
from faceswap.report import Report
from faceswap.staging import Staging


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
    consent_check_seconds: float = CHECK_EVERY_SECONDS  # how often consent is re-checked while it runs
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
        if self.consent_check_seconds <= 0:
            raise BadInput("the consent check interval must be positive")


@dataclass
class ExtractReport(Report):
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

    def lines(self) -> list[str]:
        out = [
            f"{self.subject_id}: {self.frames_read} frames read, {self.faces_found} faces found, {self.kept} kept, "
            f"{self.dropped_other_identity} dropped as another identity, {self.dropped_too_small} too small, "
            f"{self.dropped_blurry} blurry, {self.already_present} already in the faceset "
            f"({self.seconds:.1f} s, {self.frames_read / max(self.seconds, 1e-9):.1f} frames/s)"
        ]
        if self.skipped_files:
            out.append(f"skipped {len(self.skipped_files)} non-media file(s)")
        seq = f"; ledger seq {self.ledger_seq}" if self.ledger_seq else "; faceset unchanged"
        return [*out, f"faceset {self.faceset}: {self.total_faces} faces, sha256 {self.faceset_sha256}{seq}"]


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
    """consent -> inputs -> the subject's faceset -> scan (watched, staged crops) -> index and ledger entry."""
    import time

    started = time.perf_counter()
    options.validate()
    gate = ConsentGate(store)
    record, granted = gate.authorize_subject(subject_id)
    backend = _backend(record, options, subject_id)
    files, skipped = list_inputs(input_path)
    analyzer = FaceAnalyzer(backend, options.model_root, min_face=options.min_face)
    subject = IdentityMatcher(record.reference_embeddings, backend)
    faceset, is_new = _open_faceset(store, record, options, backend, analyzer.model_name, subject.threshold)
    report = ExtractReport(subject_id, record.record_id, inputs=len(files), skipped_files=skipped)
    watch = ConsentWatch(gate, granted, options.consent_check_seconds)
    with watch, Staging.open(store.workspace, "extract") as staging:
        crops = staging.folder / "faceset"
        crops.mkdir()
        new_entries = _scan(files, options, analyzer, subject, faceset, crops, report, _watched(progress, watch))
        if report.kept == 0 and report.already_present == 0:
            raise CheckFailed(_nothing_kept(report, subject_id, subject.threshold))
        if report.kept:
            _commit(store, faceset, is_new, new_entries, staging, crops, files, report, watch)
    report.faceset = str(faceset.folder)
    report.faceset_sha256 = faceset.digest()
    report.total_faces = len(faceset.faces)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _watched(progress: Callable[[int, int], None] | None, watch: ConsentWatch) -> Callable[[int, int], None]:
    """Called after every frame: the consent watch's boundary, then the caller's progress."""

    def after_frame(done: int, total: int) -> None:
        watch.poll()
        if progress is not None:
            progress(done, total)

    return after_frame


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
    existing = Faceset.load(folder) if (folder / INDEX).exists() else None
    if existing is None:
        _clear_leftovers(folder)
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


def _clear_leftovers(folder: Path) -> None:
    """A faceset folder without an index: empty, or holding only staging folders of killed
    extractions (older versions staged inside it), it goes; anything else is not ours to remove."""
    if not folder.is_dir() or folder.is_symlink():
        if folder.is_symlink() or folder.exists():
            raise BadInput(f"{folder} is not a faceset folder; move it aside to extract")
        return
    for item in folder.iterdir():
        pid = item.name.removeprefix(".staging-")
        if not (item.is_dir() and pid.isdigit() and not process_alive(int(pid))):
            raise BadInput(f"{folder} holds files but no faceset index ({INDEX}); move it aside to extract")
    shutil.rmtree(folder)


def _scan(
    files: list[Path],
    options: ExtractOptions,
    analyzer: FaceAnalyzer,
    subject: IdentityMatcher,
    faceset: Faceset,
    staging: Path,
    report: ExtractReport,
    after_frame: Callable[[int, int], None],
) -> list[FaceEntry]:
    """Every frame's faces: the subject's, new, large and sharp enough, are cropped into `staging`."""
    alignment = faceset.header.alignment
    known = faceset.keys()
    total = sum(_frame_estimate(p, options.every, options.limits) for p in files)
    entries: list[FaceEntry] = []
    for item in iter_frames(files, options.every, options.limits):
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
        report.frames_read += 1
        after_frame(report.frames_read, total)
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
    is_new: bool,
    new_entries: list[FaceEntry],
    staging: Staging,
    crops: Path,
    files: list[Path],
    report: ExtractReport,
    watch: ConsentWatch,
) -> None:
    """The crops and the index move into place inside the `faceset.built` entry's transaction, which
    re-checks consent: a faceset on disk always matches its latest entry. A new faceset is one folder
    renamed; an existing one gets its new crops and then its new index."""
    faceset.faces.extend(new_entries)
    digest = faceset.digest()  # everything the index holds must serialise before any crop moves
    write_atomic(crops / INDEX, faceset.index_text())  # text; the crops are inputs: the subject's own footage
    if is_new:
        moves = [(crops, faceset.folder)]
    else:
        moves = [(crops / e.file, faceset.folder / e.file) for e in new_entries] + [(crops / INDEX, faceset.index_path)]
    header = faceset.header
    data = {
        "subject_id": header.subject_id,
        "record_id": header.record_id,
        "faceset_sha256": digest,
        "faces": len(faceset.faces),
        "added": report.kept,
        "backend": header.backend,
        "size": header.size,
        "inputs": sorted({file_sha256(p) for p in files}),
    }
    try:
        entry = staging.commit(store.ledger, "faceset.built", data, moves, guard=watch.final)
    except BaseException:
        del faceset.faces[len(faceset.faces) - len(new_entries) :]
        raise
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
