"""`faceswap eval`: does the output look like A, move its mouth like the input, hold still, and carry
its mark? Everything is measured with the same face backend the consent records use."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.eval.boxes import search_box
from faceswap.eval.independent import IndependentIdentity, IndependentReferences
from faceswap.faces.dlib_backend import eyes_and_lips
from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.masks import SCHEMES
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.media import iter_video_frames


def mouth_ratio(landmarks: np.ndarray, scheme: str) -> float:
    """Mouth opening over the eye-to-mouth distance (68 points: the inner-lip gap)."""
    pts = np.asarray(landmarks, np.float64)
    if scheme == "68":
        gap = float(np.linalg.norm(pts[66] - pts[62]))
        eyes, mouth = eyes_and_lips(pts)
    else:
        lips = pts[list(SCHEMES[scheme].mouth_outer)]
        gap = float(lips[:, 1].max() - lips[:, 1].min())
        eyes, mouth = pts.mean(0), lips.mean(0)
    return gap / max(float(np.linalg.norm(eyes - mouth)), 1e-6)


@dataclass
class FrameMeasure:
    frame: int
    sim_a: float
    sim_b: float
    mouth_in: float
    mouth_out: float
    kps_in: list[list[float]]
    kps_out: list[list[float]]
    kps_true: list[list[float]] | None = None  # drawn keypoints of a demo clip (truth.json)


@dataclass
class EvalReport:
    frames_compared: int = 0
    nearer_a_share: float | None = None
    identity_sim_a_mean: float | None = None
    identity_sim_b_mean: float | None = None
    mouth_correlation_input: float | None = None
    mouth_correlation_truth: float | None = None
    jitter: float | None = None
    jitter_reference: str | None = None  # "truth": the drawn keypoints; "input": detections on the input
    input_motion: float | None = None
    input_detection_noise: float | None = None  # the input's detected motion beyond the truth
    jitter_smoothing_on: float | None = None  # over the first frames, in memory, for the comparison
    jitter_without_smoothing: float | None = None  # the same frames with smoothing off
    alignment_jitter_smoothing_on: float | None = None  # of the keypoints the swap was aligned to (truth only)
    alignment_jitter_without_smoothing: float | None = None
    decoder_flicker: float | None = None  # the output's eyes and nose moving against where the swap put them
    marked_share: float | None = None
    independent: IndependentIdentity | None = None  # dlib's own descriptor on the same output frames
    frames: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, with_frames: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_frames:
            out.pop("frames")
            if out["independent"] is not None:
                out["independent"].pop("per_frame")
        return out

    def lines(self) -> list[str]:
        """The report for people, a line per measure."""
        fmt = _fmt
        noise = f", the input's detections {fmt(self.input_detection_noise)}" if self.input_detection_noise else ""
        out = [
            f"identity: nearer A in {fmt(self.nearer_a_share)} of frames (mean sim A "
            f"{fmt(self.identity_sim_a_mean)}, B {fmt(self.identity_sim_b_mean)})",
            f"mouth opening correlation: with input {fmt(self.mouth_correlation_input)}, with truth "
            f"{fmt(self.mouth_correlation_truth)}",
            f"jitter beyond the {self.jitter_reference or 'input'}'s motion {fmt(self.jitter)}{noise} (head motion "
            f"{fmt(self.input_motion)}); first frames: {fmt(self.jitter_smoothing_on)} smoothed vs "
            f"{fmt(self.jitter_without_smoothing)} unsmoothed",
        ]
        if self.alignment_jitter_smoothing_on is not None:
            out.append(
                f"alignment keypoints beyond the truth's motion: {fmt(self.alignment_jitter_smoothing_on)} smoothed "
                f"vs {fmt(self.alignment_jitter_without_smoothing)} unsmoothed"
            )
        if self.decoder_flicker is not None:
            out.append(
                f"decoder flicker (output eyes and nose against the swap's placement): {fmt(self.decoder_flicker)}"
            )
        if self.independent is not None:
            out.append(self.independent.line())
        out.append(f"frames marked when re-verified one by one: {fmt(self.marked_share)}")
        return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _nearest(faces: list, bbox: np.ndarray):
    center = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2])
    size = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    best = min(
        faces,
        key=lambda f: np.linalg.norm(np.array([(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2]) - center),
        default=None,
    )
    if best is None:
        return None
    moved = np.linalg.norm(np.array([(best.bbox[0] + best.bbox[2]) / 2, (best.bbox[1] + best.bbox[3]) / 2]) - center)
    return best if moved < 0.5 * size else None


def truth_frames(truth: Path | None) -> list[dict] | None:
    """Per-frame rows of a demo clip's truth.json (None without one)."""
    return json.loads(Path(truth).read_text())["frames"] if truth is not None else None


