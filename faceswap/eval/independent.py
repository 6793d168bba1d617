"""A second identity measure beside the consent records' own: dlib's face recognition used the way
its own tools use it (face_recognition's `face_distance`): its HOG detector at the image's scale, the
68-point shape, the raw 128-d descriptor and the euclidean distance, whose same-person line is 0.6.

It shares the network with the `dlib` backend but none of the rest (no normalisation, no best-of
reference, no tracking, its own detection and landmarks on the output), so a swap that games one
pipeline's choices shows in the other. Distances are averaged over each subject's reference photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAME_PERSON = 0.6  # dlib's euclidean threshold for "the same person"


@dataclass(frozen=True)
class RecognisedFace:
    box: np.ndarray  # (4,) x1, y1, x2, y2 in the image
    descriptor: np.ndarray  # (128,) raw, not normalised
    landmarks: np.ndarray  # (68, 2)


class DlibRecognition:
    """dlib's frontal detector, 68-point predictor and ResNet descriptor, from face-recognition-models."""

    def __init__(self) -> None:
        import dlib

        from faceswap.faces.dlib_backend import MODEL_NAME, models_dir

        root = models_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(root / "shape_predictor_68_face_landmarks.dat"))
        self._encoder = dlib.face_recognition_model_v1(str(root / f"{MODEL_NAME}.dat"))

    def faces(self, image_bgr: np.ndarray, upsample: int = 0) -> list[RecognisedFace]:
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        found = []
        for rect in self._detector(rgb, upsample):
            shape = self._shape(rgb, rect)
            descriptor = np.asarray(self._encoder.compute_face_descriptor(rgb, shape), np.float64)
            landmarks = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64)
            found.append(RecognisedFace(box, descriptor, landmarks))
        return found

    def near(self, image_bgr: np.ndarray, box: np.ndarray) -> RecognisedFace | None:
        """The face nearest `box`'s centre and within half a box of it, looked for only around it."""
        from faceswap.eval.boxes import search_box

        left, top, right, bottom = search_box(box, image_bgr.shape)
        offset = np.array([left, top], np.float64)
        x1, y1, x2, y2 = (float(v) for v in box)
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        best, best_distance = None, 0.5 * max(x2 - x1, y2 - y1)
        for face in self.faces(np.ascontiguousarray(image_bgr[top:bottom, left:right])):
            moved = RecognisedFace(face.box + np.tile(offset, 2), face.descriptor, face.landmarks + offset)
            distance = float(np.linalg.norm((moved.box[:2] + moved.box[2:]) / 2 - centre))
            if distance < best_distance:
                best, best_distance = moved, distance
        return best

    def references(self, photos: Sequence[Path]) -> np.ndarray:
        """(N, 128) descriptors of the largest face in each photo."""
        from faceswap.errors import BadInput
        from faceswap.media import read_image

        rows = []
        for photo in photos:
            faces = self.faces(read_image(Path(photo)), upsample=1)
            if not faces:
                raise BadInput(f"{photo}: dlib finds no face in this reference photo")
            rows.append(max(faces, key=lambda f: f.box[2] - f.box[0]).descriptor)
        return np.stack(rows)


@dataclass
class IndependentIdentity:
    """Distances of the output's face to each subject's references (mean over frames)."""

    frames: int = 0
    dist_a: float | None = None
    dist_b: float | None = None
    margin: float | None = None  # dist_b - dist_a: how much nearer A than B
    nearer_a_share: float | None = None
    below_same_person_share: float | None = None  # frames whose distance to A is under 0.6
    per_frame: list[tuple[int, float, float]] = field(default_factory=list)  # (frame, to A, to B)

    def line(self) -> str:
        if not self.frames:
            return "identity (dlib's own descriptor): no face measured"
        return (
            f"identity (dlib's own descriptor, distance; {SAME_PERSON} = same person): to A {self.dist_a:.3f}, "
            f"to B {self.dist_b:.3f} (margin {self.margin:.3f}); nearer A in {self.nearer_a_share:.3f} of "
            f"{self.frames} frames"
        )


def distance_to(references: np.ndarray, descriptor: np.ndarray) -> float:
    """Mean euclidean distance to a subject's reference descriptors."""
    return float(np.linalg.norm(references - descriptor, axis=1).mean())


@dataclass(frozen=True)
class IndependentReferences:
    """dlib's recognition and both subjects' reference descriptors: what measures one output frame."""

    recognition: DlibRecognition
    refs_a: np.ndarray
    refs_b: np.ndarray

    @classmethod
    def from_photos(cls, photos_a: Sequence[Path], photos_b: Sequence[Path]) -> IndependentReferences:
        recognition = DlibRecognition()
        return cls(recognition, recognition.references(photos_a), recognition.references(photos_b))

    def measure(self, index: int, image: np.ndarray, box: np.ndarray) -> tuple[int, float, float] | None:
        """(frame, distance to A, distance to B) of the output's face where subject B was, or None."""
        face = self.recognition.near(image, box)
        if face is None:
            return None
        return index, distance_to(self.refs_a, face.descriptor), distance_to(self.refs_b, face.descriptor)


def summarise(rows: list[tuple[int, float, float]]) -> IndependentIdentity:
    result = IndependentIdentity(frames=len(rows), per_frame=[(i, round(a, 4), round(b, 4)) for i, a, b in rows])
    if rows:
        to_a, to_b = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
        result.dist_a, result.dist_b = float(to_a.mean()), float(to_b.mean())
        result.margin = result.dist_b - result.dist_a
        result.nearer_a_share = float(np.mean(to_a < to_b))
        result.below_same_person_share = float(np.mean(to_a < SAME_PERSON))
    return result
