"""`faceswap faces detect`: the faces an analyzer finds in one image, as a report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.faces.types import Face
from faceswap.limits import OPERATOR, InputLimits
from faceswap.media import read_image
from faceswap.report import Report


@dataclass
class Detected(Report):
    image: Path
    backend: str
    model: str
    reason: str  # why this backend: said beside the faces, not among them
    faces: list[Face]

    def to_json(self) -> dict[str, Any]:
        faces = [face.to_json() for face in self.faces]
        return {"image": str(self.image), "backend": self.backend, "model": self.model, "faces": faces}

    def lines(self) -> list[str]:
        out = [f"{self.image}: {len(self.faces)} face(s)"]
        for i, face in enumerate(self.faces):
            x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
            kps = " ".join(f"({x:.0f},{y:.0f})" for x, y in face.kps5)
            out.append(f"  [{i}] box ({x1},{y1})-({x2},{y2}) score {face.score:.2f} kps {kps}")
        return out

    def notes(self) -> list[str]:
        return [self.reason]


def detect_faces(
    image: Path, backend: str = "auto", model_root: Path | None = None, limits: InputLimits = OPERATOR
) -> Detected:
    pixels = read_image(image, limits)
    analyzer = FaceAnalyzer(backend, model_root)
    return Detected(image, analyzer.name, analyzer.model_name, analyzer.reason, analyzer.analyze(pixels))