def faces_near(analyzer, image: np.ndarray, bbox: np.ndarray) -> list:
    """Faces the analyzer finds around `bbox`, in the frame's coordinates. The face that replaced
    another one is where that one was (`_nearest` takes no face further than half a box away), so
    only that part of the frame is searched: the detector's cost grows with the pixels it scans."""
    from dataclasses import replace

    left, top, right, bottom = search_box(bbox, image.shape)
    shift = np.array([left, top], np.float32)

    def moved(face):
        landmarks = None if face.landmarks is None else face.landmarks + shift
        return replace(face, bbox=face.bbox + np.tile(shift, 2), kps5=face.kps5 + shift, landmarks=landmarks)

    return [moved(f) for f in analyzer.analyze(np.ascontiguousarray(image[top:bottom, left:right]))]


class InputFaces:
    """Subject B's face in each frame of the input, followed the way conversion follows it
    (`faces.tracking`: detected and identified on key frames, landmarks fitted again in between),
    decoded and followed once however many swaps of the same input are measured."""

    def __init__(self, analyzer, subject_b: IdentityMatcher, video: Path) -> None:
        from faceswap.faces.tracking import FaceTracker

        self.analyzer, self.subject_b = analyzer, subject_b
        self._tracker = FaceTracker(analyzer, subject_b)
        self._frames = iter_video_frames(video)
        self.found: dict[int, Any] = {}

    def get(self, index: int):
        """B's face in input frame `index` (None where B is not found)."""
        while index not in self.found:
            frame = next(self._frames, None)
            if frame is None:
                return None
            subjects = [seen.face for seen in self._tracker.step(frame.image) if seen.is_subject]
            self.found[frame.index] = max(subjects, key=lambda f: float(f.bbox[2] - f.bbox[0]), default=None)
        return self.found[index]


def measure_pairs(
    analyzer,
    pairs,
    refs_a: np.ndarray,
    refs_b: np.ndarray,
    truth: list[dict] | None,
    inputs: InputFaces,
    on_output: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    embed_output: bool = True,
) -> list[FrameMeasure]:
    """pairs: (index, output image). Subject B is found in the input by identity (`inputs`), the
    output's face where B was: detected (`embed_output`, for identity) or, where only its landmarks
    are wanted, fitted inside B's box; `on_output(index, output image, B's box)` sees every frame."""
    out = []
    subject_a = IdentityMatcher(refs_a, analyzer.name)
    for index, after in pairs:
        face_in = inputs.get(index)
        if face_in is None:
            continue
        if on_output is not None:
            on_output(index, after, face_in.bbox)
        if embed_output:
            face_out = _nearest(faces_near(analyzer, after, face_in.bbox), face_in.bbox)
        else:
            face_out = analyzer.refit(after, face_in.bbox, face_in)
        if face_out is None or face_in.landmarks is None or face_out.landmarks is None:
            continue
        true_kps = truth[index].get("subject_kps5") if truth is not None and index < len(truth) else None
        unknown = float("nan")  # a fitted face carries the input's embedding, not its own
        out.append(
            FrameMeasure(
                frame=index,
                sim_a=subject_a.similarity(face_out.embedding) if embed_output else unknown,
                sim_b=inputs.subject_b.similarity(face_out.embedding) if embed_output else unknown,
                mouth_in=mouth_ratio(face_in.landmarks, face_in.landmark_scheme),
                mouth_out=mouth_ratio(face_out.landmarks, face_out.landmark_scheme),
                kps_in=np.round(face_in.kps5, 2).tolist(),
                kps_out=np.round(face_out.kps5, 2).tolist(),
                kps_true=true_kps,
            )
        )
    return out


