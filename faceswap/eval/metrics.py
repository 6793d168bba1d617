"""`faceswap eval`: does the output look like A, move its mouth like the input, hold still, and carry
its mark? Everything is measured with the same face backend the consent records use."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.faces.identity import cosine_similarities
from faceswap.faces.masks import SCHEMES
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


@dataclass
class EvalReport:
    frames_compared: int = 0
    nearer_a_share: float | None = None
    identity_sim_a_mean: float | None = None
    identity_sim_b_mean: float | None = None
    mouth_correlation_input: float | None = None
    mouth_correlation_truth: float | None = None
    jitter: float | None = None
    input_motion: float | None = None
    jitter_smoothing_on: float | None = None  # over the first frames, in memory, for the comparison
    jitter_without_smoothing: float | None = None  # the same frames with smoothing off
    marked_share: float | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, with_frames: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_frames:
            out.pop("frames")
        return out


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


def measure_pairs(analyzer, pairs, refs_a: np.ndarray, refs_b: np.ndarray, threshold: float) -> list[FrameMeasure]:
    """pairs: (index, input image, output image). Subject B is found in the input by identity."""
    out = []
    for index, before, after in pairs:
        found = [f for f in analyzer.analyze(before) if cosine_similarities(f.embedding, refs_b).max() >= threshold]
        if not found:
            continue
        face_in = found[0]
        face_out = _nearest(analyzer.analyze(after), face_in.bbox)
        if face_out is None or face_in.landmarks is None or face_out.landmarks is None:
            continue
        out.append(
            FrameMeasure(
                frame=index,
                sim_a=float(cosine_similarities(face_out.embedding, refs_a).max()),
                sim_b=float(cosine_similarities(face_out.embedding, refs_b).max()),
                mouth_in=mouth_ratio(face_in.landmarks, face_in.landmark_scheme),
                mouth_out=mouth_ratio(face_out.landmarks, face_out.landmark_scheme),
                kps_in=np.round(face_in.kps5, 2).tolist(),
                kps_out=np.round(face_out.kps5, 2).tolist(),
            )
        )
    return out


def jitter_of(measures: list[FrameMeasure], step: int) -> tuple[float | None, float | None]:
    """Mean frame-to-frame keypoint motion of the output beyond the input's, over the eye distance."""
    extra, own = [], []
    for prev, cur in zip(measures, measures[1:], strict=False):
        if cur.frame - prev.frame != step:
            continue
        d_in = np.array(cur.kps_in) - np.array(prev.kps_in)
        d_out = np.array(cur.kps_out) - np.array(prev.kps_out)
        eye = float(np.linalg.norm(np.array(cur.kps_in[1]) - np.array(cur.kps_in[0]))) or 1.0
        extra.append(float(np.linalg.norm(d_out - d_in, axis=1).mean()) / eye)
        own.append(float(np.linalg.norm(d_in, axis=1).mean()) / eye)
    if not extra:
        return None, None
    return float(np.mean(extra)), float(np.mean(own))


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
    threshold: float,
    truth: Path | None = None,
    every: int = 2,
    watermark_samples: int = 12,
) -> EvalReport:
    pairs = (
        (a.index, a.image, b.image)
        for a, b in zip(
            iter_video_frames(input_video, every=every), iter_video_frames(output_video, every=every), strict=False
        )
    )
    measures = measure_pairs(analyzer, pairs, refs_a, refs_b, threshold)
    report = EvalReport(frames_compared=len(measures))
    if measures:
        report.nearer_a_share = float(np.mean([m.sim_a > m.sim_b for m in measures]))
        report.identity_sim_a_mean = float(np.mean([m.sim_a for m in measures]))
        report.identity_sim_b_mean = float(np.mean([m.sim_b for m in measures]))
        report.mouth_correlation_input = _corr([m.mouth_in for m in measures], [m.mouth_out for m in measures])
        report.jitter, report.input_motion = jitter_of(measures, every)
        if truth is not None:
            rows = json.loads(Path(truth).read_text())["frames"]
            report.mouth_correlation_truth = _corr(
                [rows[m.frame]["mouth_ratio"] for m in measures], [m.mouth_out for m in measures]
            )
        report.frames = [asdict(m) for m in measures]
    report.marked_share = marked_share(output_video, watermark_samples)
    return report


def marked_share(video: Path, samples: int) -> float:
    """Each sampled frame checked on its own (stricter than the per-file decision of verify)."""
    from faceswap.media import probe_video
    from faceswap.provenance.watermark import Watermarker

    info = probe_video(video)
    every = max(1, (info.frames or samples) // samples)
    watermarker = Watermarker()
    results = [watermarker.detect([f.image]).marked for f in iter_video_frames(video, every=every, limit=samples)]
    return float(np.mean(results)) if results else 0.0


def jitter_comparison(
    swappers: dict[str, Any], input_video: Path, analyzer, refs_a, refs_b, threshold, frames: int = 50
):
    """Output jitter over the same consecutive frames for each swapper (e.g. smoothing on / off),
    computed in memory: nothing here is written to disk."""
    from faceswap.convert.pipeline import ConvertReport, FrameIn

    clip = [FrameIn(f.index, f.image) for f in iter_video_frames(input_video, limit=frames)]
    results = {}
    for name, swapper in swappers.items():
        scratch = ConvertReport("", "", "")
        outputs = []
        for start in range(0, len(clip), 8):
            outputs += swapper.process(clip[start : start + 8], scratch)
        pairs = ((f.index, f.image, out) for f, out, _ in outputs)
        results[name] = jitter_of(measure_pairs(analyzer, pairs, refs_a, refs_b, threshold), 1)[0]
    return results
