"""`faceswap eval --dub`: is a re-voiced shot right? Measured on the written output, frame by frame.

- lip sync: the output's mouth opening (landmarks of the face backend, as `faceswap eval` measures it)
  against the performance's at the same time (its truth.json, else measured on the performance), and
  against the plate's own, which it must no longer follow;
- audio-visual sync: the lag, in frames, at which the output's mouth opening and the loudness of its
  own audio track (the dub line) agree best;
- identity: the output face nearer A than B (on key frames, where the embedding is computed afresh);
- seam: gradient energy in a thin band along the region's edge, output over plate at the same pixels
  (a pasted box shows as an edge the plate does not have);
- the rest of the plate: PSNR of the output against the plate outside the region (with a margin for
  the feathering), which only the watermark and the re-encoding move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.eval.metrics import marked_share, mouth_ratio, truth_frames
from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.tracking import FaceTracker
from faceswap.faces.types import Face
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.media import iter_video_frames, probe_video

LIP_SYNC_MIN = 0.85
LIP_SYNC_MARGIN = 0.3  # "clearly above" the correlation with the plate's own mouth
AV_LAG_MAX = 1  # frames
SEAM_MAX = 1.5
MAX_AV_LAG = 6  # frames searched either way
BAND = 2  # pixels either side of the region's edge
OUTSIDE_MARGIN = 1.0  # eye-to-mouth distances around the region left out of "outside"
DETECT_EVERY = 4  # key frames (identity) every N frames while measuring


@dataclass
class DubEval:
    frames: int = 0
    frames_measured: int = 0  # A found in the plate frame and a face at the same place in the output
    offset_s: float = 0.0
    region: str = "mouth"
    lip_sync_reference: str = "truth"  # truth | measured
    lip_sync_performance: float | None = None
    lip_sync_plate: float | None = None
    av_sync_lag_frames: int | None = None
    av_sync_correlation: float | None = None
    identity_frames: int = 0
    nearer_a_share: float | None = None
    identity_sim_a_mean: float | None = None
    identity_sim_b_mean: float | None = None
    seam_ratio: float | None = None  # output over plate, summed over frames
    seam_ratio_worst_decile: float | None = None  # 90th percentile of the per-frame ratios
    psnr_outside_db: float | None = None
    psnr_inside_db: float | None = None  # for reference: the region itself is new
    marked_share: float | None = None
    passed: dict[str, bool] = field(default_factory=dict)
    series: dict[str, list] = field(default_factory=dict)

    def to_json(self, with_series: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_series:
            out.pop("series")
        return out

    def judge(self) -> None:
        """The issue's bars, each one a named yes or no."""
        lip, plate = self.lip_sync_performance, self.lip_sync_plate
        self.passed = {
            "lip_sync": lip is not None and lip >= LIP_SYNC_MIN,
            "lip_sync_above_plate": lip is not None and (plate is None or lip - plate >= LIP_SYNC_MARGIN),
            "av_sync": self.av_sync_lag_frames is not None and abs(self.av_sync_lag_frames) <= AV_LAG_MAX,
            "identity": self.nearer_a_share is not None and self.nearer_a_share >= 0.9,
            "seam": self.seam_ratio is not None and self.seam_ratio <= SEAM_MAX,
        }

    def lines(self) -> list[str]:
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        return [
            f"lip sync: mouth opening vs the performance's ({self.lip_sync_reference}) {fmt(self.lip_sync_performance)}"
            f", vs the plate's own {fmt(self.lip_sync_plate)} ({self.frames_measured} frames, offset "
            f"{self.offset_s:+.3f} s)",
            f"audio-visual sync: best lag {self.av_sync_lag_frames} frame(s) "
            f"(correlation {fmt(self.av_sync_correlation)})",
            f"identity: nearer A in {fmt(self.nearer_a_share)} of {self.identity_frames} key frames "
            f"(mean sim A {fmt(self.identity_sim_a_mean)}, B {fmt(self.identity_sim_b_mean)})",
            f"seam: gradient energy along the region's edge {fmt(self.seam_ratio)}x the plate's "
            f"(worst decile {fmt(self.seam_ratio_worst_decile)}x)",
            f"outside the region: PSNR {fmt(self.psnr_outside_db)} dB vs the plate "
            f"(inside {fmt(self.psnr_inside_db)} dB)",
            f"frames marked when re-verified one by one: {fmt(self.marked_share)}",
            "bars: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in self.passed.items()),
        ]