def motion_beyond(
    frames: list[int], moving: list, reference: list, step: int, eye_from: list | None = None
) -> float | None:
    """Mean frame-to-frame keypoint motion of `moving` minus that of `reference`, over the eye distance.

    Against the truth this is pure jitter. Against the input's detections it also counts the detector's
    own frame-to-frame noise, which smoothing removes on purpose, so it favours an unsmoothed swap."""
    eye_from = reference if eye_from is None else eye_from
    extra = []
    for i in range(1, len(frames)):
        if frames[i] - frames[i - 1] != step or reference[i] is None or reference[i - 1] is None:
            continue
        d_ref = np.array(reference[i]) - np.array(reference[i - 1])
        d_moving = np.array(moving[i]) - np.array(moving[i - 1])
        eye = float(np.linalg.norm(np.array(eye_from[i][1]) - np.array(eye_from[i][0]))) or 1.0
        extra.append(float(np.linalg.norm(d_moving - d_ref, axis=1).mean()) / eye)
    return float(np.mean(extra)) if extra else None


def output_jitter(measures: list[FrameMeasure], step: int) -> tuple[float | None, str]:
    """Output keypoint motion beyond the truth's when every frame has it, else beyond the input's."""
    use_truth = bool(measures) and all(m.kps_true is not None for m in measures)
    reference = [m.kps_true if use_truth else m.kps_in for m in measures]
    frames = [m.frame for m in measures]
    return motion_beyond(frames, [m.kps_out for m in measures], reference, step), "truth" if use_truth else "input"


def input_motion(measures: list[FrameMeasure], step: int) -> float | None:
    """The input's own keypoint motion per step, over the eye distance (how much the head moves)."""
    kps_in = [m.kps_in for m in measures]
    still = [np.zeros((5, 2))] * len(measures)
    return motion_beyond([m.frame for m in measures], kps_in, still, step, eye_from=kps_in)


