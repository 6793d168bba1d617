"""insightface model pack backend (buffalo_l: SCRFD detector, 2d106 landmarks, ArcFace).

Packs are never downloaded here (`faceswap models fetch` does that, when asked): a missing or empty
pack is reported with where we looked and how to install it, instead of the bare AssertionError
insightface raises on an empty folder. Each ONNX file is routed by insightface's own shape-based
router, so packs with other file names work too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceswap.errors import MissingModel
from faceswap.faces.types import Face

BACKEND_NAME = "insightface"
DEFAULT_PACK = "buffalo_l"
INSTALL_HINT = (
    "run `faceswap models fetch insightface` (or unzip {pack}.zip from "
    "https://github.com/deepinsight/insightface/releases into {where}), pass --model-root DIR, or use --backend dlib"
)


def default_model_root() -> Path:
    return Path(os.environ.get("FACESWAP_INSIGHTFACE_ROOT", "~/.insightface")).expanduser()


def pack_dir(model_root: Path | None = None, pack: str = DEFAULT_PACK) -> Path:
    """The pack folder: ROOT/models/PACK (insightface's layout) or ROOT/PACK."""
    root = Path(model_root).expanduser() if model_root else default_model_root()
    for candidate in (root / "models" / pack, root / pack):
        if candidate.is_dir():
            return candidate
    return root / "models" / pack


def pack_available(model_root: Path | None = None, pack: str = DEFAULT_PACK) -> bool:
    return any(pack_dir(model_root, pack).glob("*.onnx"))


@dataclass(frozen=True)
class InsightfaceSettings:
    det_size: int = 640
    det_thresh: float = 0.5


class InsightfaceBackend:
    name = BACKEND_NAME
    landmark_scheme = "106"

    def __init__(
        self,
        model_root: Path | None = None,
        pack: str = DEFAULT_PACK,
        settings: InsightfaceSettings | None = None,
        providers: list[str] | None = None,
    ) -> None:
        self.settings = settings or InsightfaceSettings()
        folder = pack_dir(model_root, pack)
        files = sorted(folder.glob("*.onnx"))
        if not files:
            state = "is empty" if folder.is_dir() else "does not exist"
            raise MissingModel(
                f"insightface model pack '{pack}' not found: {folder} {state}; "
                + INSTALL_HINT.format(pack=pack, where=folder.parent)
            )
        import onnxruntime
        from insightface.model_zoo import model_zoo

        if providers is None:
            available = onnxruntime.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        ctx_id = 0 if "CUDAExecutionProvider" in providers else -1
        models: dict[str, object] = {}
        for path in files:
            model = model_zoo.get_model(str(path), providers=providers)
            if model is None:
                continue
            task = getattr(model, "taskname", None)
            if task in ("detection", "recognition", "landmark_2d_106") and task not in models:
                models[task] = model
        for task in ("detection", "recognition"):
            if task not in models:
                raise MissingModel(f"insightface model pack '{pack}' in {folder} has no {task} model")
        models["detection"].prepare(  # type: ignore[attr-defined]
            ctx_id,
            input_size=(self.settings.det_size, self.settings.det_size),
            det_thresh=self.settings.det_thresh,
        )
        self._detector = models["detection"]
        self._recognizer = models["recognition"]
        self._landmarker = models.get("landmark_2d_106")
        self.model_name = f"{pack}/{Path(self._recognizer.model_file).stem}"  # type: ignore[attr-defined]
        self.pack_dir = folder

    def analyze(self, image_bgr: np.ndarray) -> list[Face]:
        from insightface.app.common import Face as InsightFace

        size = (self.settings.det_size, self.settings.det_size)
        boxes, kpss = self._detector.detect(image_bgr, input_size=size)  # type: ignore[attr-defined]
        faces: list[Face] = []
        for i in range(boxes.shape[0]):
            kps = kpss[i] if kpss is not None else None
            if kps is None:
                continue
            record = InsightFace(bbox=boxes[i, :4], kps=kps, det_score=float(boxes[i, 4]))
            landmarks = None
            if self._landmarker is not None:
                landmarks = np.asarray(self._landmarker.get(image_bgr, record), dtype=np.float32)  # type: ignore[attr-defined]
            embedding = np.asarray(self._recognizer.get(image_bgr, record), dtype=np.float32).ravel()  # type: ignore[attr-defined]
            faces.append(
                Face(
                    bbox=boxes[i, :4].astype(np.float32),
                    score=float(boxes[i, 4]),
                    kps5=np.asarray(kps, dtype=np.float32),
                    embedding=embedding / max(float(np.linalg.norm(embedding)), 1e-12),
                    backend=self.name,
                    landmarks=landmarks,
                    landmark_scheme=self.landmark_scheme if landmarks is not None else None,
                )
            )
        return faces
