"""The invisible watermark: scheme 2 marks, and readers for scheme 2 and scheme 1 files.

Scheme 2 (what `embed` writes): the tiled spread-spectrum layer (tiles.py) carries the 48-bit token
+ CRC-32 under a rate-1/2 convolutional code (payload.py, soft Viterbi) in luma, in a form that
survives crops, rescales, borders, mirrors, codecs and tone changes. A face-anchored layer
(facemark.py) exists and is read when asked, but conversion does not write it: measured too weak to
carry a token (docs/watermark.md). Scheme 1 (files written before): rivaGan sync (32 bits) +
dwtDctSvd token (RS(16, 8) + CRC-16) on an 8x8 block grid. Its readers stay, so those files keep
verifying.

`detect` makes one decision per file (one image, or the frames sampled from one video), reading
cheapest first and stopping once the token is read: the tiles; scheme 1's layers when the tiles
found nothing; the face layer (needs a face analyzer) when the tiles found the mark but not the
token. Each decision made adds its false-positive share to the file's bound:
- tiles sync: threshold set so that tries * exp(-z^2/2) <= 1e-7 (Hoeffding, tiles.py), per read
  (a video's intra frames are read again by themselves when all frames give no token);
- each scheme 2 token decode: a wrong word passes the CRC-32 with probability 2^-32;
- scheme 1: sync >= 30 of 32 bits 1.2e-7, its token decode (RS + CRC-16) 1.5e-8;
- face sync: as the tiles, <= 1e-7.
All of them together stay below FALSE_POSITIVE_BOUND (4.4e-7) per file.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from math import comb, sqrt
from typing import Any

import numpy as np

from faceswap.provenance import dwtdctsvd, facemark, riva, tiles
from faceswap.provenance.payload import (
    CODE_BITS,
    FALSE_ACCEPT_BOUND,
    MAX_TOKEN,
    V2_FALSE_ACCEPT,
    TokenRead,
    decode_soft,
    decode_v2,
    encode_token,
    encode_token_v2,
)

SCHEME = 2
SYNC_WORD = 0xA3C59E61  # scheme 1: 16 ones, 16 zeros: an all-zero or all-one read agrees on 16
SYNC_BITS = np.array([int(c) for c in f"{SYNC_WORD:032b}"], dtype=np.uint8)
SYNC_THRESHOLD = 30
MIN_PIXELS = 256 * 256
TOKEN_SCALE = 42.0  # scheme 1 dwtDctSvd quantisation step
V1_FRAMES = 8  # scheme 1 is read on at most this many frames (rivaGan is the slow part; 6, 8 and 12 read alike)


def binomial_tail(agree: int, n: int = riva.BITS) -> float:
    """P(at least `agree` of `n` fair coin flips match)."""
    return sum(comb(n, k) for k in range(agree, n + 1)) / 2.0**n


SYNC_FALSE_POSITIVE = binomial_tail(SYNC_THRESHOLD)
FALSE_POSITIVE_BOUND = (  # every reader run: the tiles on all frames and on the intra frames, scheme 1, faces
    2 * tiles.SYNC_BUDGET + facemark.FACE_BUDGET + SYNC_FALSE_POSITIVE + FALSE_ACCEPT_BOUND + 6 * V2_FALSE_ACCEPT
)


def format_token(token: int) -> str:
    return f"{token:012x}"


def new_token() -> int:
    import secrets

    return secrets.randbits(48) & MAX_TOKEN


def _llr(z: np.ndarray) -> np.ndarray:
    """Per-bit log-likelihood ratios from z-scores (z ~ +-d + N(0, 1)); d estimated from the reads."""
    d = sqrt(max(float(np.mean(np.square(z))) - 1.0, 0.0))
    return 2.0 * d * np.asarray(z, np.float64)


@dataclass(frozen=True)
class LayerEvidence:
    """What one layer's reader found; `false_positive` is its share of the file's bound."""

    layer: str  # tiles | face | v1-sync | v1-token
    score: float  # z (tiles, face) or agreeing bits (v1-sync) or corrected bytes (tokens)
    threshold: float
    detected: bool
    tries: int
    false_positive: float
    token: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    marked: bool
    token: str | None
    sync_agreement: int | None  # scheme 1 rivaGan bits agreeing, of 32 (None: not read)
    sync_p_value: float  # chance an unmarked file shows the strongest sync seen
    token_corrected_bytes: int  # scheme 1 (RS bytes)
    frames: int
    false_positive_bound: float = FALSE_POSITIVE_BOUND  # for the decisions made
    scheme: int | None = None  # 2 or 1 when marked
    token_from: str | None = None  # tiles | tiles-intra | face | tiles+face | v1-grid
    undone: dict[str, Any] = field(default_factory=dict)  # mirror, borders, scale
    layers: tuple[LayerEvidence, ...] = ()
    token_corrected_bits: int | None = None  # scheme 2: code bits the decoder turned round, of 160

    @property
    def layer(self) -> str:
        """What proved the mark: e.g. 'tiles+token', 'sync+token' (scheme 1), 'face', 'none'."""
        names = {"tiles": "tiles", "face": "face", "v1-sync": "sync"}
        found = [names[e.layer] for e in self.layers if e.detected and e.layer in names]
        return "+".join(dict.fromkeys(found + (["token"] if self.token else []))) or "none"

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["layers"] = [asdict(e) for e in self.layers]
        out["layer"] = self.layer
        return out


class Watermarker:
    """Marks frames (scheme 2, or scheme 1 for old-format fixtures) and detects either scheme."""

    def __init__(
        self,
        scale: float = TOKEN_SCALE,
        work_size: tuple[int, int] = riva.WORK_SIZE,
        scheme: int = SCHEME,
        key: bytes = tiles.KEY,
    ):
        if scheme not in (1, 2):
            raise ValueError(f"unknown watermark scheme {scheme}")
        self.key = key
        self.scale = scale
        self.work_size = work_size
        self.scheme = scheme
        self.models = riva.RivaModels()
        self._patterns: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()

    def pattern(self, shape: tuple[int, ...], token: int) -> np.ndarray:
        """The tiles layer's unit pattern for this frame size and token (kept for the next frames)."""
        key = (int(shape[0]), int(shape[1]), token)
        if key not in self._patterns:
            self._patterns[key] = tiles.pattern(shape, encode_token_v2(token), self.key)
            while len(self._patterns) > 4:
                self._patterns.popitem(last=False)
        self._patterns.move_to_end(key)
        return self._patterns[key]

    def embed(self, frames: list[np.ndarray], token: int) -> list[np.ndarray]:
        """Mark a batch of uint8 BGR frames; returns new uint8 frames."""
        for frame in frames:
            check_markable(frame)
        if self.scheme == 1:
            return self._embed_v1(frames, token)
        return [tiles.add_luma(f, tiles.delta(f, self.pattern(f.shape, token))) for f in frames]

    def _embed_v1(self, frames: list[np.ndarray], token: int) -> list[np.ndarray]:
        bits = encode_token(token)
        deltas = riva.residuals(self.models, frames, SYNC_BITS, self.work_size)
        out = []
        for frame, change in zip(frames, deltas, strict=True):
            marked = dwtdctsvd.embed(frame.astype(np.float32) + change, bits, self.scale)
            out.append(np.clip(np.rint(marked), 0, 255).astype(np.uint8))
        return out

    def detect(
        self,
        frames: list[np.ndarray],
        analyzer: Any = None,
        faces: str = "lost-token",
        intra: list[bool] | None = None,
    ) -> Detection:
        """One decision over all `frames` (one image, or frames sampled from one video). `intra` marks
        the frames a video codec coded on their own: when all frames together do not give the token,
        those are read again by themselves (a re-encode keeps the mark best there, while in moving
        predicted frames it moves with the content). With a face `analyzer`, the face layer is read
        when the tiles found the mark but not its token, or (faces="always") whenever the token is
        missing and the file is not a scheme 1 file."""
        if not frames:
            raise ValueError("no frames to check")
        found = _Reading(len(frames))
        found.tiles(tiles.read(frames, self.key))
        key_frames = [f for f, key in zip(frames, intra or [], strict=False) if key]
        if found.token is None and 0 < len(key_frames) < len(frames):
            found.tiles(tiles.read(key_frames, self.key), "intra frames")
        if found.token is None and not found.any_detected:
            found.v1(self.read_v1(tiles.spread(frames, V1_FRAMES)))
        wanted = found.scheme == 2 or (faces == "always" and found.scheme is None)
        if found.token is None and analyzer is not None and wanted:
            found.face(facemark.read_faces(frames, analyzer))
        return found.result()

    def read_v1(self, frames: list[np.ndarray]) -> tuple[int, TokenRead]:
        logits = riva.logits(self.models, frames, self.work_size).mean(axis=0)
        agreement = int(((logits > 0).astype(np.uint8) == SYNC_BITS).sum())
        shares, weights = [], []
        for frame in frames:
            share, per_bit = dwtdctsvd.soft_bits(frame, CODE_BITS, self.scale)
            if per_bit:
                shares.append(share)
                weights.append(per_bit)
        read = decode_soft(np.average(shares, axis=0, weights=weights)) if shares else TokenRead(None)
        return agreement, read


