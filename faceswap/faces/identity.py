"""Identity binding: does a face belong to a subject? Cosine similarity against reference embeddings.

Thresholds are per backend (embeddings of different backends never mix) and come from
`scripts/calibrate_identity.py`; docs/identity.md holds the measured table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceswap.errors import BadInput


@dataclass(frozen=True)
class IdentityThreshold:
    backend: str
    cosine: float
    source: str


THRESHOLDS: dict[str, IdentityThreshold] = {
    # dlib's 128-d descriptors, L2-normalised. Raw descriptors have norm ~1.5, so cos 0.93 is about
    # euclidean 0.56 (dlib suggests 0.6). Measured: same person >= 0.984, different people <= 0.922.
    "dlib": IdentityThreshold("dlib", 0.93, "scripts/calibrate_identity.py, docs/identity.md"),
    # ArcFace (buffalo_l w600k_r50): insightface's customary verification cut; not measured here
    # because no pack can be downloaded on this machine; rerun the calibration script where one exists.
    "insightface": IdentityThreshold("insightface", 0.35, "insightface verification practice"),
}


def threshold_for(backend: str) -> float:
    if backend not in THRESHOLDS:
        raise BadInput(f"no identity threshold for backend '{backend}'")
    return THRESHOLDS[backend].cosine


def cosine_similarities(embedding: np.ndarray, references: np.ndarray) -> np.ndarray:
    refs = np.atleast_2d(np.asarray(references, dtype=np.float32))
    emb = np.asarray(embedding, dtype=np.float32).ravel()
    if refs.shape[1] != emb.shape[0]:
        raise BadInput(
            f"embedding of size {emb.shape[0]} cannot be compared to references of size {refs.shape[1]}"
            " (different backends)"
        )
    refs = refs / np.linalg.norm(refs, axis=1, keepdims=True)
    return refs @ (emb / np.linalg.norm(emb))


@dataclass(frozen=True)
class IdentityMatcher:
    """Whether faces belong to one subject: the one place a similarity meets a threshold
    (extraction keeps them, conversion swaps them, eval measures on them)."""

    references: np.ndarray
    backend: str

    @property
    def threshold(self) -> float:
        return threshold_for(self.backend)

    def similarity(self, embedding: np.ndarray) -> float:
        """The best cosine similarity to any reference: one good reference photo is enough."""
        return float(cosine_similarities(embedding, self.references).max())

    def matches(self, embedding: np.ndarray) -> bool:
        return self.similarity(embedding) >= self.threshold
