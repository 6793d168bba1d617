"""Audio for dubbing: read a track, find the offset between two recordings of the same timing, and
prepare the output's audio (the dub line, in the plate's timing).

Times are each file's own presentation times (seconds). The offset says where the performance is
relative to the plate: the performance frame shown at plate time t is the one at t + offset.

The offset is found by cross-correlating loudness envelopes (RMS in 10 ms hops): every lag within
reach scored by `lag_evidence`, the best refined to a fraction of a hop with a parabola through its
neighbours; first on envelopes smoothed over half a second, then on the raw ones near that lag (see
`find_offset`). The confidence is the Pearson correlation of the envelopes at the lag chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceswap.errors import BadInput
from faceswap.limits import OPERATOR, InputLimits
from faceswap.media import decoder_options

ENVELOPE_RATE = 100  # envelope values per second (10 ms hops)
READ_RATE = 16000  # enough for loudness
OUTPUT_RATE = 48000
MIN_CONFIDENCE = 0.3  # below this peak correlation an automatic offset is refused
MAX_OFFSET_SECONDS = 10.0
COARSE_WINDOW = ENVELOPE_RATE // 2  # half a second: phrasing, not syllables
SAME_RECORDING = 0.8  # 10 ms envelopes agreeing this well are one recording: offset to the sample
RIVAL_SHARE = 0.95  # a second peak of the coarse evidence this close to the best makes the match ambiguous


@dataclass(frozen=True)
class Track:
    """A mono track: samples[k] plays at start + k / rate."""

    samples: np.ndarray
    rate: int
    start: float

    @property
    def duration(self) -> float:
        return self.samples.size / self.rate


@dataclass(frozen=True)
class FoundOffset:
    seconds: float
    confidence: float  # Pearson correlation of the envelopes at that lag
    reference: str  # what the performance audio was matched against: "plate" | "audio"


def read_track(path: Path, rate: int = READ_RATE, limits: InputLimits = OPERATOR) -> Track | None:
    """The first audio stream mixed to mono at `rate`, or None when the file has none. The track is
    held whole, so its duration is checked against `limits` as declared and as decoded."""
    import av

    try:
        with av.open(str(path), options=decoder_options(limits)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if container.duration and container.duration > 0:
                limits.check_seconds(path, container.duration / 1_000_000)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, start = [], None
            for frame in container.decode(stream):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                if frame.time is not None and start is not None:
                    limits.check_time(path, float(frame.time) - start)
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.FFmpegError as error:
        raise BadInput(f"{path}: audio is unreadable ({error.strerror or error})") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return Track(samples, rate, start or 0.0)


def envelope(track: Track, rate: int = ENVELOPE_RATE) -> tuple[np.ndarray, float]:
    """RMS loudness per 1/rate seconds and the time of its first value."""
    hop = max(1, track.rate // rate)
    count = track.samples.size // hop
    frames = track.samples[: count * hop].reshape(count, hop).astype(np.float64)
    return np.sqrt((frames**2).mean(axis=1)), track.start


def lag_evidence(reference: np.ndarray, moving: np.ndarray, max_lag: int) -> dict[int, float]:
    """For each lag, the agreement of reference[k] with moving[k + lag]: the Pearson correlation of
    the overlap, weighted by the overlap's share of the shorter envelope, so a lag that leaves little
    overlap cannot win on a few matching values (a short overlap is an accident more often than a
    find). Lags whose overlap is under a quarter of the shorter envelope are not scored."""
    shorter = min(reference.size, moving.size)
    evidence = {}
    for lag in range(-max_lag, max_lag + 1):
        lo, hi = max(0, -lag), min(reference.size, moving.size - lag)
        if hi - lo >= max(3, shorter // 4):
            evidence[lag] = correlation_at(reference, moving, lag) * (hi - lo) / shorter
    return evidence


def correlation_at(reference: np.ndarray, moving: np.ndarray, lag: int) -> float:
    """Pearson correlation of the overlap at one lag: how well the chosen lag fits."""
    lo, hi = max(0, -lag), min(reference.size, moving.size - lag)
    x, y = reference[lo:hi] - reference[lo:hi].mean(), moving[lo + lag : hi + lag] - moving[lo + lag : hi + lag].mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 1e-12 else 0.0


def _best(scores: dict[int, float]) -> tuple[int, float]:
    """The best lag and its offset from there, in lags, by a parabola through its neighbours."""
    best = max(scores, key=scores.__getitem__)
    shift = 0.0
    if best - 1 in scores and best + 1 in scores:
        left, mid, right = scores[best - 1], scores[best], scores[best + 1]
        curvature = left - 2 * mid + right
        shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return best, shift


def _smoothed(values: np.ndarray, window: int) -> np.ndarray:
    return np.convolve(values, np.ones(window) / window, mode="same")


def find_offset(
    reference: Track, performance: Track, label: str, max_seconds: float = MAX_OFFSET_SECONDS
) -> FoundOffset:
    """The offset (performance time minus reference time) at which the two envelopes agree best.

    First over the 10 ms envelopes, kept when they agree closely at their best lag, as they do when
    both are one recording (the dub line given with --audio): offset to the sample. Otherwise over
    envelopes smoothed to half a second, which two different lines spoken in the same timing share
    (where the talking starts and pauses); refused when a second, distant lag fits about as well."""
    ref_env, ref_start = envelope(reference)
    perf_env, perf_start = envelope(performance)
    max_lag = int(max_seconds * ENVELOPE_RATE)
    fine = lag_evidence(ref_env, perf_env, max_lag)
    if not fine:
        raise BadInput("the recordings are too short to compare; give --offset SECONDS")
    lag, shift = _best(fine)
    confidence = correlation_at(ref_env, perf_env, lag)
    if confidence >= SAME_RECORDING:
        return FoundOffset(round(_seconds(lag + shift, perf_start, ref_start), 4), round(confidence, 4), label)
    ref_slow, perf_slow = _smoothed(ref_env, COARSE_WINDOW), _smoothed(perf_env, COARSE_WINDOW)
    coarse = lag_evidence(ref_slow, perf_slow, max_lag)
    lag, shift = _best(coarse)
    rival = _rival_peak(coarse, lag, ENVELOPE_RATE // 4)
    if rival is not None and coarse[rival] >= RIVAL_SHARE * coarse[lag]:
        raise BadInput(
            f"--offset auto: the audio matches about as well at {_seconds(lag, perf_start, ref_start):+.2f} s as at "
            f"{_seconds(rival, perf_start, ref_start):+.2f} s (the recordings share too little phrasing to tell); "
            "give --audio with the dub line, or --offset SECONDS"
        )
    confidence = correlation_at(ref_slow, perf_slow, lag)
    return FoundOffset(round(_seconds(lag + shift, perf_start, ref_start), 4), round(confidence, 4), label)


def _seconds(lag: float, perf_start: float, ref_start: float) -> float:
    return lag / ENVELOPE_RATE + perf_start - ref_start


def _rival_peak(scores: dict[int, float], best: int, reach: int) -> int | None:
    """The highest local maximum of `scores` more than `reach` lags from `best`, if any."""
    peaks = [
        k
        for k in scores
        if abs(k - best) > reach and scores[k] >= scores.get(k - 1, -np.inf) and scores[k] >= scores.get(k + 1, -np.inf)
    ]
    return max(peaks, key=scores.__getitem__) if peaks else None


def auto_offset(plate: Path, performance: Path, audio: Path | None, limits: InputLimits = OPERATOR) -> FoundOffset:
    """--offset auto: the performance's audio against the dub line (--audio) or else the plate's."""
    perf_track = read_track(performance, limits=limits)
    if perf_track is None:
        raise BadInput(f"{performance}: has no audio track, so --offset auto cannot work; give --offset SECONDS")
    reference = read_track(audio if audio is not None else plate, limits=limits)
    if reference is None:
        raise BadInput(f"{audio or plate}: has no audio track to find the offset with; give --offset SECONDS")
    found = find_offset(reference, perf_track, "audio" if audio is not None else "plate")
    if found.confidence < MIN_CONFIDENCE:
        raise BadInput(
            f"--offset auto: the audio envelopes agree only weakly (best correlation {found.confidence:.2f} at "
            f"{found.seconds:+.3f} s); check the recordings or give --offset SECONDS"
        )
    return found


def conform(track: Track, shift: float, duration: float | None) -> np.ndarray:
    """Samples for output times [0, duration): output time t plays the track at t + shift; silence
    where the track has nothing. Without a duration: until the track ends."""
    end = duration if duration is not None else track.start + track.duration - shift
    count = max(0, int(round(end * track.rate)))
    first = int(round((shift - track.start) * track.rate))
    out = np.zeros(count, np.float32)
    lo, hi = max(0, -first), min(count, track.samples.size - first)
    if hi > lo:
        out[lo:hi] = track.samples[first + lo : first + hi]
    return out


def output_audio(
    source: Path, shift: float, duration: float | None, folder: Path, limits: InputLimits = OPERATOR
) -> Path | None:
    """The dub line for the output as an AAC file in `folder`, or None when `source` has no audio.
    The sink copies it into the video as it copies any source's audio."""
    from faceswap.synthetic import write_input_audio

    track = read_track(source, OUTPUT_RATE, limits)
    if track is None:
        return None
    samples = conform(track, shift, duration)
    return write_input_audio(folder / "dub-line.m4a", samples, OUTPUT_RATE)
