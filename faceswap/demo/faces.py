"""Synthetic demo identities: caricatured, landmark-aligned morphs of several real faces.

Averages of faces drift toward one generic face, so each identity is pushed away from the mean of
all sources, in shape and in texture (the classic caricature trick), and given its own skin tone.
The recipe is checked by measurement (`identity_report`): the subjects must be far from each other
and from every single source face on the identity backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceswap.demo.morph import border_points, triangulate, warp
from faceswap.faces.align import align_face, transform_points

CANVAS = 256


@dataclass(frozen=True)
class SourceFace:
    name: str
    image: np.ndarray  # aligned, CANVAS x CANVAS
    landmarks: np.ndarray  # (68, 2) in canvas coordinates


@dataclass(frozen=True)
class Recipe:
    name: str
    weights: dict[str, float]  # source name -> weight
    shape_gain: float  # caricature factor away from the mean shape
    texture_gain: float
    tone: tuple[float, float, float]  # BGR gain


@dataclass(frozen=True)
class Identity:
    name: str
    texture: np.ndarray  # CANVAS x CANVAS uint8, face at the whole-face template
    landmarks: np.ndarray  # (68, 2)
    points: np.ndarray  # landmarks + border points
    triangles: np.ndarray


# Chosen by measurement on the dlib backend (docs/demo.md): A-B cos ~0.85, each subject <= ~0.92 to
# any single source face, the bystander ~0.87-0.88 to either subject (the match threshold is 0.93).
RECIPES = (
    Recipe("demo-a", {"t1-0": 0.2, "t1-2": 0.3, "t1-4": 0.3, "tom-hanks": 0.2}, 2.5, 2.2, (0.92, 0.98, 1.10)),
    Recipe("demo-b", {"t1-1": 0.3, "t1-3": 0.3, "t1-5": 0.2, "astronaut": 0.2}, 2.5, 2.2, (1.08, 1.0, 0.90)),
    Recipe("bystander", {"t1-2": 0.5, "t1-3": 0.5}, 2.0, 2.0, (1.0, 1.04, 1.02)),
)


def load_sources(analyzer) -> list[SourceFace]:
    """Every face that installed packages ship, aligned to the canvas with its 68 landmarks."""
    import cv2

    from faceswap.faces.samples import insightface_t1, insightface_tom_hanks, skimage_astronaut
    from faceswap.media import read_image

    found: list[tuple[str, np.ndarray, object]] = []
    group = read_image(insightface_t1())
    for i, face in enumerate(sorted(analyzer.analyze(group), key=lambda f: f.bbox[0])):
        found.append((f"t1-{i}", group, face))
    hanks = cv2.copyMakeBorder(read_image(insightface_tom_hanks()), 56, 56, 56, 56, cv2.BORDER_REFLECT)
    found.append(("tom-hanks", hanks, analyzer.analyze(hanks)[0]))
    astronaut = read_image(skimage_astronaut())
    found.append(("astronaut", astronaut, analyzer.analyze(astronaut)[0]))
    sources = []
    for name, image, face in found:
        aligned = align_face(image, face.kps5, CANVAS)
        sources.append(
            SourceFace(name, aligned.crop, transform_points(face.landmarks, aligned.matrix).astype(np.float32))
        )
    return sources


def _with_border(landmarks: np.ndarray) -> np.ndarray:
    return np.vstack([landmarks, border_points(CANVAS)]).astype(np.float32)


def build_identity(recipe: Recipe, sources: list[SourceFace]) -> Identity:
    by_name = {s.name: s for s in sources}
    mean_shape = np.mean([s.landmarks for s in sources], axis=0)
    total = sum(recipe.weights.values())
    group_shape = sum(by_name[n].landmarks * (w / total) for n, w in recipe.weights.items())
    shape = mean_shape + recipe.shape_gain * (group_shape - mean_shape)
    points = _with_border(shape)
    triangles = triangulate(points, CANVAS)

    def warped(source: SourceFace) -> np.ndarray:
        return warp(source.image, _with_border(source.landmarks), points, triangles)

    textures = {s.name: warped(s) for s in sources}
    mean_texture = np.mean(list(textures.values()), axis=0)
    group_texture = sum(textures[n] * (w / total) for n, w in recipe.weights.items())
    texture = mean_texture + recipe.texture_gain * (group_texture - mean_texture)
    texture = np.clip(texture * np.array(recipe.tone, np.float32), 0, 255).astype(np.uint8)
    return Identity(recipe.name, texture, shape.astype(np.float32), points, triangles)


def build_identities(analyzer) -> tuple[list[Identity], list[SourceFace]]:
    sources = load_sources(analyzer)
    return [build_identity(r, sources) for r in RECIPES], sources
