"""The invisible watermark: scheme 2 marks, and readers for scheme 2 and scheme 1 files.

Scheme 2 (what `embed` writes): the tiled spread-spectrum layer (tiles.py) carries the 48-bit token
+ CRC-32 under a rate-1/2 convolutional code (payload.py, soft Viterbi) in luma, in a form that
survives crops, rescales, borders, mirrors, codecs and tone changes. Scheme 1 (files written
before): rivaGan sync (32 bits) + dwtDctSvd token (RS(16, 8) + CRC-16) on an 8x8 block grid. Its
readers stay, so those files keep verifying.

`detect` makes one decision per file (one image, or the frames sampled from one video), reading
cheapest first and stopping once the token is read: the tiles; scheme 1's layers when the tiles
found nothing. Each decision made adds its false-positive share to the file's bound:
- tiles sync: threshold set so that tries * exp(-z^2/2) <= 1e-7 (Hoeffding, tiles.py), per read
  (a video's intra frames are read again by themselves when all frames give no token);
- each scheme 2 token decode: a wrong word passes the CRC-32 with probability 2^-32;
- scheme 1: sync >= 30 of 32 bits 1.2e-7, its token decode (RS + CRC-16) 1.5e-8.
All of them together stay below FALSE_POSITIVE_BOUND (3.4e-7) per file.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from math import comb, sqrt
from typing import Any

import numpy as np

from faceswap.errors import CheckFailed
from faceswap.ledger.watermark_keys import TILES_LABEL, WatermarkKeys
from faceswap.provenance.watermark import dwtdctsvd, riva, tiles
from faceswap.provenance.watermark.payload import (
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
MIN_PIXELS = 256 * 256  # the floor: smaller frames are refused before marking
READS_FROM = (400, 300)  # the mark read on 10/10 photos from here, 8/10 at 320x240 (scripts/bench_min_size.py)
READS_FROM_PIXELS = READS_FROM[0] * READS_FROM[1]
TOKEN_SCALE = 42.0  # scheme 1 dwtDctSvd quantisation step
CARRIES_FLOOR = 0.5  # Watermarker.carries: both fits at least this (marked >= 0.78, unmarked <= 0.13 measured)
FOREIGN_SYNC = 0.5  # ...and a sync fit this far above the payload's is another token's mark under the key
BOOST_STEPS = 4  # marks tried per frame: the plain one and up to three stronger ones
V1_FRAMES = 8  # scheme 1 is read on at most this many frames (rivaGan is the slow part; 6, 8 and 12 read alike)


def binomial_tail(agree: int, n: int = riva.BITS) -> float:
    """P(at least `agree` of `n` fair coin flips match)."""
    return sum(comb(n, k) for k in range(agree, n + 1)) / 2.0**n


SYNC_FALSE_POSITIVE = binomial_tail(SYNC_THRESHOLD)
FALSE_POSITIVE_BOUND = (  # every reader run: the tiles on all frames and on the intra frames, scheme 1
    2 * tiles.SYNC_BUDGET + SYNC_FALSE_POSITIVE + FALSE_ACCEPT_BOUND + 4 * V2_FALSE_ACCEPT
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
    token_from: str | None = None  # tiles | tiles-intra | v1-grid
    undone: dict[str, Any] = field(default_factory=dict)  # mirror, borders, scale
    layers: tuple[LayerEvidence, ...] = ()
    token_corrected_bits: int | None = None  # scheme 2: code bits the decoder turned round, of 160
    key_id: str | None = None  # the key whose layout read the token or sync ("public": anyone's); None: scheme 1

    @property
    def layer(self) -> str:
        """What proved the mark: e.g. 'tiles+token', 'sync+token' (scheme 1), 'none'."""
        names = {"tiles": "tiles", "v1-sync": "sync"}
        found = [names[e.layer] for e in self.layers if e.detected and e.layer in names]
        return "+".join(dict.fromkeys(found + (["token"] if self.token else []))) or "none"

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["layers"] = [asdict(e) for e in self.layers]
        out["layer"] = self.layer
        return out


PUBLIC_KEY_ID = "public"  # the tiles key written in the source (scheme 2's first outputs): anyone can compute it


@dataclass(frozen=True)
class MarkKey:
    """A tiles layout key and the id verify reports for marks read with it."""

    key_id: str
    tiles: bytes = field(repr=False)


PUBLIC = MarkKey(PUBLIC_KEY_ID, tiles.KEY)


def keyed(keys: WatermarkKeys) -> tuple[MarkKey, ...]:
    """The tiles keys derived from a workspace's secrets present here, newest first."""
    return tuple(MarkKey(k.key_id, k.derive(TILES_LABEL)) for k in keys.newest_first())