@dataclass
class _Sums:
    """Running totals over the measured frames."""

    mouth_out: list[float] = field(default_factory=list)
    mouth_plate: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    frame_index: list[int] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)  # the output face's, on key frames
    seam_out: list[float] = field(default_factory=list)
    seam_plate: list[float] = field(default_factory=list)
    outside: list[float] = field(default_factory=lambda: [0.0, 0.0])  # squared error, pixels
    inside: list[float] = field(default_factory=lambda: [0.0, 0.0])


def _largest(faces: list[Face]) -> Face | None:
    usable = [f for f in faces if f.landmarks is not None and f.landmark_scheme is not None]
    return max(usable, key=lambda f: float(f.bbox[2] - f.bbox[0]), default=None)


def _nearest(faces: list[Face], face: Face) -> Face | None:
    centre = (face.bbox[:2] + face.bbox[2:]) / 2
    size = float(max(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]))
    usable = [f for f in faces if f.landmarks is not None]
    best = min(usable, key=lambda f: float(np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre)), default=None)
    if best is None or np.linalg.norm((best.bbox[:2] + best.bbox[2:]) / 2 - centre) > 0.5 * size:
        return None
    return best


def _gradient_energy(image: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) ** 2 + cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) ** 2


def measure_frame(sums: _Sums, plate: np.ndarray, output: np.ndarray, a: Face, out: Face, region: str) -> None:
    """Seam and PSNR at the region both faces define, as the dub drew it."""
    import cv2

    from faceswap.convert.dub import _dilate, region_mask
    from faceswap.faces.align import eye_to_mouth

    assert a.landmarks is not None and out.landmarks is not None and a.landmark_scheme is not None
    mask = region_mask([(a.landmarks, a.kps5), (out.landmarks, out.kps5)], a.landmark_scheme, region, plate.shape[:2])
    kernel = np.ones((2 * BAND + 1, 2 * BAND + 1), np.uint8)
    band = (cv2.dilate(mask, kernel) - cv2.erode(mask, kernel)) > 0.5
    sums.seam_out.append(float(_gradient_energy(output)[band].mean()))
    sums.seam_plate.append(float(_gradient_energy(plate)[band].mean()))
    error = ((output.astype(np.float32) - plate.astype(np.float32)) ** 2).mean(axis=2)
    outside = _dilate(mask, OUTSIDE_MARGIN * eye_to_mouth(a.kps5)) < 0.5
    sums.outside[0] += float(error[outside].sum())
    sums.outside[1] += float(outside.sum())
    sums.inside[0] += float(error[mask > 0.5].sum())
    sums.inside[1] += float((mask > 0.5).sum())


def _psnr(totals: list[float]) -> float | None:
    if totals[1] == 0:
        return None
    mse = totals[0] / totals[1]
    return round(float(10 * np.log10(255.0**2 / mse)), 2) if mse > 0 else float("inf")


def _corr(x: list[float], y: list[float]) -> float | None:
    x_arr, y_arr = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x_arr) & np.isfinite(y_arr)
    if keep.sum() < 3 or x_arr[keep].std() < 1e-9 or y_arr[keep].std() < 1e-9:
        return None
    return round(float(np.corrcoef(x_arr[keep], y_arr[keep])[0, 1]), 4)