def _corr(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or np.std(x) < 1e-9 or np.std(y) < 1e-9:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def evaluate(
    analyzer,
    input_video: Path,
    output_video: Path,
    refs_a: np.ndarray,
    refs_b: np.ndarray,
    truth: Path | None = None,
    every: int = 2,
    watermark_samples: int = 12,
    inputs: InputFaces | None = None,
    independent: IndependentReferences | None = None,
    marks: WatermarkKeys | None = None,
) -> EvalReport:
    """`independent`: dlib's own descriptor and each subject's reference descriptors, for a second
    identity measure on the same output frames (`faceswap.eval.independent`); `marks`: the workspace's
    watermark secrets, which read the output's mark."""
    inputs = inputs or InputFaces(analyzer, IdentityMatcher(refs_b, analyzer.name), input_video)
    pairs = ((f.index, f.image) for f in iter_video_frames(output_video, every=every))
    truth_rows = truth_frames(truth)
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []
    on_output = None if independent is None else (lambda i, image, box: seen.append(independent.measure(i, image, box)))
    measures = measure_pairs(analyzer, pairs, refs_a, refs_b, truth_rows, inputs, on_output)
    report = EvalReport(frames_compared=len(measures))
    if independent is not None:
        from faceswap.eval.independent import summarise

        report.independent = summarise([row for row in seen if row is not None])
    if measures:
        summarise_measures(report, measures, every, truth_rows)
    report.marked_share = marked_share(output_video, watermark_samples, marks)
    return report


def summarise_measures(report: EvalReport, measures: list[FrameMeasure], every: int, truth_rows) -> None:
    report.nearer_a_share = float(np.mean([m.sim_a > m.sim_b for m in measures]))
    report.identity_sim_a_mean = float(np.mean([m.sim_a for m in measures]))
    report.identity_sim_b_mean = float(np.mean([m.sim_b for m in measures]))
    report.mouth_correlation_input = _corr([m.mouth_in for m in measures], [m.mouth_out for m in measures])
    report.jitter, report.jitter_reference = output_jitter(measures, every)
    report.input_motion = input_motion(measures, every)
    if report.jitter_reference == "truth":
        report.input_detection_noise = motion_beyond(
            [m.frame for m in measures], [m.kps_in for m in measures], [m.kps_true for m in measures], every
        )
    if truth_rows is not None:
        report.mouth_correlation_truth = _corr(
            [truth_rows[m.frame]["mouth_ratio"] for m in measures], [m.mouth_out for m in measures]
        )
    report.frames = [asdict(m) for m in measures]


def marked_share(video: Path, samples: int, marks: WatermarkKeys | None) -> float:
    """Each sampled frame checked on its own (stricter than the per-file decision of verify), with
    the workspace's secrets (then the public key of older outputs)."""
    from faceswap.media import probe_video
    from faceswap.provenance.watermark.marker import Watermarker

    info = probe_video(video)
    every = max(1, (info.frames or samples) // samples)
    watermarker = Watermarker.reading(marks)
    results = [watermarker.detect([f.image]).marked for f in iter_video_frames(video, every=every, limit=samples)]
    return float(np.mean(results)) if results else 0.0


RIGID_KPS = 3  # of the five keypoints, the eyes and the nose tip: they move with the head, not with speech


@dataclass
class JitterComparison:
    """One swapper's jitter over the first frames: measured on its output; (with truth) of the
    keypoints it aligned the swap to, which is what smoothing controls, free of the measuring
    detector's own noise on the output; and the decoder's flicker, the output's eyes and nose moving
    against the keypoints the swap was placed by, which no smoothing of the placement removes."""

    output: float | None
    alignment: float | None
    decoder: float | None = None


def jitter_comparison(
    swappers: dict[str, Any],
    input_video: Path,
    analyzer,
    refs_a,
    refs_b,
    frames: int = 50,
    truth: Path | None = None,
    inputs: InputFaces | None = None,
) -> dict[str, JitterComparison]:
    """The same consecutive frames through each swapper (e.g. smoothing on / off), in memory:
    nothing here is written to disk. B's face in each input frame is found once for all of them."""
    from faceswap.convert.pipeline import ConvertReport
    from faceswap.convert.source import FrameIn

    truth_rows = truth_frames(truth)
    clip = [FrameIn(f.index, f.image) for f in iter_video_frames(input_video, limit=frames)]
    inputs = inputs or InputFaces(analyzer, IdentityMatcher(refs_b, analyzer.name), input_video)
    results = {}
    for name, swapper in swappers.items():
        scratch = ConvertReport("", "", "")
        pairs = ((f.index, out) for f, out, _ in swapper.run(clip, scratch))
        fitted = measure_pairs(analyzer, pairs, refs_a, refs_b, truth_rows, inputs, embed_output=False)
        measured, _ = output_jitter(fitted, 1)
        placed = _main_track(scratch.swaps)
        alignment = None
        if truth_rows is not None:
            known = [s for s in placed if truth_rows[s["frame"]].get("subject_kps5") is not None]
            true_kps = [truth_rows[s["frame"]]["subject_kps5"] for s in known]
            alignment = motion_beyond([s["frame"] for s in known], [s["kps_smoothed"] for s in known], true_kps, 1)
        results[name] = JitterComparison(measured, alignment, decoder_flicker(fitted, placed))
    return results


def _main_track(swaps: list[dict]) -> list[dict]:
    tracks = [s["track"] for s in swaps]
    main_track = max(set(tracks), key=tracks.count, default=None)
    return [s for s in swaps if s["track"] == main_track]


def decoder_flicker(measures: list[FrameMeasure], placed: list[dict]) -> float | None:
    """Frame-to-frame motion of the output's eyes and nose beyond that of the keypoints the swap was
    aligned to (per eye distance): what the network adds when its face shifts inside the crop."""
    at = {s["frame"]: s["kps_smoothed"][:RIGID_KPS] for s in placed}
    rows = [m for m in measures if m.frame in at]
    return motion_beyond(
        [m.frame for m in rows],
        [m.kps_out[:RIGID_KPS] for m in rows],
        [at[m.frame] for m in rows],
        1,
        eye_from=[at[m.frame] for m in rows],
    )
