"""Follow faces through a video: detect on key frames and scene cuts, refit landmarks in between,
decide identity per track.

Detection and the identity embedding are the expensive parts of face analysis (dlib: HOG ~30 ms and
ResNet ~60 ms per face at 640x480 on a CPU core; landmarks ~2 ms). A face moves little between two
frames, so between key frames each track's landmarks are fitted again inside a box predicted from
its last landmarks, placed the way the detector placed it when the track began (so the fit sees the
box it was trained on). Key frames (every `detect_every` frames, on a scene cut, and right after a
track is lost) detect and embed every face again: new faces start tracks, and every track's identity
is decided afresh from a new embedding, so a track that drifted onto someone else is corrected within
one key interval. Backends without `refit` are analysed on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.types import Face

DETECT_EVERY = 8
CUT_LEVEL = 28.0  # mean absolute difference of 64x36 grey thumbnails, in 8-bit levels
MIN_IOU = 0.3
MAX_SIZE_CHANGE = 0.35  # a refit box that grows or shrinks more than this between frames is a lost track


@dataclass
class _Track:
    track_id: int
    face: Face
    is_subject: bool
    box_from_landmarks: np.ndarray  # (4,) the detector's box relative to the landmarks' box: dx1, dy1, dx2, dy2
    velocity: np.ndarray  # (2,) landmark centre motion per frame


@dataclass(frozen=True)
class Seen:
    """A face in a frame, with its track and the track's identity decision."""

    face: Face
    track_id: int
    is_subject: bool


def _landmark_box(face: Face) -> np.ndarray:
    points = face.landmarks if face.landmarks is not None else face.kps5
    return np.array([*points.min(axis=0), *points.max(axis=0)], dtype=np.float64)


def _centre(face: Face) -> np.ndarray:
    box = _landmark_box(face)
    return (box[:2] + box[2:]) / 2


def _relation(face: Face) -> np.ndarray:
    """The detector's box in units of the landmarks' box: how to place it again from landmarks."""
    lx1, ly1, lx2, ly2 = _landmark_box(face)
    w, h = max(lx2 - lx1, 1.0), max(ly2 - ly1, 1.0)
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    return np.array([(x1 - lx1) / w, (y1 - ly1) / h, (x2 - lx2) / w, (y2 - ly2) / h])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceTracker:
    def __init__(self, analyzer, subject: IdentityMatcher, detect_every: int = DETECT_EVERY) -> None:
        self.analyzer = analyzer
        self.subject = subject
        self.detect_every = max(1, detect_every) if analyzer.can_refit else 1
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_key = 0
        self._thumb: np.ndarray | None = None
        self._force = True
        self.key_frames = 0
        self.frames = 0

    def step(self, image: np.ndarray) -> list[Seen]:
        """The faces in the next frame of the video, each with its track and identity."""
        cut = self._scene_cut(image)
        key = self._force or cut or self._since_key >= self.detect_every - 1 or not self.analyzer.can_refit
        if cut:
            self._tracks = []
        self._force = False
        self.frames += 1
        if key:
            self.key_frames += 1
            self._since_key = 0
            self._detect(image)
        else:
            self._since_key += 1
            self._follow(image)
        return [Seen(t.face, t.track_id, t.is_subject) for t in self._tracks]

    def _scene_cut(self, image: np.ndarray) -> bool:
        import cv2

        grey = cv2.cvtColor(cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        thumb = grey.astype(np.float32)
        previous, self._thumb = self._thumb, thumb
        return previous is not None and float(np.abs(thumb - previous).mean()) > CUT_LEVEL

    def _detect(self, image: np.ndarray) -> None:
        """Every face found now; a continuing track keeps its id and gets its identity decided again."""
        tracks: list[_Track] = []
        unmatched = list(self._tracks)
        for face in self.analyzer.analyze(image):
            best = max(unmatched, key=lambda t: _iou(t.face.bbox, face.bbox), default=None)
            if best is not None and _iou(best.face.bbox, face.bbox) >= MIN_IOU:
                unmatched.remove(best)
                track_id, velocity = best.track_id, _centre(face) - _centre(best.face)
            else:
                track_id, velocity = self._next_id, np.zeros(2)
                self._next_id += 1
            tracks.append(_Track(track_id, face, self.subject.matches(face.embedding), _relation(face), velocity))
        self._tracks = tracks

    def _follow(self, image: np.ndarray) -> None:
        """Each track's landmarks fitted again inside its predicted box; a lost track ends, and the
        next frame detects again."""
        height, width = image.shape[:2]
        kept = []
        for track in self._tracks:
            lx1, ly1, lx2, ly2 = _landmark_box(track.face)
            w, h = lx2 - lx1, ly2 - ly1
            dx1, dy1, dx2, dy2 = track.box_from_landmarks
            shift = np.concatenate([track.velocity, track.velocity])
            box = np.array([lx1 + dx1 * w, ly1 + dy1 * h, lx2 + dx2 * w, ly2 + dy2 * h]) + shift
            if box[0] < -0.25 * w or box[1] < -0.25 * h or box[2] > width + 0.25 * w or box[3] > height + 0.25 * h:
                self._force = True  # leaving the frame: let the detector decide
                continue
            face = self.analyzer.refit(image, box, track.face)
            new_w = _landmark_box(face)[2] - _landmark_box(face)[0]
            if abs(new_w - w) > MAX_SIZE_CHANGE * max(w, 1.0):
                self._force = True
                continue
            track.velocity = _centre(face) - _centre(track.face)
            track.face = face
            kept.append(track)
        self._tracks = kept