def track_video(analyzer, matcher: IdentityMatcher, plate: Path, output: Path, region: str) -> tuple[_Sums, int]:
    """Follow A through the plate and the face at the same place through the output, frame by frame."""
    from faceswap.convert.dub import frame_time
    from faceswap.convert.source import FrameIn

    fps = float(probe_video(plate).fps)
    plate_tracker = FaceTracker(analyzer, matcher, DETECT_EVERY)
    out_tracker = FaceTracker(analyzer, matcher, DETECT_EVERY)
    sums, frames = _Sums(), 0
    for p, o in zip(iter_video_frames(plate), iter_video_frames(output), strict=False):
        frames += 1
        a = _largest([s.face for s in plate_tracker.step(p.image) if s.is_subject])
        keys = out_tracker.key_frames
        seen = out_tracker.step(o.image)
        out = _nearest([s.face for s in seen], a) if a is not None else None
        if a is None or out is None:
            continue
        sums.times.append(frame_time(FrameIn(p.index, p.image, p.pts, p.time_base), fps))
        sums.frame_index.append(p.index)
        sums.mouth_out.append(mouth_ratio(out.landmarks, out.landmark_scheme))
        sums.mouth_plate.append(mouth_ratio(a.landmarks, a.landmark_scheme))
        if out_tracker.key_frames > keys:
            sums.embeddings.append(out.embedding)
        measure_frame(sums, p.image, o.image, a, out, region)
    return sums, frames


def performance_mouth(analyzer, refs_b: np.ndarray, performance: Path) -> dict[float, float]:
    """The performance's mouth opening by time, measured (when it has no truth)."""
    from faceswap.convert.dub import frame_time
    from faceswap.convert.source import FrameIn

    fps = float(probe_video(performance).fps)
    tracker = FaceTracker(analyzer, IdentityMatcher(refs_b, analyzer.name), DETECT_EVERY)
    found = {}
    for f in iter_video_frames(performance):
        b = _largest([s.face for s in tracker.step(f.image) if s.is_subject])
        if b is not None:
            found[frame_time(FrameIn(f.index, f.image, f.pts, f.time_base), fps)] = mouth_ratio(
                b.landmarks, b.landmark_scheme
            )
    return found


def _at(rows: dict[float, float], t: float, fps: float) -> float:
    """The value at the sample nearest `t`, NaN when none is within half a frame."""
    if not rows:
        return float("nan")
    keys = np.fromiter(rows.keys(), np.float64)
    nearest = float(keys[np.abs(keys - t).argmin()])
    return rows[nearest] if abs(nearest - t) <= 0.5 / fps + 1e-6 else float("nan")


def _truth_by_time(truth: Path) -> dict[float, float]:
    rows = truth_frames(truth) or []
    return {float(r["time"]): float(r["mouth_ratio"]) for r in rows}


def av_sync(output: Path, times: list[float], mouth: list[float], fps: float) -> tuple[int | None, float | None]:
    """The lag (frames; positive: the sound comes later) at which loudness and mouth opening agree best."""
    from faceswap.convert.dub_audio import read_track

    track = read_track(output)
    if track is None or len(times) < 3:
        return None, None
    half = int(track.rate * 0.5 / fps)
    loudness = []
    for t in times:
        centre = int(round((t - track.start) * track.rate))
        window = track.samples[max(0, centre - half) : max(0, centre + half)]
        loudness.append(float(np.sqrt((window.astype(np.float64) ** 2).mean())) if window.size else float("nan"))
    step = 1.0 / fps
    by_time = dict(zip(np.round(np.asarray(times) / step).astype(int).tolist(), loudness, strict=True))
    scores = {}
    for lag in range(-MAX_AV_LAG, MAX_AV_LAG + 1):
        keys = [round(t / step) for t in times]
        shifted = [by_time.get(k + lag, float("nan")) for k in keys]
        score = _corr(mouth, shifted)
        if score is not None:
            scores[lag] = score
    if not scores:
        return None, None
    best = max(scores, key=scores.__getitem__)
    return best, scores[best]


