"""`faceswap dub`: re-voice a shot of subject A with the mouth of subject B's performance.

consent (the model's signed entry: dubbing research; A also for its own footage) -> decode the plate
and the performance -> offset -> find A in the plate and B in the performance frame at the same time
-> smooth both along their tracks -> B's face through A's decoder (the model's renderer, as in
conversion) -> region (mouth or lower face of both faces) -> colour -> blend into the plate ->
output sink, with the dub line as the audio. Every pixel outside the region is the plate's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.consent.gate import ConsentGate, ConsentGrant
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import CHECK_EVERY_SECONDS, ConsentWatch
from faceswap.convert import options as declared
from faceswap.convert.dub_audio import auto_offset, output_audio
from faceswap.convert.model_io import AuthorizedModel, load_model
from faceswap.convert.pipeline import Swapper, keep_occluders, segmenter_settings
from faceswap.convert.settings import ConvertOptions
from faceswap.convert.smoothing import KeypointSmoother, TrackedFace
from faceswap.convert.source import FrameIn, in_background
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.align import crop_face, eye_to_mouth, track_alignment, transform_points
from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.masks import OCCLUSION, landmark_mask, region_polygon
from faceswap.faces.tracking import FaceTracker
from faceswap.faces.types import Face
from faceswap.hashing import file_sha256, safe_name
from faceswap.limits import OPERATOR, InputLimits
from faceswap.media import VIDEO_SUFFIXES, VideoInfo, iter_video_frames, probe_video
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame, Written, batched
from faceswap.report import Report

# the regions a model of each framing can paint (its crop holds them); the rest paint every region
FRAMING_REGIONS = {"mouth": ("mouth",)}
REGION_GROW = 0.15  # each face's region grows by this share of its eye-to-mouth distance: the seam lies on skin
RING = 0.45  # colour is matched on skin this far (same unit) around the region
DEFAULT = declared.defaults(declared.DUB)  # each field's default, from its option's declaration


@dataclass(frozen=True)
class DubOptions:
    """A dub's settings; each field but the last two is an option of faceswap/convert/options.py."""

    region: str = DEFAULT["region"]
    offset: float | str = DEFAULT["offset"]  # seconds (performance time = plate time + offset), or "auto"
    audio: Path | None = DEFAULT["audio"]  # the dub line in the plate's timing; default: the performance's audio
    color: str = DEFAULT["color"]
    blend: str = DEFAULT["blend"]
    blur: float = DEFAULT["blur"]  # share of the crop size
    smoothing: float = DEFAULT["smoothing"]
    detect_every: int = DEFAULT["detect_every"]
    batch: int = DEFAULT["batch"]
    sequence: str | None = DEFAULT["sequence"]
    backend: str = DEFAULT["backend"]
    model_root: Path | None = DEFAULT["model_root"]
    mask: str | None = DEFAULT["mask"]  # "occlusion": keep what is in front of the actor's face, inside the region
    mask_model: Path | None = DEFAULT["mask_model"]  # the occlusion segmenter (`faceswap train-mask`)
    consent_check_seconds: float = CHECK_EVERY_SECONDS
    limits: InputLimits = OPERATOR  # what the plate, performance and audio may declare (faceswap/limits.py)

    def convert_options(self) -> ConvertOptions:
        """The conversion settings the composed Swapper runs with (its mask is not used here)."""
        return ConvertOptions(
            color=self.color,
            blend=self.blend,
            blur=self.blur,
            smoothing=self.smoothing,
            batch=self.batch,
            sequence=self.sequence,
            backend=self.backend,
            model_root=self.model_root,
            detect_every=self.detect_every,
            consent_check_seconds=self.consent_check_seconds,
            limits=self.limits,
        )

    def validate(self) -> None:
        """Every option checked before anything is read or written."""
        declared.check(self, declared.DUB)
        if (self.mask is not None) != (self.mask_model is not None):
            raise BadInput(
                f"--mask {OCCLUSION} needs --mask-model (a segmenter from `faceswap train-mask`), and "
                "--mask-model needs --mask occlusion"
            )
        if self.audio is not None and not self.audio.is_file():
            raise BadInput(f"{self.audio}: no such file (--audio)")
        self.convert_options().validate()


