"""`faceswap convert`: consent check -> decode -> analyse -> select -> smooth -> swap -> mask ->
colour -> blend -> output sink. Each step is a function below; `convert` reads top to bottom."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import ConsentWatch
from faceswap.convert import blend as blend_modes
from faceswap.convert import colour as colour_modes
from faceswap.convert import mouth
from faceswap.convert import options as declared
from faceswap.convert.delivery import Delivery
from faceswap.convert.model_io import AuthorizedModel, load_model
from faceswap.convert.settings import ConvertOptions
from faceswap.convert.smoothing import KeypointSmoother, TrackedFace
from faceswap.convert.source import FrameIn, decode
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.align import REGION_FRAMINGS, crop_face, mask_to_frame, track_alignment, transform_points
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.masks import MOUTH_OPENING, blend_mask, landmark_mask, mask_parts
from faceswap.faces.tracking import FaceTracker
from faceswap.faces.types import Face
from faceswap.hashing import safe_name
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame, batched
from faceswap.provenance.watermark.marker import Watermarker, new_token
from faceswap.report import Report

MOUTH_SMOOTHING = 0.08  # seconds either side for the mouth corners, which move with speech
KEPT_EDGE = 0.012  # the feather of what is kept of the target (its mouth, its opening), as a share of the crop


@dataclass
class ConvertReport(Report):
    input: str
    output: str
    model: str
    frames: int = 0
    frames_swapped: int = 0
    faces_swapped: int = 0
    bystanders_untouched: int = 0
    mouths_moved: int = 0  # --mask mouth-opening: faces whose lips were opened to the target's (convert/mouth.py)
    key_frames: int = 0  # frames where faces were detected and identified (the rest were tracked)
    seconds: float = 0.0
    fps: float = 0.0
    token: str | None = None
    ledger_seq: int | None = None
    consent_record_ids: list[str] = field(default_factory=list)
    swaps: list[dict[str, Any]] = field(default_factory=list)  # per swapped face: frame, bbox, kps

    def to_json(self) -> dict[str, Any]:
        """Without the per-face swaps: those are for eval to follow tracks, too many to print."""
        return {k: v for k, v in asdict(self).items() if k != "swaps"}

    def lines(self) -> list[str]:
        return [
            f"{self.output}: {self.frames} frames ({self.frames_swapped} swapped, {self.faces_swapped} faces; "
            f"{self.bystanders_untouched} bystander faces untouched) in {self.seconds:.1f} s ({self.fps:.1f} fps); "
            f"watermark token {self.token}, ledger seq {self.ledger_seq}"
        ]


class Swapper:
    """Everything per frame after decoding: analyse and select, smooth along tracks, swap."""

    def __init__(
        self,
        model: AuthorizedModel,
        references: np.ndarray,
        backend: str,
        options: ConvertOptions,
        fps: float,
        token: int | None = None,
        segmenter: Any = None,
    ):
        """Every frame this returns is already watermarked with `token` (a random one when none is
        given, which no ledger entry names) under the workspace's watermark secret, which the model
        carries: generated pixels never leave it unmarked, whoever calls. `segmenter`
        (model.occlusion.Segmenter): what it finds in front of a face keeps the input's pixels."""
        self.model, self.options, self.segmenter = model, options, segmenter
        self.token = new_token() if token is None else token
        self.watermarker = Watermarker.marking(model.marks)
        self.analyzer = FaceAnalyzer(backend, options.model_root)
        self.subject_b = IdentityMatcher(references, backend)
        self.tracker = FaceTracker(self.analyzer, self.subject_b, options.detect_every)
        face_radius = int(round(options.smoothing * float(fps)))
        mouth_radius = int(round(min(options.smoothing, MOUTH_SMOOTHING) * float(fps)))
        self.smoothing_radii = (face_radius,) * 3 + (mouth_radius,) * 2  # eyes and nose; mouth corners
        self.colour = colour_modes.MODES[options.color]
        self.blend = blend_modes.MODES[options.blend]
        self.opens_mouth = mask_parts(options.mask)[0] == MOUTH_OPENING and self.analyzer.can_refit

    def select(self, frame: FrameIn) -> tuple[list[Face], int]:
        """Faces of subject B in this frame, and how many other faces it shows (left alone)."""
        seen = self.tracker.step(frame.image)
        return [s.face for s in seen if s.is_subject], sum(not s.is_subject for s in seen)

    def run(self, frames: Iterable[FrameIn], report: ConvertReport) -> Iterator[tuple[FrameIn, np.ndarray, np.ndarray]]:
        """(frame, new image, matte) for each input frame, in order; a frame is swapped once the
        smoother has seen the frames after it, in batches for the network."""
        smoother: KeypointSmoother[FrameIn] = KeypointSmoother(radii=self.smoothing_radii)

        def smoothed() -> Iterator[tuple[FrameIn, list[TrackedFace]]]:
            for frame in frames:
                chosen, bystanders = self.select(frame)
                report.bystanders_untouched += bystanders
                report.key_frames = self.tracker.key_frames
                yield from smoother.push(frame, frame.index, chosen)
            yield from smoother.flush()

        for batch in batched(smoothed(), self.options.batch):
            yield from self.swap(batch, report)

    def region(self, face, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the swap may paint (the face hull) and what it must keep from the target (its own
        mouth, lower face or mouth opening, for `--mask mouth|lower-face|mouth-opening`), in aligned crop
        coordinates. The mouth and lower face are grown onto the skin around them; the opening is not
        (the lips and skin around it are the swap's: they carry identity)."""
        import cv2

        empty = np.zeros((size, size), np.float32)
        if face.landmarks is None or face.landmark_scheme is None:
            return np.ones((size, size), np.float32), empty
        lms = transform_points(face.landmarks, matrix)
        kps = transform_points(face.kps5, matrix)
        area = landmark_mask(lms, face.landmark_scheme, kps, "full", (size, size))
        region = mask_parts(self.options.mask)[0]
        if region == "full":
            return area, empty
        keep = landmark_mask(lms, face.landmark_scheme, kps, region, (size, size))
        if region == MOUTH_OPENING:
            return area, keep
        return area, cv2.dilate(keep, np.ones((3, 3), np.uint8), iterations=max(1, size // 32))

    def open_mouth(
        self, generated: np.ndarray, face: Face, matrix: np.ndarray, occluders: np.ndarray | None
    ) -> tuple[np.ndarray, mouth.MouthPlan | None]:
        """The generated face with its lips opened as far as the target's (convert/mouth.py) and the
        move, for the target's opening to be carried in after colour; unchanged and None where the
        swap's mouth cannot be found or something is in front of the target's mouth (`occluders`,
        frame pixels: carried, it would show twice). The target's opening then stays where it is."""
        if face.landmarks is None or face.landmark_scheme != mouth.SCHEME:
            return generated, None
        if occluders is not None:
            lips = np.rint(np.asarray(face.landmarks)[48:68]).astype(int)
            h, w = occluders.shape
            if occluders[np.clip(lips[:, 1], 0, h - 1), np.clip(lips[:, 0], 0, w - 1)].max() > 0.5:
                return generated, None

        def fitter(image: np.ndarray, box: np.ndarray) -> np.ndarray:
            landmarks = self.analyzer.refit(image, box, face).landmarks
            assert landmarks is not None
            return landmarks

        fitted = mouth.fit_generated(generated, mouth.face_box_in_crop(face.bbox, matrix), fitter)
        move = mouth.plan(fitted, transform_points(face.landmarks, matrix))
        return (generated, None) if move is None else (mouth.open_lips(generated, move), move)

    def finish_mask(self, learned: np.ndarray, area: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Learned mask within the face hull, eroded and feathered; the kept part is cut out with a
        sharper edge so the target's lips are not blurred into the swap."""
        import cv2

        size = area.shape[0]
        mask = blend_mask(np.minimum(np.clip(learned, 0, 1), area), self.options.erode, self.options.blur)
        if keep.any():
            mask = mask * (1 - cv2.GaussianBlur(keep, (0, 0), max(0.5, KEPT_EDGE * size)))
        return np.clip(mask, 0, 1)

    def swap(
        self, frames: list[tuple[FrameIn, list[TrackedFace]]], report: ConvertReport
    ) -> list[tuple[FrameIn, np.ndarray, np.ndarray]]:
        """Swap a batch of frames whose faces carry smoothed keypoints; (frame, image, matte) each."""
        size = self.model.resolution
        alignment = self.model.alignment
        jobs = [
            (pos, tracked, track_alignment(tracked.face, tracked.kps, size, alignment))
            for pos, (_, faces) in enumerate(frames)
            for tracked in faces
        ]
        outputs = [f.image.copy() for f, _ in frames]
        mattes = [np.zeros(f.image.shape[:2], np.float32) for f, _ in frames]
        if jobs:
            crops = [crop_face(frames[pos][0].image, m, size) for pos, _, m in jobs]
            swapped, learned = self.model.renderer.render(crops)
            hidden = self.occluders([(frames[pos][0].image, t.face, t.kps) for pos, t, _ in jobs])
            for (pos, tracked, matrix), crop, new, learned_mask, kept in zip(
                jobs, crops, swapped, learned, hidden, strict=True
            ):
                face = tracked.face
                area, keep = self.region(face, matrix, size)
                move = None
                if self.opens_mouth:
                    new, move = self.open_mouth(new, face, matrix, kept)
                if move is not None:
                    keep = np.zeros_like(keep)  # the target's opening goes into `new`, at A's mouth
                    report.mouths_moved += 1
                mask = self.finish_mask(learned_mask, area, keep)
                new = self.colour(new, crop, mask)
                if move is not None:
                    new = mouth.paste_opening(new, crop, move, max(0.5, KEPT_EDGE * size))
                outputs[pos] = self.blend(outputs[pos], new, matrix, mask)
                matte = mask_to_frame(mask, matrix, outputs[pos].shape)
                if kept is not None:
                    outputs[pos], matte = keep_occluders(frames[pos][0].image, outputs[pos], kept), matte * (1 - kept)
                mattes[pos] = np.maximum(mattes[pos], matte)
                report.faces_swapped += 1
                report.swaps.append(
                    {
                        "frame": frames[pos][0].index,
                        "track": tracked.track_id,
                        "bbox": [round(float(v), 1) for v in face.bbox],
                        "kps": np.round(face.kps5, 2).tolist(),
                        "kps_smoothed": np.round(tracked.kps, 2).tolist(),
                    }
                )
            report.frames_swapped += len({pos for pos, _, _ in jobs})
        outputs = self.watermarker.embed(outputs, self.token)
        return [(f, out, matte) for (f, _), out, matte in zip(frames, outputs, mattes, strict=True)]

    def occluders(self, faces: list[tuple[np.ndarray, Any, np.ndarray]]) -> list[np.ndarray | None]:
        """For each (frame, face, smoothed kps5): where the input must be kept because something is in
        front of the face, in frame pixels (None each without a segmenter)."""
        if self.segmenter is None:
            return [None] * len(faces)
        from faceswap.faces.masks import occluder_matte

        found = self.segmenter.predict(faces)
        return [
            mask_to_frame(occluder_matte(o.visible), o.matrix, image.shape)
            for (image, _, _), o in zip(faces, found, strict=True)
        ]


def keep_occluders(source: np.ndarray, swapped: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The input's pixels where `kept` (an occluder in front of the face, frame pixels in [0, 1]),
    the swap elsewhere."""
    alpha = kept[..., None]
    mixed = swapped.astype(np.float32) * (1 - alpha) + source.astype(np.float32) * alpha
    return np.clip(np.rint(mixed), 0, 255).astype(swapped.dtype)


def swapped_something(report: ConvertReport, allow_empty: bool, subject_b: str) -> Callable[[], None]:
    """What else must hold when a conversion's output is committed: at least one face of subject B
    swapped, unless an unchanged copy was asked for."""

    def check() -> None:
        if report.frames_swapped == 0 and not allow_empty:
            raise CheckFailed(
                f"no face of subject '{subject_b}' was found in {report.frames} frame(s); nothing written "
                "(--allow-empty writes an unchanged, marked copy)"
            )

    return check


def convert(
    store: ConsentStore,
    model_dir: Path,
    input_path: Path,
    output: Path,
    options: ConvertOptions,
    progress: Callable[[int, int], None] | None = None,
    shot: Mapping[str, Any] | None = None,
) -> ConvertReport:
    """consent (ledger-proven model) -> decode -> analyse -> swap -> sink, re-checking consent.
    `shot`: what convert-batch identifies the shot by, recorded as the entry's settings["shot"]."""
    options.validate()
    model = load_model(store, model_dir)
    if model.alignment.face_type in REGION_FRAMINGS:
        raise BadInput(
            f"{model_dir}: trained on {model.alignment.face_type}-face crops, for `faceswap dub` only "
            "(a face swap needs a model of the whole face)"
        )
    grant = model.grant
    segmenter = _segmenter(store, options, grant)
    sink = OutputSink.for_workspace(store.workspace, store.ledger)
    sink.check_destination(output, (input_path, model.weights_path, *_weights_of(segmenter)))
    record_b = store.load().by_id(grant.record_for(grant.subject_b).record_id)
    assert record_b is not None
    backend = record_b.backend if options.backend == "auto" else options.backend
    source = decode(input_path, options)
    delivery = Delivery.plan(options, source, output)
    frames, total = source.frames, source.total
    token = sink.reserve_token()
    swapper = Swapper(model, record_b.reference_embeddings, backend, options, float(source.fps), token, segmenter)
    report = ConvertReport(str(input_path), str(output), str(model_dir), consent_record_ids=grant.record_ids)
    started = time.perf_counter()

    def swapped_frames() -> Iterator[SinkFrame]:
        for frame, image, matte in swapper.run(frames, report):
            report.frames += 1
            if progress:
                progress(report.frames, total)
            yield delivery.frame(frame, image, matte)

    required = swapped_something(report, options.allow_empty, grant.subject_b)
    # closing: a refusal stops the decoding thread now, not when the exception's frames are freed
    with closing(frames), ConsentWatch(ConsentGate(store), grant, options.consent_check_seconds, required) as watch:
        context = _context(model, input_path, options, delivery, watch, shot, segmenter)
        audio = input_path if source.kind == "video" else None
        written = delivery.write(sink, output, swapped_frames(), context, source, audio, token)
    report.seconds = round(time.perf_counter() - started, 2)
    report.fps = round(report.frames / max(report.seconds, 1e-9), 2)
    report.token, report.ledger_seq = written.token, written.entry.seq
    return report


def _segmenter(store: ConsentStore, options: ConvertOptions, grant) -> Any:
    """The occlusion segmenter `--mask-model` names (its entry and consent checked), or None."""
    if options.mask_model is None:
        return None
    from faceswap.model.occlusion import load_segmenter

    return load_segmenter(store, options.mask_model, grant)


def _weights_of(segmenter: Any) -> tuple[Path, ...]:
    return (segmenter.weights_path,) if segmenter is not None else ()


def segmenter_settings(segmenter: Any) -> dict[str, Any]:
    """What an output's entry says about the segmenter it was masked with."""
    if segmenter is None:
        return {}
    return {
        "mask_model": segmenter.name,
        "mask_model_fingerprint": segmenter.fingerprint,
        "mask_model_seq": segmenter.entry.seq,
    }


def _context(
    model: AuthorizedModel,
    input_path: Path,
    options: ConvertOptions,
    delivery: Delivery,
    guard: ConsentWatch,
    shot: Mapping[str, Any] | None,
    segmenter: Any = None,
) -> OutputContext:
    """What the output's ledger entry says about the conversion, and what must hold when it commits."""
    return OutputContext(
        producer="convert",
        model_fingerprint=model.fingerprint,
        consent_record_ids=tuple(model.grant.record_ids),
        settings={
            "model": model.name,
            "model_seq": model.entry.seq,
            "input": safe_name(input_path),
            **declared.record(options, declared.CONVERT),
            "purpose": model.grant.purpose,
            **segmenter_settings(segmenter),
            **delivery.settings(),
            **({"shot": dict(shot)} if shot else {}),
        },
        guard=guard,
        sources=(input_path, model.weights_path, *_weights_of(segmenter)),
        source_type="composite",
    )
