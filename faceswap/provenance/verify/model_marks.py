"""Models' own marks in a file's faces (faceswap/model/mark.py): what names the model that rendered a
face when the file carries no frame watermark (the raw network used outside the sink).

Every `model.trained` entry that records a mark made with a secret present here is a candidate. The
largest faces (FACES_PER_FRAME, so a crowd costs no more than a two-shot) in up to FRAMES frames of
the sample are found (the face analyzer, insightface's pack where installed, else dlib's), aligned as
each model's faces were, and read at each of the mark's cuts; each model's readings and spreads are
summed over the faces cut by cut, and the best cut's z (the whole keyed pattern against its exact
Gaussian spread) decides. The bound is the Gaussian tail times the cuts and the candidates; a model
is named when it is at most BOUND."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceswap.faces.align import Alignment, alignment_matrix
from faceswap.ledger import Entry
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.model.mark import CARRIERS, SIZE, VERSION, ModelMark, false_positive_bound

FRAMES = 12
FACES_PER_FRAME = 2  # each face costs about 0.03 s per model on 2 cores (169 cuts), besides finding it
BOUND = 1e-6


@dataclass(frozen=True)
class MarkedModel:
    entry: Entry
    mark: ModelMark
    alignment: Alignment


@dataclass(frozen=True)
class ModelMarkReading:
    """The best-scoring model's reading of a file's faces: z, and its carriers agreeing in sign."""

    entry: Entry
    z: float
    agreeing: int
    faces: int
    candidates: int

    @property
    def bound(self) -> float:
        return false_positive_bound(self.z, self.candidates)

    @property
    def traced(self) -> bool:
        return self.bound <= BOUND

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.entry.data.get("name"),
            "ledger_seq": self.entry.seq,
            "fingerprint": self.entry.data.get("fingerprint"),
            "consent_record_ids": list(self.entry.data.get("consent_record_ids") or []),
            "z": round(self.z, 2),
            "carriers_agreeing": self.agreeing,
            "carriers": CARRIERS,
            "faces": self.faces,
            "models_tried": self.candidates,
            "false_positive_bound": self.bound,
            "traced": self.traced,
        }


def marked_models(entries: list[Entry], keys: WatermarkKeys | None) -> list[MarkedModel]:
    """The models whose entries record a mark this verifier can derive the key of."""
    found = []
    for entry in entries:
        recorded = entry.data.get("mark") if entry.kind == "model.trained" else None
        if not isinstance(recorded, dict) or recorded.get("version") != VERSION or keys is None:
            continue
        secret = keys.by_id(str(recorded.get("key_id")))
        hparams = entry.data.get("hparams") or {}
        if secret is None or not isinstance(hparams.get("alignment"), str):
            continue
        alignment = Alignment.parse(hparams["alignment"])
        mark = ModelMark.derive(secret, str(recorded.get("nonce")), alignment.face_type)
        found.append(MarkedModel(entry, mark, alignment))
    return found


def read_model_marks(frames: list[np.ndarray], models: list[MarkedModel], analyze: Callable[[Any], list]):
    """The best-scoring model over the faces in `frames` (BGR), or None when no face is found."""
    if not models:
        return None
    picked = [frames[i] for i in np.linspace(0, len(frames) - 1, min(len(frames), FRAMES)).astype(int)]
    sums: list[tuple[np.ndarray, np.ndarray]] = []
    faces = 0
    for frame in picked:
        if frame.dtype == np.uint16:
            frame = (frame // 257).astype(np.uint8)
        found = sorted(analyze(frame), key=lambda f: float(f.bbox[2] - f.bbox[0]), reverse=True)
        for face in found[:FACES_PER_FRAME]:
            faces += 1
            for i, model in enumerate(models):
                matrix = alignment_matrix(face.kps5, SIZE, model.alignment, face.landmarks, face.landmark_scheme)
                soft, spread = model.mark.read_found(frame, matrix)
                if len(sums) == i:
                    sums.append((soft, spread))
                else:
                    sums[i] = (sums[i][0] + soft, sums[i][1] + spread)
    if not faces:
        return None
    readings = []
    for model, (soft, spread) in zip(models, sums, strict=True):
        scores = model.mark.score(soft, spread)
        cut = int(np.argmax(scores))
        readings.append(
            ModelMarkReading(model.entry, float(scores[cut]), model.mark.agreement(soft[cut]), faces, len(models))
        )
    return max(readings, key=lambda reading: reading.z)
