"""64-bit DCT perceptual hashes: the ledger's fallback key when a file has lost its token."""

from __future__ import annotations

import numpy as np

MATCH_DISTANCE = 10  # of 64 bits; JPEG/rescale/H.264 of the same frame stay well below


def phash(bgr: np.ndarray) -> str:
    import cv2

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def best_distance(hashes: list[str], candidates: list[str]) -> int:
    """Smallest distance between any of `hashes` and any of `candidates` (64 when either is empty)."""
    return min((distance(h, c) for h in hashes for c in candidates), default=64)