@dataclass
class DubReport(Report):
    plate: str
    performance: str
    output: str
    model: str
    region: str
    offset_s: float = 0.0
    offset_mode: str = "given"  # given | auto (plate) | auto (audio)
    offset_confidence: float | None = None
    audio_source: str = "none"  # audio (--audio) | performance | none
    frames: int = 0
    frames_dubbed: int = 0
    frames_without_subject_a: int = 0  # passed through: A not found in the plate frame
    frames_without_performance: int = 0  # passed through: no face of B in the performance at that time
    bystanders_untouched: int = 0
    key_frames_plate: int = 0
    key_frames_performance: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    token: str | None = None
    ledger_seq: int | None = None
    consent_record_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        passed = self.frames_without_subject_a + self.frames_without_performance
        return [
            f"{self.output}: {self.frames} frames ({self.frames_dubbed} dubbed, {passed} passed through: "
            f"{self.frames_without_subject_a} without subject A, {self.frames_without_performance} without a "
            f"performance face); offset {self.offset_s:+.3f} s ({self.offset_mode}), audio from "
            f"{self.audio_source}, region {self.region}; {self.seconds:.1f} s; watermark token {self.token}, "
            f"ledger seq {self.ledger_seq}"
        ]


@dataclass
class PerformanceFrame:
    index: int
    image: np.ndarray
    faces: list[Face]  # faces of subject B


@dataclass
class Pair:
    """A plate frame, the faces of A in it, and the performance frame shown at its time."""

    frame: FrameIn
    faces: list[Face]
    performance: PerformanceFrame | None


