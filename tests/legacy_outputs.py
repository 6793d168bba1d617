"""Outputs as the code before keyed marks wrote them: marked with the public tiles key (scheme 2) or
scheme 1, logged with the entry fields of that time (token, sha256, perceptual hashes; no watermark
key, no content binding). What `verify` must still read and trace, and only on their own content."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceswap.hashing import file_sha256, safe_name
from faceswap.ledger import Entry, Ledger
from faceswap.provenance.phash import phash
from faceswap.provenance.watermark.marker import Watermarker, format_token, new_token


def write_legacy_output(ledger: Ledger, path: Path, image: np.ndarray, scheme: int = 2) -> tuple[Entry, str]:
    """Mark `image` the old way, write it to `path` and append the old-format entry; (entry, token)."""
    token = new_token()
    marked = Watermarker(scheme=scheme).embed([image], token)[0]
    cv2.imwrite(str(path), marked)
    data = {
        "token": format_token(token),
        "media": "image",
        "name": safe_name(path),
        "producer": "test",
        "model_fingerprint": None,
        "consent_record_ids": [],
        "settings": {},
        "frames": 1,
        "width": int(marked.shape[1]),
        "height": int(marked.shape[0]),
        "phashes": [phash(marked)],
        "sha256": file_sha256(path),
    }
    return ledger.append("output.written", data), format_token(token)