class Watermarker:
    """Marks frames (scheme 2 under one key, or scheme 1 for old-format fixtures) and detects either
    scheme, trying each of its reading keys in turn. `Watermarker.marking(keys)` marks with a
    workspace's active secret; `Watermarker.reading(keys)` reads its secrets and the public key."""

    def __init__(
        self,
        scale: float = TOKEN_SCALE,
        work_size: tuple[int, int] = riva.WORK_SIZE,
        scheme: int = SCHEME,
        key: bytes | None = tiles.KEY,
        key_id: str | None = None,
        also_read: tuple[MarkKey, ...] = (),
    ):
        """`key` marks (None: this watermarker only reads) and is read first; `also_read` after it."""
        if scheme not in (1, 2):
            raise ValueError(f"unknown watermark scheme {scheme}")
        self.key = key
        self.key_id = key_id or (PUBLIC_KEY_ID if key == tiles.KEY else "unnamed")
        self.readers = ((MarkKey(self.key_id, key),) if key is not None else ()) + tuple(also_read)
        self.scale = scale
        self.work_size = work_size
        self.scheme = scheme
        self.models = riva.RivaModels()
        self._patterns: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    @classmethod
    def marking(cls, keys: WatermarkKeys) -> Watermarker:
        """Marks with the active secret's tiles key and reads only that key (the sink's read-back)."""
        active = keys.active
        return cls(key=active.derive(TILES_LABEL), key_id=active.key_id)

    @classmethod
    def reading(cls, keys: WatermarkKeys | None) -> Watermarker:
        """Reads a workspace's secrets (newest first), then the public key of older files; never marks."""
        return cls(key=None, also_read=(*(keyed(keys) if keys is not None else ()), PUBLIC))

    def _marking_key(self) -> bytes:
        if self.key is None:
            raise CheckFailed("this watermarker only reads: marking needs the workspace's watermark secret")
        return self.key

    def pattern(self, shape: tuple[int, ...], token: int) -> np.ndarray:
        """The tiles layer's unit pattern for this frame size and token (kept for the next frames)."""
        key = (int(shape[0]), int(shape[1]), token)
        if key not in self._patterns:
            self._patterns[key] = tiles.pattern(shape, encode_token_v2(token), self._marking_key())
            while len(self._patterns) > 6:
                self._patterns.popitem(last=False)
        self._patterns.move_to_end(key)
        return self._patterns[key]

    def embed(self, frames: list[np.ndarray], token: int) -> list[np.ndarray]:
        """Mark a batch of uint8 BGR frames; returns new uint8 frames."""
        for frame in frames:
            check_markable(frame)
        if self.scheme == 1:
            return self._embed_v1(frames, token)
        return [self._embed_informed(f, token) for f in frames]

    def _embed_informed(self, frame: np.ndarray, token: int) -> np.ndarray:
        """Mark one frame, read it back at its own geometry, and mark it again more strongly over its
        busiest parts while its code bits stand out less than tiles.BIT_MARGIN: at the plain strength
        a stochastic texture swamps the mark (lossless 640x360 reads of smooth colour noise failed for
        9 of 200 secrets, scripts/bench_informed.py) and a small frame has too few tiles (320x240
        photos: 1 of 10 read)."""
        pattern, bits = self.pattern(frame.shape, token), encode_token_v2(token)
        wanted = tiles.mark_to_residual(tiles.BIT_MARGIN)
        tried: list[tuple[float, float]] = []  # (boost, mark-to-residual ratio read)
        busy = tiles.activity(frame)
        boost = 1.0
        while True:
            marked = tiles.add_luma(frame, tiles.delta(frame, pattern, boost=boost, busy=busy))
            found = tiles.margin(marked, bits, self._marking_key())
            tried.append((boost, tiles.mark_to_residual(found)))
            if found >= tiles.BIT_MARGIN or boost >= tiles.MAX_BOOST or len(tried) == BOOST_STEPS:
                return marked
            boost = min(tiles.MAX_BOOST, max(1.1 * boost, _next_boost(tried, wanted)))

    def strength(self, frame: np.ndarray, token: int) -> tuple[float, float]:
        """How much of this token's mark (under this watermarker's key) a uint8 BGR frame carries, as
        (sync, payload) fits: 1 or more each where `embed` marked it (more where it raised the mark on a
        busy picture), about 0 where not. A weighted
        least-squares fit of the frame's high-passed luma to the sync and payload parts of the change
        `embed` would add (weights: the inverse local residual power, so texture adds little noise),
        on a half- or quarter-size view where chips allow. Measured on 40 photos
        (scripts/bench_keyed_marks.py): 0.78-1.0 marked, |fit| <= 0.13 unmarked, payload <= 0.18
        under another token."""
        import cv2

        check_markable(frame)
        sync, payload, step = self._regressors(frame.shape, token)
        gain = tiles.AMPLITUDE * tiles.strength_map(frame)
        luma = tiles.luma(frame)
        if step > 1:
            gain, luma = (cv2.resize(a, sync.shape[::-1], interpolation=cv2.INTER_AREA) for a in (gain, luma))
        k = int(round(3 * tiles.chip_size(frame.shape) / step)) | 1
        seen = luma - cv2.blur(luma, (k, k))
        weight = 1.0 / (cv2.blur(seen * seen, (k, k)) + 4.0)
        fits = []
        for part in (sync, payload):
            wanted = part * gain
            wanted -= cv2.blur(wanted, (k, k))
            fits.append(float(np.vdot(weight * seen, wanted) / max(float(np.vdot(weight * wanted, wanted)), 1e-9)))
        return fits[0], fits[1]

    def carries(self, frame: np.ndarray, token: int, floor: float = CARRIES_FLOOR) -> bool:
        """Does the frame already carry this token's mark (sync and payload both fit at >= floor)?
        BadInput when it carries this key's sync beyond this token's payload: another output's mark
        under the same key, which a second token on top would garble (both tokens' code bits cancel
        where they differ)."""
        from faceswap.errors import BadInput

        sync, payload = self.strength(frame, token)
        if sync - payload >= FOREIGN_SYNC:
            raise BadInput(
                "a frame carries the watermark of another output of this workspace: marking it again would make "
                "both tokens unreadable; work from the original footage, not from an output"
            )
        return min(sync, payload) >= floor

    def _regressors(self, shape: tuple[int, ...], token: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The mark's sync and payload parts (unit amplitude) at the fit's working size, cached."""
        import cv2

        step = max(1, int(tiles.chip_size(shape) // 3))
        key = (int(shape[0]), int(shape[1]), token, -1)
        if key not in self._patterns:
            bits = encode_token_v2(token)
            ones, flipped = self.pattern(shape, token), tiles.pattern(shape, 1 - bits, self._marking_key())
            parts = [(ones + flipped) / 2, (ones - flipped) / 2]
            if step > 1:
                size = (int(shape[1]) // step, int(shape[0]) // step)
                parts = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in parts]
            self._patterns[key] = np.stack(parts)
            while len(self._patterns) > 6:
                self._patterns.popitem(last=False)
        self._patterns.move_to_end(key)
        sync, payload = self._patterns[key]
        return sync, payload, step

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
        intra: list[bool] | None = None,
        legacy: bool = True,
    ) -> Detection:
        """One decision over all `frames` (one image, or frames sampled from one video). Each reading
        key is tried in turn (the sync budget split between them, so the file's bound stays the same)
        until one gives the token or finds its sync. `intra` marks the frames a video codec coded on
        their own: when all frames together do not give the token, those are read again by themselves
        (a re-encode keeps the mark best there, while in moving predicted frames it moves with the
        content). `legacy=False` skips scheme 1's readers (the sink's read-back of its own file)."""
        if not frames:
            raise ValueError("no frames to check")
        found = _Reading(len(frames), max(1, len(self.readers)))
        key_frames = [f for f, key in zip(frames, intra or [], strict=False) if key]
        for reader in self.readers:
            found.tiles(tiles.read(frames, reader.tiles), reader.key_id)
            if found.token is None and 0 < len(key_frames) < len(frames):
                found.tiles(tiles.read(key_frames, reader.tiles), reader.key_id, "intra frames")
            if found.token is not None or found.any_detected:
                break
        if legacy and found.token is None and not found.any_detected:
            found.v1(self.read_v1(tiles.spread(frames, V1_FRAMES)))
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

    def __init__(self, frames: int, readers: int = 1) -> None:
        self.frames = frames
        self.readers = readers  # tiles keys tried: each gets an equal share of the sync budget
        self.key_id: str | None = None
        self.layers: list[LayerEvidence] = []
        self.token: str | None = None
        self.corrected = 0
        self.corrected_bits: int | None = None
        self.token_from: str | None = None
        self.scheme: int | None = None
        self.undone: dict[str, Any] = {}
        self.sync_agreement: int | None = None
        self.p_value = 1.0

    @property
    def any_detected(self) -> bool:
        return any(e.detected for e in self.layers)

    def _token(
        self, read: TokenRead, source: str, scheme: int, llr: np.ndarray | None = None, key_id: str | None = None
    ) -> None:
        if not read.ok or self.token is not None:
            return
        self.token, self.token_from, self.key_id = format_token(int(read.token or 0)), source, key_id
        self.scheme = self.scheme or scheme
        if llr is None:
            self.corrected = read.corrected_bytes
        else:
            self.corrected_bits = int(((llr > 0) != encode_token_v2(int(read.token or 0))).sum())

    def tiles(self, read: tiles.TileRead, key_id: str, frames: str = "all frames") -> None:
        threshold = tiles.z_threshold(read.tries, tiles.SYNC_BUDGET / self.readers)
        detected = read.z >= threshold
        used = _llr(read.soft)
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
                round(threshold, 3),
                detected,
                read.tries,
                read.tries * tiles.hoeffding_tail(threshold) + attempts * V2_FALSE_ACCEPT,
                format_token(int(token.token or 0)) if token.ok else None,
                {
                    "key_id": key_id,
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
        if (detected or token.ok) and self.scheme != 2:
            self.scheme, self.key_id = 2, key_id
            self.undone = {
                "mirror": read.mirror,
                "borders": list(read.box) if read.borders else None,
                "scale": round(read.rescale, 4),
                "rotation": round(read.rotation, 2),
                "aspect": round(read.aspect, 4),
            }
        self._token(token, "tiles" if frames == "all frames" else "tiles-intra", 2, used, key_id)

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
            key_id=self.key_id if marked else None,
        )


def _next_boost(tried: list[tuple[float, float]], wanted: float) -> float:
    """The boost expected to read `wanted`: in proportion from the plain mark, then along the line
    through the last two tries (on a texture that clips, the ratio grows slower than the boost)."""
    if len(tried) == 1:
        return tried[0][0] * wanted / tried[0][1]
    (b0, r0), (b1, r1) = tried[-2], tried[-1]
    return b1 + (wanted - r1) * (b1 - b0) / (r1 - r0) if r1 > r0 else tiles.MAX_BOOST


def check_markable(frame: np.ndarray) -> None:
    from faceswap.errors import BadInput

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadInput(f"watermarking needs uint8 BGR frames, got {frame.dtype} {frame.shape}")
    if frame.shape[0] * frame.shape[1] < MIN_PIXELS:
        raise BadInput(
            f"frame {frame.shape[1]}x{frame.shape[0]} is too small to carry a watermark (min 256x256 pixels; "
            f"it reads reliably from about {READS_FROM[0]}x{READS_FROM[1]})"
        )