def frame_time(frame: FrameIn, fps: float) -> float:
    """Presentation time in seconds (the frame's own timestamp where it has one)."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return frame.index / fps


class PerformanceClock:
    """The performance frame at each plate time: the one nearest t + offset, none before the first
    frame or after the last. Frames are decoded in order and each one analysed at most once."""

    def __init__(self, frames: Iterator[FrameIn], fps: float, offset: float, analyse: Callable[[FrameIn], list]):
        self.frames, self.fps, self.offset, self.analyse = frames, fps, offset, analyse
        self.half = 0.5 / fps + 1e-6
        self.current: FrameIn | None = None
        self.ahead: FrameIn | None = next(frames, None)
        self.analysed: PerformanceFrame | None = None

    def at(self, plate_time: float) -> PerformanceFrame | None:
        wanted = plate_time + self.offset
        while self.ahead is not None and frame_time(self.ahead, self.fps) <= wanted + self.half:
            self.current, self.ahead = self.ahead, next(self.frames, None)
        current = self.current
        if current is None or abs(frame_time(current, self.fps) - wanted) > self.half:
            return None
        if self.analysed is None or self.analysed.index != current.index:
            self.analysed = PerformanceFrame(current.index, current.image, self.analyse(current))
        return self.analysed


def region_mask(faces: Sequence[tuple[np.ndarray, np.ndarray]], scheme: str, region: str, shape) -> np.ndarray:
    """The union of `region` over faces given as (landmarks, kps5) in one coordinate frame, each
    grown by REGION_GROW of its eye-to-mouth distance: float32, 0 or 1. Dubbing paints the plate's
    and the performance's mouth both, so an open dubbed mouth is not clipped and a closed one
    covers the plate's open mouth; `faceswap eval --dub` finds the seam with the same function."""
    import cv2

    mask = np.zeros(shape, np.float32)
    reach = 1.0
    for landmarks, kps in faces:
        polygon = region_polygon(landmarks, scheme, kps, region)
        cv2.fillConvexPoly(mask, np.rint(polygon).astype(np.int32), 1.0)
        reach = max(reach, REGION_GROW * eye_to_mouth(kps))
    return _dilate(mask, reach)


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    import cv2

    r = max(1, int(round(radius)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def _in_crop(face: Face, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    assert face.landmarks is not None
    return transform_points(face.landmarks, matrix), transform_points(face.kps5, matrix)


def _largest(faces: list[TrackedFace]) -> TrackedFace | None:
    usable = [f for f in faces if f.face.landmarks is not None and f.face.landmark_scheme is not None]
    return max(usable, key=lambda f: float(f.face.bbox[2] - f.face.bbox[0]), default=None)


class Dubber:
    """Everything per plate frame after decoding. Composes a Swapper for B's side: its tracker
    follows B in the performance, its colour and blend modes are conversion's; the model's
    renderer decodes B's face with A's decoder, as conversion does."""

    def __init__(
        self,
        model: AuthorizedModel,
        refs_a: np.ndarray,
        refs_b: np.ndarray,
        backend: str,
        options: DubOptions,
        fps: float,
        token: int | None = None,
        segmenter: Any = None,
    ):
        """Every frame this returns is watermarked with `token` (a random one when none is given),
        as the Swapper's are: the dubbed pixels never leave it unmarked. `segmenter`: what it finds
        in front of the actor's face keeps the plate's pixels."""
        self.options, self.size, self.fps = options, model.resolution, fps
        self.alignment, self.renderer = model.alignment, model.renderer
        self.swapper = Swapper(model, refs_b, backend, options.convert_options(), fps, token, segmenter)
        self.token = self.swapper.token
        self.plate_tracker = FaceTracker(self.swapper.analyzer, IdentityMatcher(refs_a, backend), options.detect_every)

    def run(self, plate: Iterable[FrameIn], clock: PerformanceClock, report: DubReport) -> Iterator[tuple]:
        """(plate frame, new image) for every plate frame, in order."""
        for batch in batched(self.smoothed(self.pairs(plate, clock, report)), self.options.batch):
            yield from self.dub_batch(batch, report)

    def analyse_performance(self, frame: FrameIn, report: DubReport) -> list[Face]:
        """The faces of B in a performance frame (the Swapper's tracker; bystanders are ignored)."""
        faces, _ = self.swapper.select(frame)
        report.key_frames_performance = self.swapper.tracker.key_frames
        return faces

    def pairs(self, plate: Iterable[FrameIn], clock: PerformanceClock, report: DubReport) -> Iterator[Pair]:
        for frame in plate:
            seen = self.plate_tracker.step(frame.image)
            report.bystanders_untouched += sum(not s.is_subject for s in seen)
            report.key_frames_plate = self.plate_tracker.key_frames
            yield Pair(frame, [s.face for s in seen if s.is_subject], clock.at(frame_time(frame, self.fps)))

    def smoothed(self, pairs: Iterator[Pair]) -> Iterator[tuple[Pair, list[TrackedFace], list[TrackedFace]]]:
        """Both faces' keypoints smoothed along their tracks (the performance's first, then the
        plate's), with the plate frame's index as the time axis."""
        radii = self.swapper.smoothing_radii
        on_performance: KeypointSmoother[Pair] = KeypointSmoother(radii=radii)
        on_plate: KeypointSmoother[tuple[Pair, list[TrackedFace]]] = KeypointSmoother(radii=radii)

        def performance_smoothed() -> Iterator[tuple[Pair, list[TrackedFace]]]:
            for pair in pairs:
                faces = pair.performance.faces if pair.performance is not None else []
                yield from on_performance.push(pair, pair.frame.index, faces)
            yield from on_performance.flush()

        def both() -> Iterator[tuple[tuple[Pair, list[TrackedFace]], list[TrackedFace]]]:
            for pair, b_faces in performance_smoothed():
                yield from on_plate.push((pair, b_faces), pair.frame.index, pair.faces)
            yield from on_plate.flush()

        for (pair, b_faces), a_faces in both():
            yield pair, a_faces, b_faces

    def dub_batch(self, batch: list[tuple[Pair, list[TrackedFace], list[TrackedFace]]], report: DubReport) -> list:

        size = self.size
        outputs = [pair.frame.image for pair, _, _ in batch]
        jobs = []
        for pos, (pair, a_faces, b_faces) in enumerate(batch):
            a, b = _largest(a_faces), _largest(b_faces)
            if a is None:
                report.frames_without_subject_a += 1
            elif b is None or pair.performance is None:
                report.frames_without_performance += 1
            else:
                jobs.append((pos, a, b, track_alignment(b.face, b.kps, size, self.alignment)))
        if jobs:
            crops = [crop_face(batch[pos][0].performance.image, m, size) for pos, _, _, m in jobs]
            generated, _learned = self.renderer.render(crops)  # A's decoder, exactly as conversion runs it
            hidden = self.swapper.occluders([(outputs[pos], a.face, a.kps) for pos, a, _, _ in jobs])
            for (pos, a, b, perf_matrix), face, kept in zip(jobs, generated, hidden, strict=True):
                painted = self.paint(outputs[pos], face, a, b, perf_matrix)
                if kept is not None:
                    painted = keep_occluders(outputs[pos], painted, kept)
                outputs[pos] = painted
            report.frames_dubbed += len(jobs)
        outputs = self.swapper.watermarker.embed(outputs, self.token)
        return [(pair.frame, out) for (pair, _, _), out in zip(batch, outputs, strict=True)]

    def paint(
        self, plate: np.ndarray, generated: np.ndarray, a: TrackedFace, b: TrackedFace, perf_matrix
    ) -> np.ndarray:
        """The generated face at the plate face's alignment, inside the region of both mouths,
        colour-matched on the skin around it, blended; outside the region the plate is unchanged."""
        import cv2

        size, scheme = self.size, a.face.landmark_scheme
        matrix = track_alignment(a.face, a.kps, size, self.alignment)
        plate_lms, plate_kps = _in_crop(a.face, matrix)
        region = region_mask(
            [(plate_lms, plate_kps), _in_crop(b.face, perf_matrix)], scheme, self.options.region, (size, size)
        )
        face_area = landmark_mask(plate_lms, scheme, plate_kps, "full", (size, size))
        ring = np.minimum(_dilate(region, RING * eye_to_mouth(plate_kps)) - region, face_area)
        crop = crop_face(plate, matrix, size)
        matched = self.swapper.colour(generated, crop, ring)
        soft = cv2.GaussianBlur(region, (0, 0), max(0.5, self.options.blur * size)) if self.options.blur > 0 else region
        return self.swapper.blend(plate, matched, matrix, np.clip(soft, 0, 1))


def dubbed_something(report: DubReport) -> Callable[[], None]:
    """What else must hold when a dub's output is committed: at least one frame dubbed."""

    def check() -> None:
        if report.frames_dubbed == 0:
            raise CheckFailed(
                f"no plate frame showed subject A with a face of subject B in the performance at its time "
                f"({report.frames} frame(s), offset {report.offset_s:+.3f} s); nothing written"
            )

    return check


def authorize(store: ConsentStore, model_dir: Path) -> AuthorizedModel:
    """The model (its ledger entry and consent, as for conversion), cleared for dubbing."""
    model = load_model(store, model_dir)
    ConsentGate(store).authorize_dub(model.grant)
    return model


def probe_inputs(plate: Path, performance: Path, limits: InputLimits = OPERATOR) -> tuple[VideoInfo, VideoInfo]:
    for role, path in (("plate", plate), ("performance", performance)):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise BadInput(f"{path}: the {role} must be a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return probe_video(plate, limits), probe_video(performance, limits)


def resolve_offset(options: DubOptions, plate: Path, performance: Path, report: DubReport) -> float:
    if options.offset == "auto":
        found = auto_offset(plate, performance, options.audio, options.limits)
        report.offset_s, report.offset_mode, report.offset_confidence = (
            found.seconds,
            f"auto ({found.reference})",
            found.confidence,
        )
    else:
        report.offset_s = float(options.offset)
    return report.offset_s


def dub_line(
    options: DubOptions, performance: Path, offset: float, duration: float | None, folder: Path, report
) -> Path | None:
    """The output's audio: --audio as given (it is in the plate's timing), else the performance's
    own audio moved by the offset; cut to the plate's length."""
    if options.sequence:
        return None
    if options.audio is not None:
        line = output_audio(options.audio, 0.0, duration, folder, options.limits)
        if line is None:
            raise BadInput(f"{options.audio}: has no audio stream (--audio)")
        report.audio_source = "audio"
        return line
    line = output_audio(performance, offset, duration, folder, options.limits)
    report.audio_source = "performance" if line is not None else "none"
    return line


def subject_records(store: ConsentStore, grant: ConsentGrant):
    snapshot = store.load()
    records = [snapshot.by_id(grant.record_for(s).record_id) for s in (grant.subject_a, grant.subject_b)]
    assert all(r is not None for r in records)
    return records


def dub_context(
    model: AuthorizedModel,
    paths: dict[str, Path | None],
    options: DubOptions,
    report: DubReport,
    guard: ConsentWatch,
    segmenter: Any = None,
) -> OutputContext:
    """What the dub's ledger entry says (both consents and their roles, the inputs, the offset), and
    the consent watch that must hold when it commits."""
    grant = model.grant
    a, b = grant.record_for(grant.subject_a), grant.record_for(grant.subject_b)
    described = {
        role: ({"name": safe_name(path), "sha256": file_sha256(path)} if path is not None else None)
        for role, path in paths.items()
    }
    settings = {
        "model": model.name,
        "model_seq": model.entry.seq,
        "purpose": grant.purpose,
        "consent": {
            "a": {"subject": a.subject_id, "record_id": a.record_id, "record_sha256": a.record_sha256, "as": "actor"},
            "b": {
                "subject": b.subject_id,
                "record_id": b.record_id,
                "record_sha256": b.record_sha256,
                "as": "performance",
            },
        },
        **described,
        "audio_source": report.audio_source,
        "offset_s": report.offset_s,
        "offset_mode": report.offset_mode,
        "offset_confidence": report.offset_confidence,
        **declared.record(options, declared.DUB),  # the mask only when a segmenter keeps occluders
        **segmenter_settings(segmenter),
    }
    extra = (segmenter.weights_path,) if segmenter is not None else ()
    sources = tuple(
        p for p in (paths["plate"], paths["performance"], options.audio, model.weights_path, *extra) if p is not None
    )
    return OutputContext(
        producer="dub",
        model_fingerprint=model.fingerprint,
        consent_record_ids=tuple(grant.record_ids),
        settings=settings,
        guard=guard,
        sources=sources,
        source_type="composite",
    )


def dub(
    store: ConsentStore,
    model_dir: Path,
    plate: Path,
    performance: Path,
    output: Path,
    options: DubOptions,
    progress: Callable[[int, int], None] | None = None,
) -> DubReport:
    """consent -> decode -> offset -> track A and B -> swap B to A -> region, colour, blend -> sink."""
    options.validate()
    model = authorize(store, model_dir)
    framing = model.alignment.face_type
    if options.region not in FRAMING_REGIONS.get(framing, declared.DUB_REGIONS):
        raise BadInput(
            f"{model_dir}: trained on {framing}-face crops, which do not hold the {options.region} region "
            f"(--region {' or '.join(FRAMING_REGIONS[framing])})"
        )
    segmenter = _segmenter(store, options, model)
    sink = OutputSink.for_workspace(store.workspace, store.ledger)
    weights = (model.weights_path, *((segmenter.weights_path,) if segmenter is not None else ()))
    sink.check_destination(output, (plate, performance, *([options.audio] if options.audio else []), *weights))
    plate_info, perf_info = probe_inputs(plate, performance, options.limits)
    report = DubReport(str(plate), str(performance), str(output), str(model_dir), options.region)
    report.consent_record_ids = model.grant.record_ids
    offset = resolve_offset(options, plate, performance, report)
    record_a, record_b = subject_records(store, model.grant)
    backend = record_a.backend if options.backend == "auto" else options.backend
    fps = float(plate_info.fps)
    token = sink.reserve_token()
    refs = (record_a.reference_embeddings, record_b.reference_embeddings)
    dubber = Dubber(model, *refs, backend, options, fps, token, segmenter)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="faceswap-dub-") as scratch:
        duration = plate_info.frames / fps if plate_info.frames else None
        line = dub_line(options, performance, offset, duration, Path(scratch), report)
        watch = ConsentWatch(ConsentGate(store), model.grant, options.consent_check_seconds, dubbed_something(report))
        paths = {"plate": plate, "performance": performance, "audio": options.audio}
        context = dub_context(model, paths, options, report, watch, segmenter)
        clock = PerformanceClock(
            _decoded(performance, options.limits),
            float(perf_info.fps),
            offset,
            lambda f: dubber.analyse_performance(f, report),
        )

        def frames() -> Iterator[SinkFrame]:
            for frame, image in dubber.run(_decoded(plate, options.limits), clock, report):
                report.frames += 1
                if progress:
                    progress(report.frames, plate_info.frames)
                yield SinkFrame(image, frame.pts, frame.time_base, original=frame.image)

        with watch:
            written = _write(sink, output, frames(), plate_info, context, line, options, token)
    report.seconds = round(time.perf_counter() - started, 2)
    report.fps = round(report.frames / max(report.seconds, 1e-9), 2)
    report.token, report.ledger_seq = written.token, written.entry.seq
    return report


def _segmenter(store: ConsentStore, options: DubOptions, model: AuthorizedModel) -> Any:
    """The occlusion segmenter `--mask-model` names (its entry and consent checked), or None."""
    if options.mask is None or options.mask_model is None:
        return None
    from faceswap.model.occlusion import load_segmenter

    return load_segmenter(store, options.mask_model, model.grant)


def _decoded(path: Path, limits: InputLimits) -> Iterator[FrameIn]:
    frames = iter_video_frames(path, limits=limits)
    return in_background(FrameIn(f.index, f.image, f.pts, f.time_base) for f in frames)


def _write(
    sink: OutputSink, output: Path, frames, info: VideoInfo, context, line: Path | None, options, token: int
) -> Written:
    if options.sequence:
        return sink.write_sequence(output, frames, context, token=token)
    return sink.write_video(
        output,
        frames,
        info.fps,
        context,
        audio_from=line,
        time_base=info.time_base,
        expected_frames=info.frames,
        token=token,
    )
