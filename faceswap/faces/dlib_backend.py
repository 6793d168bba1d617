"""Offline backend: dlib HOG detector, 68-point shape predictor and the 128-d ResNet embedding.

Every weight file ships inside the `face-recognition-models` wheel, so this backend works on a
machine with nothing but PyPI packages. The package's own `__init__` imports `pkg_resources`, which
setuptools >= 81 no longer has, so its files are located without importing it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceswap.errors import MissingModel
from faceswap.faces.types import Face

BACKEND_NAME = "dlib"
MODEL_NAME = "dlib_face_recognition_resnet_model_v1"

# iBUG 68-point indices that make the 5 alignment keypoints (image-left eye first).
_RIGHT_EYE = slice(36, 42)
_LEFT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_RIGHT = 48
_MOUTH_LEFT = 54
_EYES = slice(36, 48)
_LIPS = slice(48, 68)


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingModel("dlib backend: package face-recognition-models is not installed (pip install it)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def kps5_from_68(landmarks: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            landmarks[_RIGHT_EYE].mean(axis=0),
            landmarks[_LEFT_EYE].mean(axis=0),
            landmarks[_NOSE_TIP],
            landmarks[_MOUTH_RIGHT],
            landmarks[_MOUTH_LEFT],
        ]
    ).astype(np.float32)


def eyes_and_lips(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centres of the 68 layout's eye points and of its lip points: the eye-to-mouth axis the demo
    draws its faces and occluders by and `faceswap eval` measures a mouth's opening against."""
    pts = np.asarray(landmarks)
    return pts[_EYES].mean(axis=0), pts[_LIPS].mean(axis=0)


HOG_WINDOW = 80  # dlib's frontal detector finds faces of about this size and larger


@dataclass(frozen=True)
class DlibSettings:
    min_score: float = 0.2  # HOG SVM margin; weaker hits are mostly texture (measured: astronaut 0.12)
    detect_max_side: int = 1280  # larger frames are scaled down for detection (HOG cost ~ pixels)
    min_face: int = 40  # smallest face to find, in pixels; larger values let detection run smaller

    def detection_scale(self, image_max_side: int) -> tuple[float, int]:
        """(scale, upsample): the cheapest pyramid that still sees faces of `min_face` pixels."""
        if self.min_face >= HOG_WINDOW:
            scale, upsample = HOG_WINDOW / self.min_face, 0
        else:
            scale, upsample = min(1.0, HOG_WINDOW / 2 / max(self.min_face, 1)), 1
        return min(scale, self.detect_max_side / image_max_side), upsample


class DlibBackend:
    name = BACKEND_NAME
    model_name = MODEL_NAME
    landmark_scheme = "68"

    def __init__(self, settings: DlibSettings | None = None) -> None:
        import dlib

        self.settings = settings or DlibSettings()
        root = models_dir()
        paths = {
            "shape68": root / "shape_predictor_68_face_landmarks.dat",
            "resnet": root / f"{MODEL_NAME}.dat",
        }
        for path in paths.values():
            if not path.is_file():
                raise MissingModel(f"dlib backend: weights file {path} is missing; reinstall face-recognition-models")
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(paths["shape68"]))
        self._encoder = dlib.face_recognition_model_v1(str(paths["resnet"]))
        self._dlib = dlib

    def analyze(self, image_bgr: np.ndarray) -> list[Face]:
        import cv2

        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        scale, upsample = self.settings.detection_scale(max(rgb.shape[:2]))
        small = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        faces: list[Face] = []
        for rect, score in zip(rects, scores, strict=True):
            if score < self.settings.min_score:
                continue
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32) / scale
            shape = self._fit(rgb, box)
            descriptor = np.asarray(self._encoder.compute_face_descriptor(rgb, shape), dtype=np.float32)
            faces.append(self._face(box, float(score), shape, descriptor / np.linalg.norm(descriptor)))
        faces.sort(key=lambda f: -f.score)
        return faces

    def refit(self, image_bgr: np.ndarray, box: np.ndarray, previous: Face) -> Face:
        """Landmarks fitted again inside `box` (a tracked face's predicted box), without detection
        or a new embedding: the track keeps the embedding it was identified by."""
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        return self._face(np.asarray(box, np.float32), previous.score, self._fit(rgb, box), previous.embedding)

    def _fit(self, rgb: np.ndarray, box: np.ndarray):
        left, top, right, bottom = (int(round(float(v))) for v in box)
        return self._shape(rgb, self._dlib.rectangle(left, top, right, bottom))

    def _face(self, box: np.ndarray, score: float, shape, embedding: np.ndarray) -> Face:
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return Face(
            bbox=np.round(box).astype(np.float32),
            score=score,
            kps5=kps5_from_68(landmarks),
            embedding=embedding,
            backend=self.name,
            landmarks=landmarks,
            landmark_scheme=self.landmark_scheme,
        )
