"""The face record every backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One detected face in image pixel coordinates.

    kps5 order: subject's right eye (image left), left eye, nose tip, right and left mouth corner,
    the order insightface and the alignment template use.
    """

    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    kps5: np.ndarray  # (5, 2)
    embedding: np.ndarray  # (D,) L2-normalised
    backend: str
    landmarks: np.ndarray | None = None  # (N, 2) dense landmarks, scheme named by landmark_scheme
    landmark_scheme: str | None = None  # "68" (dlib/iBUG) or "106" (insightface 2d106)
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "kps": [[round(float(x), 2), round(float(y), 2)] for x, y in self.kps5],
            "backend": self.backend,
            "embedding_dim": int(self.embedding.shape[0]),
        }
        if self.landmarks is not None:
            out["landmarks"] = len(self.landmarks)
        return out
