"""Research: a face-anchored watermark layer, measured and kept out of the package; no command writes
or reads it, and `faceswap verify` does not look for it.

The idea: mark the aligned swapped crop (`mark_face_crop`) before it is pasted back, so the mark
moves, turns and scales with the face; read it by detecting faces and aligning them to the same
template, which undoes crops, rescales, small rotations and (with the mirrored pattern) mirrors.
Conversion never called `mark_face_crop`, so no output carries this layer: outputs carry only the
tiles (faceswap/provenance/watermark/tiles.py). scripts/bench_watermark.py measures it (its face
columns) and tests/test_watermark_faces.py keeps it working.

Measured on the demo's faces it reads z 0.3-2.9 against a threshold of 6.5 (the swap mask keeps
about half of its 464 chips, the same face in every frame does not average its own residual away,
and the verifier's keypoints differ from convert's by half a chip): too weak to carry a token.
docs/watermark.md has the measurements and the command that makes them.

Pattern: FACE_GRID x FACE_GRID chips over the crop; only chips inside the inner-face ellipse are used.
A quarter of them carry a fixed sign pattern (sync), the rest the 160 code bits. The aligned
residuals of the sampled frames are averaged per face slot (largest face, second largest) before one
small search over the detector's disagreement with the marking keypoints (shifts of up to one chip,
scale +-3 %, mirror). Statistics as for the tiles (Hoeffding over the key's signs): `read_faces`
counts its (slot, shift, scale, mirror) tries and sets the threshold for FACE_BUDGET.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from faceswap.provenance.watermark import tiles

FACE_GRID = 32  # chips across the aligned crop
FACE_AMPLITUDE = 3.0  # luma levels at mask gain 1
FACE_BUDGET = 1e-7
MIN_CROP, MAX_CROP = 64, 512
KEY = b"faceswap/watermark/v2/face"
OVERSAMPLE = 2
CANON = FACE_GRID * OVERSAMPLE  # reading size of the aligned face
SHIFTS = (-2, -1, 0, 1, 2)  # in reading pixels (half chips)
SCALES = (0.97, 1.0, 1.03)
SLOTS = 2
ELLIPSE = (0.5, 0.5, 0.34, 0.42)  # centre x, y and radii, as shares of the crop (inner face)


@dataclass(frozen=True)
class FaceLayout:
    signs: np.ndarray  # (FACE_GRID, FACE_GRID) +-1, 0 outside the ellipse
    role: np.ndarray  # -2 unused, -1 sync, else the code bit index
    sync: np.ndarray


@lru_cache(maxsize=2)
def face_layout(bits: int = tiles.CODE_BITS) -> FaceLayout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(KEY).digest()[:8], "big"))
    centres = (np.arange(FACE_GRID) + 0.5) / FACE_GRID
    cx, cy, rx, ry = ELLIPSE
    inside = (((centres[None, :] - cx) / rx) ** 2 + ((centres[:, None] - cy) / ry) ** 2) <= 1.0
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=inside.shape) * inside
    used = np.flatnonzero(inside.ravel())
    order = rng.permutation(used)
    role = np.full(inside.size, -2, np.int64)
    n_sync = len(order) // 4
    role[order[:n_sync]] = -1
    role[order[n_sync:]] = np.arange(len(order) - n_sync) % bits
    role = role.reshape(inside.shape)
    return FaceLayout(signs.astype(np.float32), role, np.where(role == -1, signs, 0).astype(np.float32))


def _values(bits: np.ndarray) -> np.ndarray:
    lay = face_layout()
    symbols = np.where(np.asarray(bits)[np.maximum(lay.role, 0)] > 0, 1.0, -1.0)
    return np.where(lay.role >= 0, lay.signs * symbols, lay.signs).astype(np.float32)


@lru_cache(maxsize=8)
def _crop_pattern(size: int, code: bytes) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(code, np.uint8))
    return tiles.render_chips(_values(bits), (size, size), size / FACE_GRID)


def face_pattern(size: int, bits: np.ndarray) -> np.ndarray:
    """Unit-amplitude face mark for an aligned crop of `size` pixels, (size, size) float32."""
    return _crop_pattern(int(size), np.packbits(np.asarray(bits, np.uint8)).tobytes())


def mark_face_crop(crop: np.ndarray, token: int, amplitude: float = FACE_AMPLITUDE) -> np.ndarray:
    """Mark an aligned face crop (uint8 BGR, square, 64..512 px, the alignment template of
    faceswap.faces.align) with `token`; returns a new uint8 crop. Call it on the swapped face just
    before it is pasted back; the paste-back mask decides where the mark lands in the frame."""
    from faceswap.errors import BadInput
    from faceswap.provenance.watermark.payload import encode_token_v2

    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or crop.shape[0] != crop.shape[1]:
        raise BadInput(f"face marking needs a square uint8 BGR crop, got {crop.dtype} {crop.shape}")
    if not MIN_CROP <= crop.shape[0] <= MAX_CROP:
        raise BadInput(f"face crop of {crop.shape[0]} px is outside {MIN_CROP}..{MAX_CROP}")
    mark = face_pattern(crop.shape[0], encode_token_v2(token))
    return tiles.add_luma(crop, tiles.delta(crop, mark, amplitude))


# ---------------------------------------------------------------- reading


def aligned_residual(frame: np.ndarray, kps5: np.ndarray) -> np.ndarray:
    """The frame's whitened luma residual in canonical face coordinates, (CANON, CANON)."""
    import cv2

    from faceswap.faces.align import alignment_matrix

    matrix = alignment_matrix(np.asarray(kps5, np.float64), CANON)
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # canonical px per frame px
    work = max(CANON, min(4 * CANON, int(round(CANON / max(zoom, 1e-6)))))
    big = cv2.warpAffine(
        frame, matrix * (work / CANON), (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    y = tiles.luma(cv2.resize(big, (CANON, CANON), interpolation=cv2.INTER_AREA))
    r = y - cv2.GaussianBlur(y, (0, 0), 1.1)
    norm = np.sqrt(cv2.GaussianBlur(r * r, (0, 0), 2.0)) + 0.5
    return (r / norm).astype(np.float32)


def _hypotheses(r: np.ndarray):
    """(scale, dy, dx, mirror, chip values) for each small geometry correction of a canonical residual."""
    import cv2

    centre = (CANON / 2.0, CANON / 2.0)
    for scale in SCALES:
        m = cv2.getRotationMatrix2D(centre, 0.0, scale)
        for dy in SHIFTS:
            for dx in SHIFTS:
                shifted = m.copy()
                shifted[:, 2] += (dx, dy)
                warped = cv2.warpAffine(r, shifted, (CANON, CANON), flags=cv2.INTER_LINEAR)
                for mirror in (False, True):
                    view = warped[:, ::-1] if mirror else warped
                    chips = view.reshape(FACE_GRID, OVERSAMPLE, FACE_GRID, OVERSAMPLE).mean(axis=(1, 3))
                    yield scale, dy, dx, mirror, chips


@dataclass(frozen=True)
class FaceRead:
    """What the face layer's reader found: the best slot's evidence."""

    faces: int  # faces aligned over all sampled frames
    frames: int  # frames that had at least one face
    z: float = 0.0
    threshold: float = float("inf")
    tries: int = 0
    soft: np.ndarray | None = None
    mirror: bool = False
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # in chips
    slot: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def detected(self) -> bool:
        return self.z >= self.threshold

    @property
    def false_positive(self) -> float:
        return self.tries * tiles.hoeffding_tail(self.threshold) if self.tries else 0.0


def read_faces(frames: list[np.ndarray], analyzer: Any, max_frames: int = 8) -> FaceRead:
    """Detect faces in up to `max_frames` of `frames` (spread evenly) with `analyzer`
    (faceswap.faces.FaceAnalyzer, or anything whose `.analyze(bgr)` returns Faces with `kps5`) and
    read the face layer on them, the largest face of each frame in slot 0, the next in slot 1."""
    found = []
    for frame in tiles.spread(frames, max_frames):
        faces = sorted(analyzer.analyze(frame), key=lambda f: -float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        found.append((frame, [np.asarray(f.kps5, np.float64) for f in faces[:SLOTS]]))
    return read_aligned(found)


def read_aligned(frames: list[tuple[np.ndarray, list[np.ndarray]]]) -> FaceRead:
    """The face layer from frames with their faces' five keypoints (slot order), aligned and averaged
    per slot, then the small geometry search."""
    sums = [np.zeros((CANON, CANON), np.float64) for _ in range(SLOTS)]
    counts = [0] * SLOTS
    for frame, kps_list in frames:
        for slot, kps5 in enumerate(kps_list[:SLOTS]):
            sums[slot] += aligned_residual(frame, kps5)
            counts[slot] += 1
    n_faces = sum(counts)
    if not n_faces:
        return FaceRead(faces=0, frames=0)
    lay = face_layout()
    best: tuple[float, int, tuple] = (-np.inf, 0, ())
    slots_used = [s for s in range(SLOTS) if counts[s]]
    for slot in slots_used:
        mean = (sums[slot] / counts[slot]).astype(np.float32)
        for scale, dy, dx, mirror, chips in _hypotheses(mean):
            corr = float((chips * lay.sync).sum())
            energy = float(((chips * chips) * np.abs(lay.sync)).sum())
            z = corr / np.sqrt(max(energy, 1e-12))
            if z > best[0]:
                best = (z, slot, (scale, dy, dx, mirror, chips))
    z, slot, (scale, dy, dx, mirror, chips) = best
    tries = len(slots_used) * len(SCALES) * len(SHIFTS) ** 2 * 2
    return FaceRead(
        faces=n_faces,
        frames=sum(1 for _, kps_list in frames if kps_list),
        z=float(z),
        threshold=tiles.z_threshold(tries, FACE_BUDGET),
        tries=tries,
        soft=_soft(chips, lay),
        mirror=bool(mirror),
        scale=float(scale),
        shift=(dy / OVERSAMPLE, dx / OVERSAMPLE),
        slot=slot,
        details={"sync_chips": int(np.abs(lay.sync).sum()), "faces_in_slot": counts[slot]},
    )


def _soft(chips: np.ndarray, lay: FaceLayout, bits: int = tiles.CODE_BITS) -> np.ndarray:
    payload = lay.role >= 0
    idx = lay.role[payload]
    sums = np.bincount(idx, weights=(chips * lay.signs)[payload], minlength=bits)
    energy = np.bincount(idx, weights=chips[payload] ** 2, minlength=bits)
    return sums / np.sqrt(np.maximum(energy, 1e-12))


class LazyFaceAnalyzer:
    """A face analyzer made on first use, so a run that reads no face layer never loads a face backend."""

    def __init__(self, backend: str = "auto", min_face: int = 64) -> None:
        self.backend, self.min_face = backend, min_face
        self._analyzer: Any = None

    def analyze(self, image_bgr: np.ndarray) -> list:
        if self._analyzer is None:
            from faceswap.faces.analyzer import FaceAnalyzer

            self._analyzer = FaceAnalyzer(self.backend, min_face=self.min_face)
        return self._analyzer.analyze(image_bgr)