def evaluate_dub(
    analyzer,
    plate: Path,
    output: Path,
    refs_a: np.ndarray,
    refs_b: np.ndarray,
    offset: float,
    region: str,
    plate_truth: Path | None = None,
    performance_truth: Path | None = None,
    performance: Path | None = None,
    watermark_samples: int = 12,
    marks: WatermarkKeys | None = None,
) -> DubEval:
    subject_a, subject_b = IdentityMatcher(refs_a, analyzer.name), IdentityMatcher(refs_b, analyzer.name)
    fps = float(probe_video(plate).fps)
    sums, frames = track_video(analyzer, subject_a, plate, output, region)
    report = DubEval(frames=frames, frames_measured=len(sums.times), offset_s=offset, region=region)
    if performance_truth is not None:
        reference = _truth_by_time(performance_truth)
    elif performance is not None:
        reference, report.lip_sync_reference = performance_mouth(analyzer, refs_b, performance), "measured"
    else:
        reference, report.lip_sync_reference = {}, "none"
    wanted = [_at(reference, t + offset, fps) for t in sums.times]
    own = [_at(_truth_by_time(plate_truth), t, fps) for t in sums.times] if plate_truth else sums.mouth_plate
    report.lip_sync_performance = _corr(sums.mouth_out, wanted)
    report.lip_sync_plate = _corr(sums.mouth_out, own)
    report.av_sync_lag_frames, report.av_sync_correlation = av_sync(output, sums.times, sums.mouth_out, fps)
    if sums.embeddings:
        sims = [(subject_a.similarity(e), subject_b.similarity(e)) for e in sums.embeddings]
        report.identity_frames = len(sims)
        report.nearer_a_share = round(float(np.mean([a > b for a, b in sims])), 4)
        report.identity_sim_a_mean = round(float(np.mean([a for a, _ in sims])), 4)
        report.identity_sim_b_mean = round(float(np.mean([b for _, b in sims])), 4)
    if sums.seam_plate:
        report.seam_ratio = round(float(np.sum(sums.seam_out) / max(np.sum(sums.seam_plate), 1e-9)), 4)
        ratios = np.asarray(sums.seam_out) / np.maximum(np.asarray(sums.seam_plate), 1e-9)
        report.seam_ratio_worst_decile = round(float(np.percentile(ratios, 90)), 4)
    report.psnr_outside_db, report.psnr_inside_db = _psnr(sums.outside), _psnr(sums.inside)
    report.marked_share = marked_share(output, watermark_samples, marks)
    report.series = {
        "frame": sums.frame_index,
        "mouth_out": sums.mouth_out,
        "mouth_performance": wanted,
        "mouth_plate": own,
    }
    report.judge()
    return report


def recorded_dub(store, output: Path) -> dict[str, Any]:
    """The settings of the `output.written` entry (producer dub) whose file hash is the output's."""
    from faceswap.errors import BadInput
    from faceswap.hashing import file_sha256

    digest = file_sha256(output)
    for entry in reversed(store.ledger.entries("output.written")):
        if entry.data.get("sha256") == digest and entry.data.get("producer") == "dub":
            return dict(entry.data.get("settings") or {})
    raise BadInput(f"{output}: no dub in this workspace's ledger wrote this file; give --offset and --region")


def run_dub_eval(
    store,
    model_dir: Path,
    plate: Path,
    output: Path,
    performance: Path | None = None,
    plate_truth: Path | None = None,
    performance_truth: Path | None = None,
    offset: float | None = None,
    region: str | None = None,
) -> DubEval:
    """Measure a dub's output; the offset and region come from its ledger entry unless given."""
    from faceswap.convert.model_io import load_model
    from faceswap.faces.analyzer import FaceAnalyzer

    model = load_model(store, model_dir)
    grant = model.grant
    snapshot = store.load()
    record_a = snapshot.by_id(grant.record_for(grant.subject_a).record_id)
    record_b = snapshot.by_id(grant.record_for(grant.subject_b).record_id)
    if offset is None or region is None:
        recorded = recorded_dub(store, output)
        offset = float(recorded.get("offset_s", 0.0)) if offset is None else offset
        region = str(recorded.get("region", "mouth")) if region is None else region
    analyzer = FaceAnalyzer(record_a.backend)
    return evaluate_dub(
        analyzer,
        plate,
        output,
        record_a.reference_embeddings,
        record_b.reference_embeddings,
        offset,
        region,
        plate_truth,
        performance_truth,
        performance,
        marks=model.marks,
    )
