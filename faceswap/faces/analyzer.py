"""FaceAnalyzer: one entry point over the backends; `auto` prefers insightface when its pack exists."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from faceswap.errors import BadInput
from faceswap.faces.types import Face

BACKENDS = ("auto", "insightface", "dlib")


class FaceBackend(Protocol):
    """What a backend implements; adding a backend means adding one module with this class. A
    backend may also offer `refit(image, box, previous) -> Face` so faces can be tracked between
    detections (dlib does; insightface detects every frame, which a GPU makes cheap)."""

    name: str
    model_name: str
    landmark_scheme: str

    def analyze(self, image_bgr: np.ndarray) -> list[Face]: ...


class FaceAnalyzer:
    def __init__(self, backend: str = "auto", model_root: Path | None = None, min_face: int = 40) -> None:
        if backend not in BACKENDS:
            raise BadInput(f"unknown face backend '{backend}' (choose from {', '.join(BACKENDS)})")
        self.requested = backend
        self.min_face = min_face
        self.backend: FaceBackend = _load_backend(backend, model_root, min_face)
        self.reason = _reason(backend, self.backend, model_root)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    def analyze(self, image_bgr: np.ndarray) -> list[Face]:
        _check_image(image_bgr)
        faces = self.backend.analyze(image_bgr)
        return [f for f in faces if min(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) >= self.min_face * 0.8]

    @property
    def can_refit(self) -> bool:
        """Whether this backend can follow a face between detections (faces/tracking.py)."""
        return hasattr(self.backend, "refit")

    def refit(self, image_bgr: np.ndarray, box: np.ndarray, previous: Face) -> Face:
        """Landmarks fitted again in `box` for a tracked face; it keeps `previous`'s embedding."""
        _check_image(image_bgr)
        return self.backend.refit(image_bgr, box, previous)  # type: ignore[attr-defined]


def _check_image(image_bgr: np.ndarray) -> None:
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise BadInput(f"expected a uint8 BGR image, got shape {image_bgr.shape} dtype {image_bgr.dtype}")


def _load_backend(backend: str, model_root: Path | None, min_face: int) -> FaceBackend:
    from faceswap.faces import insightface_backend

    if backend == "insightface" or (backend == "auto" and insightface_backend.pack_available(model_root)):
        return insightface_backend.InsightfaceBackend(model_root)
    from faceswap.faces.dlib_backend import DlibBackend, DlibSettings

    return DlibBackend(DlibSettings(min_face=min_face))


def _reason(requested: str, backend: FaceBackend, model_root: Path | None) -> str:
    if requested != "auto":
        return f"face backend: {backend.name} (requested)"
    if backend.name == "insightface":
        return f"face backend: insightface (auto: model pack found in {getattr(backend, 'pack_dir', '?')})"
    from faceswap.faces.insightface_backend import pack_dir

    return f"face backend: dlib (auto: no insightface pack in {pack_dir(model_root)})"
