"""Models' own marks in a file's faces (faceswap/model/mark.py): what names the model that rendered a
face when the file carries no frame watermark (the raw network used outside the sink).

Every `model.trained` entry that records a mark made with a secret present here is a candidate. The
largest faces (FACES_PER_FRAME, so a crowd costs no more than a two-shot) in up to FRAMES frames of
the sample are found (the face analyzer, insightface's pack where installed, else dlib's), aligned as
each model's faces were, and read; each model's soft bits are averaged over the faces and compared
with its bits. The bound is the binomial tail times the number of
candidates; a model is named when it is at most BOUND."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceswap.faces.align import Alignment, alignment_matrix
from faceswap.ledger import Entry
from faceswap.ledger.watermark_keys import WatermarkKeys
from faceswap.model.mark import BITS, SIZE, VERSION, ModelMark, false_positive_bound

FRAMES = 12
FACES_PER_FRAME = 2  # each face costs about 0.1 s per model on 2 cores
BOUND = 1e-6


@dataclass(frozen=True)
class MarkedModel:
    entry: Entry
    mark: ModelMark
    alignment: Alignment


@dataclass(frozen=True)
class ModelMarkReading:
    """The best-agreeing model's reading of a file's faces."""

    entry: Entry
    agreeing: int
    faces: int
    candidates: int

    @property
    def bound(self) -> float:
        return false_positive_bound(self.agreeing, self.candidates)

    @property
    def traced(self) -> bool:
        return self.bound <= BOUND

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.entry.data.get("name"),
            "ledger_seq": self.entry.seq,
            "fingerprint": self.entry.data.get("fingerprint"),
            "consent_record_ids": list(self.entry.data.get("consent_record_ids") or []),
            "bits_agreeing": self.agreeing,
            "bits": BITS,
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
    """The best-agreeing model over the faces in `frames` (BGR), or None when no face is found."""
    if not models:
        return None
    picked = [frames[i] for i in np.linspace(0, len(frames) - 1, min(len(frames), FRAMES)).astype(int)]
    soft: dict[int, list[np.ndarray]] = {i: [] for i in range(len(models))}
    for frame in picked:
        if frame.dtype == np.uint16:
            frame = (frame // 257).astype(np.uint8)
        faces = sorted(analyze(frame), key=lambda f: float(f.bbox[2] - f.bbox[0]), reverse=True)
        for face in faces[:FACES_PER_FRAME]:
            for i, model in enumerate(models):
                matrix = alignment_matrix(face.kps5, SIZE, model.alignment, face.landmarks, face.landmark_scheme)
                soft[i].append(model.mark.read_found(frame, matrix))
    if not soft[0]:
        return None
    agreeing = [model.mark.agreement(np.mean(soft[i], axis=0)) for i, model in enumerate(models)]
    best = int(np.argmax(agreeing))
    return ModelMarkReading(models[best].entry, agreeing[best], len(soft[0]), len(models))
