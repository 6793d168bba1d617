"""Per-face tracks and One-Euro filtering of keypoints, so a swapped face does not jitter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class OneEuroFilter:
    """Casiez et al. 2012: low-pass whose cutoff rises with speed (smooth when still, quick when moving)."""

    min_cutoff: float = 3.0
    beta: float = 0.1
    d_cutoff: float = 1.0
    _x: np.ndarray | None = None
    _dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        if self._x is None:
            self._x, self._dx = x.astype(np.float64), np.zeros_like(x, dtype=np.float64)
            return x
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * float(np.abs(self._dx).mean())
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.astype(x.dtype)


@dataclass
class Track:
    track_id: int
    center: np.ndarray
    size: float
    last_frame: int
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)


class KeypointSmoother:
    """Associates faces to tracks by centre distance and smooths each track's keypoints."""

    def __init__(self, fps: float, enabled: bool = True, min_cutoff: float = 3.0, beta: float = 0.1) -> None:
        self.dt = 1.0 / max(fps, 1e-3)
        self.enabled = enabled
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []
        self._next = 0

    def __call__(self, frame: int, bbox: np.ndarray, kps: np.ndarray) -> tuple[int, np.ndarray]:
        center = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2])
        size = float(max(bbox[2] - bbox[0], bbox[3] - bbox[1]))
        live = [t for t in self.tracks if frame - t.last_frame <= 5]
        best = min(live, key=lambda t: float(np.linalg.norm(t.center - center)), default=None)
        if (
            best is None
            or np.linalg.norm(best.center - center) > 0.5 * max(size, best.size)
            or best.last_frame == frame
        ):
            best = Track(self._next, center, size, frame, OneEuroFilter(self.min_cutoff, self.beta))
            self._next += 1
            self.tracks.append(best)
        gap = max(1, frame - best.last_frame)
        best.center, best.size, best.last_frame = center, size, frame
        if not self.enabled:
            return best.track_id, kps
        return best.track_id, best.filter(np.asarray(kps, np.float64), self.dt * gap).astype(np.float32)
