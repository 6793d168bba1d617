"""Face tracks and zero-lag keypoint smoothing, so a swapped face does not jitter.

Conversion is offline, so the smoother may look ahead: each face's keypoints become a local
polynomial fit over its own track's detections a few frames either side (Savitzky-Golay when the
frames are evenly spaced). Detector noise averages out, while real head motion up to constant
acceleration passes through without the lag a causal filter (One-Euro, exponential) adds; on fast
motion that lag shows as the swapped face trailing the head. Frames wait until `radius` later frames
have been analysed (or the input ends), which costs a few frames of memory, not a second pass.

Each keypoint has its own window. The mouth corners move with speech, and a detector's corners
also drift as the mouth opens; fitted over the eyes' window they would pull the swap's mouth off
the target's own, which `--mask mouth` must keep, so they get a short one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from faceswap.faces.types import Face

T = TypeVar("T")

MAX_GAP = 5  # frames a track survives without a detection


@dataclass
class TrackedFace:
    """One detected face, its track, and (once smoothed) the keypoints the swap aligns to."""

    frame: int
    track_id: int
    face: Face
    kps: np.ndarray


@dataclass
class _Track:
    track_id: int
    center: np.ndarray
    size: float
    last_frame: int
    members: deque = field(default_factory=deque)  # TrackedFace, oldest first


def local_fit(times: np.ndarray, values: np.ndarray, at: float, degree: int) -> np.ndarray:
    """Least-squares polynomial through (times, values) evaluated at `at`, on every value column;
    the degree drops when there are too few points (track starts, ends and gaps)."""
    degree = min(degree, len(times) - 1)
    if degree <= 0:
        return values.mean(axis=0)
    design = np.vander(times - at, degree + 1, increasing=True)
    flat = values.reshape(len(times), -1)
    coef, *_ = np.linalg.lstsq(design, flat, rcond=None)
    return coef[0].reshape(values.shape[1:])


@dataclass
class _Pending(Generic[T]):
    item: T
    frame: int
    faces: list[TrackedFace]


class KeypointSmoother(Generic[T]):
    """Associates faces to tracks by centre distance and releases each frame, with smoothed
    keypoints, once `radius` frames after it have been pushed. `radii[k]` frames either side are
    fitted for keypoint k (default: `radius` for all); 0 leaves a keypoint as detected."""

    def __init__(self, radius: int = 3, degree: int = 2, radii: tuple[int, ...] | None = None) -> None:
        self.radii = radii if radii is not None else (radius,) * 5
        self.radius, self.degree = max(self.radii), degree
        self.tracks: list[_Track] = []
        self.pending: deque[_Pending[T]] = deque()
        self._next_id = 0

    def _track_for(self, frame: int, bbox: np.ndarray) -> _Track:
        center = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], np.float64)
        size = float(max(bbox[2] - bbox[0], bbox[3] - bbox[1]))
        live = [t for t in self.tracks if frame - t.last_frame <= MAX_GAP and t.last_frame != frame]
        best = min(live, key=lambda t: float(np.linalg.norm(t.center - center)), default=None)
        if best is None or np.linalg.norm(best.center - center) > 0.5 * max(size, best.size):
            best = _Track(self._next_id, center, size, frame)
            self._next_id += 1
            self.tracks.append(best)
        best.center, best.size, best.last_frame = center, size, frame
        return best

    def push(self, item: T, frame: int, faces: list[Face]) -> list[tuple[T, list[TrackedFace]]]:
        """Add a frame's faces (each with .bbox and .kps5); returns the frames now ready."""
        tracked = []
        for face in faces:
            track = self._track_for(frame, face.bbox)
            member = TrackedFace(frame, track.track_id, face, np.asarray(face.kps5, np.float32))
            track.members.append(member)
            tracked.append(member)
        self.pending.append(_Pending(item, frame, tracked))
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= MAX_GAP + self.radius]
        ready = []
        while self.pending and frame - self.pending[0].frame >= self.radius:
            ready.append(self._release(self.pending.popleft()))
        return ready

    def flush(self) -> list[tuple[T, list[TrackedFace]]]:
        """The input ended: the last frames are smoothed with what exists."""
        return [self._release(self.pending.popleft()) for _ in range(len(self.pending))]

    def _release(self, pending: _Pending[T]) -> tuple[T, list[TrackedFace]]:
        for member in pending.faces:
            track = next((t for t in self.tracks if t.track_id == member.track_id), None)
            if track is None or self.radius == 0:
                continue
            while track.members and track.members[0].frame < pending.frame - self.radius:
                track.members.popleft()
            times = np.array([m.frame for m in track.members], np.float64)
            raw = np.stack([np.asarray(m.face.kps5, np.float64) for m in track.members])
            smoothed = np.asarray(member.face.kps5, np.float64).copy()
            for radius in set(self.radii) - {0}:
                points = [k for k, r in enumerate(self.radii) if r == radius]
                near = np.abs(times - pending.frame) <= radius
                smoothed[points] = local_fit(times[near], raw[near][:, points], float(pending.frame), self.degree)
            member.kps = smoothed.astype(np.float32)
        return pending.item, pending.faces
