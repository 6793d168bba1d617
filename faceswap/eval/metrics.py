"""`faceswap eval`: does the output look like A, move its mouth like the input, hold still, and carry
its mark? Everything is measured with the same face backend the consent records use."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.masks import SCHEMES
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.media import iter_video_frames


def mouth_ratio(landmarks: np.ndarray, scheme: str) -> float:
    """Mouth opening over the eye-to-mouth distance (68 points: the inner-lip gap)."""
    pts = np.asarray(landmarks, np.float64)
    if scheme == "68":
        gap = float(np.linalg.norm(pts[66] - pts[62]))
        eyes, mouth = pts[36:48].mean(0), pts[48:68].mean(0)
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
    marked_share: float | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, with_frames: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_frames:
            out.pop("frames")
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


def measure_pairs(
    analyzer, pairs, refs_a: np.ndarray, refs_b: np.ndarray, truth: list[dict] | None = None
) -> list[FrameMeasure]:
    """pairs: (index, input image, output image). Subject B is found in the input by identity."""
    out = []
    subject_a, subject_b = IdentityMatcher(refs_a, analyzer.name), IdentityMatcher(refs_b, analyzer.name)
    for index, before, after in pairs:
        found = [f for f in analyzer.analyze(before) if subject_b.matches(f.embedding)]
        if not found:
            continue
        face_in = found[0]
        face_out = _nearest(analyzer.analyze(after), face_in.bbox)
        if face_out is None or face_in.landmarks is None or face_out.landmarks is None:
            continue
        true_kps = truth[index].get("subject_kps5") if truth is not None and index < len(truth) else None
        out.append(
            FrameMeasure(
                frame=index,
                sim_a=subject_a.similarity(face_out.embedding),
                sim_b=subject_b.similarity(face_out.embedding),
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
    marks: WatermarkKeys | None = None,
) -> EvalReport:
    """`marks`: the workspace's watermark secrets, which read the output's mark."""
    pairs = (
        (a.index, a.image, b.image)
        for a, b in zip(
            iter_video_frames(input_video, every=every), iter_video_frames(output_video, every=every), strict=False
        )
    )
    truth_rows = truth_frames(truth)
    measures = measure_pairs(analyzer, pairs, refs_a, refs_b, truth_rows)
    report = EvalReport(frames_compared=len(measures))
    if measures:
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
    report.marked_share = marked_share(output_video, watermark_samples, marks)
    return report


def marked_share(video: Path, samples: int, marks: WatermarkKeys | None) -> float:
    """Each sampled frame checked on its own (stricter than the per-file decision of verify), with
    the workspace's secrets (then the public key of older outputs)."""
    from faceswap.media import probe_video
    from faceswap.provenance.watermark import Watermarker

    info = probe_video(video)
    every = max(1, (info.frames or samples) // samples)
    watermarker = Watermarker.reading(marks)
    results = [watermarker.detect([f.image]).marked for f in iter_video_frames(video, every=every, limit=samples)]
    return float(np.mean(results)) if results else 0.0


@dataclass
class JitterComparison:
    """One swapper's jitter over the first frames: measured on its output, and (with truth) of the
    keypoints it aligned the swap to, which is what smoothing controls, free of the measuring
    detector's own noise on the output."""

    output: float | None
    alignment: float | None


def jitter_comparison(
    swappers: dict[str, Any],
    input_video: Path,
    analyzer,
    refs_a,
    refs_b,
    frames: int = 50,
    truth: Path | None = None,
) -> dict[str, JitterComparison]:
    """The same consecutive frames through each swapper (e.g. smoothing on / off), in memory:
    nothing here is written to disk."""
    from faceswap.convert.pipeline import ConvertReport, FrameIn

    truth_rows = truth_frames(truth)
    clip = [FrameIn(f.index, f.image) for f in iter_video_frames(input_video, limit=frames)]
    results = {}
    for name, swapper in swappers.items():
        scratch = ConvertReport("", "", "")
        pairs = ((f.index, f.image, out) for f, out, _ in swapper.run(clip, scratch))
        measured, _ = output_jitter(measure_pairs(analyzer, pairs, refs_a, refs_b, truth_rows), 1)
        alignment = None
        if truth_rows is not None:
            tracks = [s["track"] for s in scratch.swaps]
            main_track = max(set(tracks), key=tracks.count, default=None)
            placed = [
                s
                for s in scratch.swaps
                if s["track"] == main_track and truth_rows[s["frame"]].get("subject_kps5") is not None
            ]
            true_kps = [truth_rows[s["frame"]]["subject_kps5"] for s in placed]
            alignment = motion_beyond([s["frame"] for s in placed], [s["kps_smoothed"] for s in placed], true_kps, 1)
        results[name] = JitterComparison(measured, alignment)
    return results
