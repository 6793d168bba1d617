"""Two-layer invisible watermark: a rivaGan sync layer to detect, a dwtDctSvd layer to carry the token.

- Sync layer (rivaGan, 32 bits, fixed balanced pattern, at a 320x180 working size): survives JPEG 50,
  rescaling, crops and video codecs. A file is "marked" when >= 30 of 32 bits agree:
  P(Binomial(32, 1/2) >= 30) = 529 / 2^32 = 1.2e-7 for an unmarked file.
- Token layer (dwtDctSvd in the U channel): the 48-bit ledger token + CRC under RS(16, 8), repeated
  over every 8x8 block of the frame. Random bits pass with probability <= 1.5e-8 (payload.py), so a
  decoded token alone also proves the mark.
Together the false-positive bound per file is below 1.4e-7. For video both layers' soft outputs are
averaged over the sampled frames before one decision, so the bound holds per file, not per frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb

import numpy as np

from faceswap.provenance import dwtdctsvd, riva
from faceswap.provenance.payload import CODE_BITS, FALSE_ACCEPT_BOUND, MAX_TOKEN, decode_soft, encode_token

SYNC_WORD = 0xA3C59E61  # 16 ones, 16 zeros: an all-zero or all-one read agrees on 16
SYNC_BITS = np.array([int(c) for c in f"{SYNC_WORD:032b}"], dtype=np.uint8)
SYNC_THRESHOLD = 30
MIN_PIXELS = 256 * 256
TOKEN_SCALE = 42.0  # dwtDctSvd quantisation step: upstream's 36 loses the token under H.264 CRF 23 more often


def binomial_tail(agree: int, n: int = riva.BITS) -> float:
    """P(at least `agree` of `n` fair coin flips match)."""
    return sum(comb(n, k) for k in range(agree, n + 1)) / 2.0**n


SYNC_FALSE_POSITIVE = binomial_tail(SYNC_THRESHOLD)
FALSE_POSITIVE_BOUND = SYNC_FALSE_POSITIVE + FALSE_ACCEPT_BOUND


def format_token(token: int) -> str:
    return f"{token:012x}"


def new_token() -> int:
    import secrets

    return secrets.randbits(48) & MAX_TOKEN


@dataclass(frozen=True)
class Detection:
    marked: bool
    token: str | None
    sync_agreement: int  # of 32
    sync_p_value: float  # chance an unmarked file agrees this much
    token_corrected_bytes: int
    frames: int
    false_positive_bound: float = FALSE_POSITIVE_BOUND

    @property
    def layer(self) -> str:
        if self.token and self.sync_agreement >= SYNC_THRESHOLD:
            return "sync+token"
        if self.token:
            return "token"
        return "sync" if self.marked else "none"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "layer": self.layer}


class Watermarker:
    def __init__(self, scale: float = TOKEN_SCALE, work_size: tuple[int, int] = riva.WORK_SIZE) -> None:
        self.scale = scale
        self.work_size = work_size
        self.models = riva.RivaModels()

    def embed(self, frames: list[np.ndarray], token: int) -> list[np.ndarray]:
        """Mark a batch of uint8 BGR frames with both layers; returns new uint8 frames."""
        for frame in frames:
            check_markable(frame)
        bits = encode_token(token)
        deltas = riva.residuals(self.models, frames, SYNC_BITS, self.work_size)
        out = []
        for frame, delta in zip(frames, deltas, strict=True):
            marked = dwtdctsvd.embed(frame.astype(np.float32) + delta, bits, self.scale)
            out.append(np.clip(np.rint(marked), 0, 255).astype(np.uint8))
        return out

    def detect(self, frames: list[np.ndarray]) -> Detection:
        """One decision over all `frames` (one image, or frames sampled from one video)."""
        if not frames:
            raise ValueError("no frames to check")
        logits = riva.logits(self.models, frames, self.work_size).mean(axis=0)
        agreement = int(((logits > 0).astype(np.uint8) == SYNC_BITS).sum())
        shares, weights = [], []
        for frame in frames:
            share, per_bit = dwtdctsvd.soft_bits(frame, CODE_BITS, self.scale)
            if per_bit:
                shares.append(share)
                weights.append(per_bit)
        read = decode_soft(np.average(shares, axis=0, weights=weights)) if shares else None
        token = format_token(read.token) if read and read.ok else None
        return Detection(
            marked=agreement >= SYNC_THRESHOLD or token is not None,
            token=token,
            sync_agreement=agreement,
            sync_p_value=binomial_tail(agreement),
            token_corrected_bytes=read.corrected_bytes if read and read.ok else 0,
            frames=len(frames),
        )


def check_markable(frame: np.ndarray) -> None:
    from faceswap.errors import BadInput

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadInput(f"watermarking needs uint8 BGR frames, got {frame.dtype} {frame.shape}")
    if frame.shape[0] * frame.shape[1] < MIN_PIXELS:
        raise BadInput(
            f"frame {frame.shape[1]}x{frame.shape[0]} is too small to carry a watermark (min 256x256 pixels)"
        )