class _Reading:
    """Accumulates the layers' evidence for one file into a Detection."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.layers: list[LayerEvidence] = []
        self.token: str | None = None
        self.corrected = 0
        self.corrected_bits: int | None = None
        self.token_from: str | None = None
        self.scheme: int | None = None
        self.undone: dict[str, Any] = {}
        self.sync_agreement: int | None = None
        self.p_value = 1.0
        self.tile_llr: np.ndarray | None = None  # the strongest tiles read, to combine with the face layer
        self.tile_z = -np.inf

    @property
    def any_detected(self) -> bool:
        return any(e.detected for e in self.layers)

    def _token(self, read: TokenRead, source: str, scheme: int, llr: np.ndarray | None = None) -> None:
        if not read.ok or self.token is not None:
            return
        self.token, self.token_from = format_token(int(read.token or 0)), source
        self.scheme = self.scheme or scheme
        if llr is None:
            self.corrected = read.corrected_bytes
        else:
            self.corrected_bits = int(((llr > 0) != encode_token_v2(int(read.token or 0))).sum())

    def tiles(self, read: tiles.TileRead, frames: str = "all frames") -> None:
        used = _llr(read.soft)
        if self.tile_llr is None or read.z > self.tile_z:
            self.tile_llr, self.tile_z = used, read.z
        token = decode_v2(used)
        attempts = 1
        if not token.ok and read.weighted is not None:
            attempts += 1
            used = _llr(read.weighted)
            token = decode_v2(used)
        self.p_value = min(self.p_value, read.tries * tiles.hoeffding_tail(read.z))
        self.layers.append(
            LayerEvidence(
                "tiles",
                round(read.z, 3),
                round(read.threshold, 3),
                read.detected,
                read.tries,
                read.false_positive + attempts * V2_FALSE_ACCEPT,
                format_token(int(token.token or 0)) if token.ok else None,
                {
                    "frames": frames,
                    "scale": round(read.rescale, 4),
                    "rotation": round(read.rotation, 2),
                    "aspect": round(read.aspect, 4),
                    "chip_px": round(read.chip_px, 3),
                    "mirror": read.mirror,
                    "variant": read.variant,
                    "borders": list(read.box) if read.borders else None,
                    "offset": list(read.offset),
                    "token_decodes": attempts,
                    "token_from_weighted_frames": bool(token.ok and attempts == 2),
                },
            )
        )
        if (read.detected or token.ok) and self.scheme != 2:
            self.scheme = 2
            self.undone = {
                "mirror": read.mirror,
                "borders": list(read.box) if read.borders else None,
                "scale": round(read.rescale, 4),
                "rotation": round(read.rotation, 2),
                "aspect": round(read.aspect, 4),
            }
        self._token(token, "tiles" if frames == "all frames" else "tiles-intra", 2, used)

    def v1(self, result: tuple[int, TokenRead]) -> None:
        agreement, read = result
        self.sync_agreement = agreement
        self.p_value = min(self.p_value, binomial_tail(agreement))
        sync = agreement >= SYNC_THRESHOLD
        self.layers.append(LayerEvidence("v1-sync", agreement, SYNC_THRESHOLD, sync, 1, SYNC_FALSE_POSITIVE))
        self.layers.append(
            LayerEvidence(
                "v1-token",
                read.corrected_bytes if read.ok else -1,
                0,
                read.ok,
                1,
                FALSE_ACCEPT_BOUND,
                format_token(int(read.token or 0)) if read.ok else None,
            )
        )
        if sync or read.ok:
            self.scheme = 1
        self._token(read, "v1-grid", 1)

    def face(self, read: facemark.FaceRead) -> None:
        details: dict[str, Any] = {"faces": read.faces, "frames_with_faces": read.frames}
        if read.soft is None:
            self.layers.append(LayerEvidence("face", 0.0, float("inf"), False, 0, 0.0, None, details))
            return
        llr = _llr(read.soft)
        alone = decode_v2(llr)
        combined = decode_v2(llr + self.tile_llr) if self.tile_llr is not None else TokenRead(None)
        self.p_value = min(self.p_value, read.tries * tiles.hoeffding_tail(read.z))
        details |= {"mirror": read.mirror, "scale": read.scale, "shift_chips": list(read.shift), "slot": read.slot}
        self.layers.append(
            LayerEvidence(
                "face",
                round(read.z, 3),
                round(read.threshold, 3),
                read.detected,
                read.tries,
                read.false_positive + 2 * V2_FALSE_ACCEPT,
                format_token(int(alone.token or 0)) if alone.ok else None,
                details,
            )
        )
        if read.detected or alone.ok or combined.ok:
            self.scheme = 2
            self.undone = self.undone or {"mirror": read.mirror, "borders": None, "scale": None}
        self._token(alone, "face", 2, llr)
        if self.tile_llr is not None:
            self._token(combined, "tiles+face", 2, llr + self.tile_llr)

    def result(self) -> Detection:
        marked = self.token is not None or self.any_detected
        return Detection(
            marked=marked,
            token=self.token,
            sync_agreement=self.sync_agreement,
            sync_p_value=self.p_value,
            token_corrected_bytes=self.corrected,
            frames=self.frames,
            false_positive_bound=sum(e.false_positive for e in self.layers),
            scheme=self.scheme if marked else None,
            token_from=self.token_from,
            undone=self.undone if marked else {},
            layers=tuple(self.layers),
            token_corrected_bits=self.corrected_bits,
        )


def check_markable(frame: np.ndarray) -> None:
    from faceswap.errors import BadInput

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadInput(f"watermarking needs uint8 BGR frames, got {frame.dtype} {frame.shape}")
    if frame.shape[0] * frame.shape[1] < MIN_PIXELS:
        raise BadInput(
            f"frame {frame.shape[1]}x{frame.shape[0]} is too small to carry a watermark (min 256x256 pixels)"
        )
