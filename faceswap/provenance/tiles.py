"""The tiled spread-spectrum layer: a token mark in luma that does not depend on the frame's geometry.

The frame is covered by a grid of chips, CHIP_ROWS of them across its short side (so a rendition
keeps the grid's share of the frame). One key-derived TILE x TILE block of chips repeats over the
grid: a quarter of its chips carry a fixed sign pattern (the sync), the rest carry the 160 code bits,
each bit spread over its own chips with key-derived signs. Chip values are interpolated bilinearly to
pixels, scaled by a texture mask and added to B, G and R alike, so only luma changes.

Reading folds every tile of the frame onto one (a sum by position modulo the tile period), so a
crop costs signal, never sync. The period (scale) comes from the residual's autocorrelation, which
peaks on the tiles' lattice, refined by the sync; the offset from correlating the folded tile with
the sync at every cyclic shift; a mirror by also trying the flipped tile. Uniform bars (letterbox,
pillarbox, a canvas) are stripped first. Video folds the residual of every sampled frame together
before any decision; when that gives no token, each frame is aligned on its own and the frames are
combined, weighted by their own sync (watermark.py also reads a video's intra frames by themselves).

Statistics: an unmarked image fixes its folded tile without knowing the key, so the normalised sync
correlation z is a Rademacher sum over the key's random signs and, by Hoeffding, P(z >= t) <=
exp(-t^2 / 2) for each (scale, mirror, offset) tried. `read` counts its tries and sets the threshold
so that tries * exp(-t^2 / 2) <= SYNC_BUDGET.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from math import exp, log, sqrt

import numpy as np

TILE = 32  # chips per tile side
CHIP_ROWS = 160  # chips across the frame's short side...
MIN_CHIP = 4.5  # ...but no chip smaller than this many pixels (small frames get fewer, larger chips)
SYNC_SHARE = 4  # one chip in SYNC_SHARE is a sync chip
OVERSAMPLE = 2  # pixels per chip when reading
CODE_BITS = 160  # payload.V2_CODE_BITS
AMPLITUDE = 2.8  # luma levels at mask gain 1
SYNC_BUDGET = 1e-7  # false-positive share of the sync decision, per file
SCALE_RANGE = (0.5, 3.0)  # chip sizes the reader searches, relative to `nominal_chip` of the content
SCALE_CANDIDATES = 3  # autocorrelation peaks refined
REFINE = tuple(np.round(np.arange(-0.006, 0.00601, 0.001), 4))  # relative steps around each peak
KEY = b"faceswap/watermark/v2/tiles"


@dataclass(frozen=True)
class Layout:
    signs: np.ndarray  # (TILE, TILE) +-1
    role: np.ndarray  # (TILE, TILE): -1 sync, else the code bit index
    sync: np.ndarray  # (TILE, TILE) signs on sync chips, 0 elsewhere


@lru_cache(maxsize=4)
def layout(key: bytes, side: int = TILE, bits: int = CODE_BITS) -> Layout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    n = side * side
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=n)
    order = rng.permutation(n)
    role = np.empty(n, np.int64)
    n_sync = n // SYNC_SHARE
    role[order[:n_sync]] = -1
    role[order[n_sync:]] = np.arange(n - n_sync) % bits
    signs, role = signs.reshape(side, side), role.reshape(side, side)
    return Layout(signs, role, np.where(role < 0, signs, 0).astype(np.float32))


def chip_values(lay: Layout, bits: np.ndarray) -> np.ndarray:
    """Chip values of one tile: sync signs, and each payload chip's sign times its bit (+-1)."""
    symbols = np.where(np.asarray(bits)[np.maximum(lay.role, 0)] > 0, 1.0, -1.0)
    return np.where(lay.role < 0, lay.signs, lay.signs * symbols).astype(np.float32)


def chip_size(shape: tuple[int, ...]) -> float:
    """Pixels per chip when marking a frame of this shape."""
    return max(nominal_chip(shape), MIN_CHIP)


def nominal_chip(shape: tuple[int, ...]) -> float:
    """The reader's unit: CHIP_ROWS chips across the short side; the search finds the true size."""
    return min(shape[0], shape[1]) / CHIP_ROWS


def render_chips(grid: np.ndarray, shape: tuple[int, int], g: float) -> np.ndarray:
    """Bilinear interpolation of chip values (chip centres at (i + 0.5) * g) onto an (H, W) frame."""
    import cv2

    h, w = shape
    xs = ((np.arange(w, dtype=np.float32) + 0.5) / g - 0.5)[None, :]
    ys = ((np.arange(h, dtype=np.float32) + 0.5) / g - 0.5)[:, None]
    map_x = np.ascontiguousarray(np.broadcast_to(xs, (h, w)))
    map_y = np.ascontiguousarray(np.broadcast_to(ys, (h, w)))
    return cv2.remap(grid, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pattern(shape: tuple[int, ...], bits: np.ndarray, key: bytes) -> np.ndarray:
    """The unit-amplitude mark for a frame of `shape` under `key`, (H, W) float32 (cache it per shape
    and token)."""
    h, w = shape[:2]
    g = chip_size(shape)
    rows, cols = int(np.ceil(h / g)) + 1, int(np.ceil(w / g)) + 1
    tile = chip_values(layout(key), bits)
    grid = np.tile(tile, (rows // TILE + 1, cols // TILE + 1))[:rows, :cols]
    return render_chips(np.ascontiguousarray(grid), (h, w), g)


def luma(bgr: np.ndarray) -> np.ndarray:
    import cv2

    return (
        cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if bgr.dtype == np.uint8
        else (0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]).astype(np.float32)
    )


def strength_map(bgr: np.ndarray, floor: float = 0.5, ceil: float = 1.6, knee: float = 6.0) -> np.ndarray:
    """Texture masking: more mark where the frame is busy, less on flat areas (computed at 1/4 size)."""
    import cv2

    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    y = luma(small)
    detail = y - cv2.GaussianBlur(y, (0, 0), 1.5)
    activity = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 2.0))
    gain = np.clip(floor + activity / knee, floor, ceil).astype(np.float32)
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)


def delta(bgr: np.ndarray, mark: np.ndarray, amplitude: float = AMPLITUDE) -> np.ndarray:
    """The luma change (H, W) float32 that carries `mark` in this frame."""
    return mark * (amplitude * strength_map(bgr))


def add_luma(bgr: np.ndarray, change: np.ndarray) -> np.ndarray:
    """uint8 frame + a luma change added to B, G and R alike, rounded and saturated."""
    import cv2

    step = np.rint(change).astype(np.int16)
    return cv2.add(bgr, cv2.merge([step, step, step]), dtype=cv2.CV_8U)


# ---------------------------------------------------------------- reading


def content_box(bgr: np.ndarray, spread: float = 2.5, min_keep: float = 0.2) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture inside uniform bars (letterbox, pillarbox, a canvas)."""
    y = luma(bgr)
    h, w = y.shape

    def bars(lines: np.ndarray, block: int = 16) -> int:
        """How many lines from the start are flat and of the first line's level (scanned lazily)."""
        ref = float(np.median(lines[0]))
        for start in range(0, len(lines), block):
            chunk = lines[start : start + block]
            flat = (chunk.std(axis=1) <= spread) & (np.abs(chunk.mean(axis=1) - ref) <= 2 * spread)
            if not flat.all():
                return start + int(np.argmin(flat))
        return len(lines)

    top, bottom = bars(y), h - bars(y[::-1])
    left, right = bars(y.T), w - bars(y.T[::-1])
    if bottom - top < h * min_keep or right - left < w * min_keep:
        return 0, h, 0, w
    return top, bottom, left, right


def union_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), max(b[3] for b in boxes)


def residual(bgr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Whitened luma residual of the content box at OVERSAMPLE pixels per nominal chip."""
    import cv2

    top, bottom, left, right = box
    content = bgr[top:bottom, left:right]
    scale = OVERSAMPLE / nominal_chip(content.shape)
    h, w = content.shape[:2]
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    y = cv2.resize(luma(content), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    r = y - cv2.GaussianBlur(y, (0, 0), 1.1)
    norm = np.sqrt(cv2.GaussianBlur(r * r, (0, 0), 2.0)) + 0.5
    return (r / norm).astype(np.float32)


def fold(r: np.ndarray, scale: float, period: int = TILE * OVERSAMPLE) -> np.ndarray:
    """Resample `r` by 1/scale (so a tile spans `period` pixels) and sum it modulo the period."""
    import cv2

    h, w = r.shape
    nh, nw = int(round(h / scale)), int(round(w / scale))
    if nh < period // 2 or nw < period // 2:
        return np.zeros((period, period), np.float32)
    x = cv2.resize(r, (nw, nh), interpolation=cv2.INTER_LINEAR) if abs(scale - 1) > 1e-9 else r
    ph, pw = -(-nh // period) * period, -(-nw // period) * period
    padded = np.zeros((ph, pw), np.float32)
    padded[:nh, :nw] = x
    return padded.reshape(ph // period, period, pw // period, period).sum(axis=(0, 2))


def _cyclic_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out[dy, dx] = sum_j a[j] * b[j + (dy, dx)], cyclic."""
    return np.real(np.fft.ifft2(np.conj(np.fft.fft2(a)) * np.fft.fft2(b)))


def align(folded: np.ndarray, lay: Layout) -> tuple[float, tuple[int, int], np.ndarray]:
    """Best sync z over every cyclic offset (OVERSAMPLE^2 sub-chip phases x side^2 chip shifts):
    (z, offset in folded pixels, the tile's chip values at that offset)."""
    side = lay.sync.shape[0]
    mask_f = np.fft.fft2(np.abs(lay.sync))
    sync_f = np.fft.fft2(lay.sync)
    best: tuple[float, tuple[int, int], np.ndarray] = (-np.inf, (0, 0), np.zeros_like(lay.sync))
    for py in range(OVERSAMPLE):
        for px in range(OVERSAMPLE):
            shifted = np.roll(folded, (-py, -px), axis=(0, 1))
            chips = shifted.reshape(side, OVERSAMPLE, side, OVERSAMPLE).mean(axis=(1, 3))
            corr = np.real(np.fft.ifft2(np.conj(sync_f) * np.fft.fft2(chips)))
            energy = np.real(np.fft.ifft2(np.conj(mask_f) * np.fft.fft2(chips * chips)))
            z = corr / np.sqrt(np.maximum(energy, 1e-12))
            idx = np.unravel_index(int(np.argmax(z)), z.shape)
            if z[idx] > best[0]:
                dy, dx = int(idx[0]), int(idx[1])
                best = (float(z[idx]), (dy * OVERSAMPLE + py, dx * OVERSAMPLE + px), np.roll(chips, (-dy, -dx), (0, 1)))
    return best


def soft_bits(chips: np.ndarray, lay: Layout, bits: int = CODE_BITS) -> np.ndarray:
    """Per code bit, a z-score (positive reads 1) from its chips of an aligned tile."""
    payload = lay.role >= 0
    idx = lay.role[payload]
    sums = np.bincount(idx, weights=(chips * lay.signs)[payload], minlength=bits)
    energy = np.bincount(idx, weights=chips[payload] ** 2, minlength=bits)
    return sums / np.sqrt(np.maximum(energy, 1e-12))


def hoeffding_tail(z: float) -> float:
    return min(1.0, exp(-z * z / 2)) if z > 0 else 1.0


def z_threshold(tries: int, budget: float = SYNC_BUDGET) -> float:
    """Smallest z with tries * exp(-z^2 / 2) <= budget."""
    return sqrt(2 * log(max(tries, 1) / budget))


_LATTICE = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2))


def _bilinear(a: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a sampled at (y, x) (arrays, cyclic), bilinearly."""
    h, w = a.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    y0, x0, y1, x1 = y0 % h, x0 % w, (y0 + 1) % h, (x0 + 1) % w
    top = a[y0, x0] * (1 - fx) + a[y0, x1] * fx
    return top * (1 - fy) + (a[y1, x0] * (1 - fx) + a[y1, x1] * fx) * fy


def autocorrelation(r: np.ndarray) -> np.ndarray:
    """Linear (zero-padded) autocorrelation of `r` per overlapping sample, 1 at lag (0, 0) = [0, 0]."""
    h, w = r.shape
    shape = (1 << int(np.ceil(np.log2(2 * h))), 1 << int(np.ceil(np.log2(2 * w))))
    spec = np.fft.rfft2(r, shape)
    acf = np.fft.irfft2(spec * np.conj(spec), shape)
    ones = np.fft.rfft2(np.ones_like(r), shape)
    overlap = np.maximum(np.fft.irfft2(ones * np.conj(ones), shape), 1.0)
    acf /= overlap
    return (acf / max(acf[0, 0], 1e-12)).astype(np.float32)


def scale_candidates(r: np.ndarray, count: int = SCALE_CANDIDATES) -> list[float]:
    """Tile scales where the residual's autocorrelation peaks on a square lattice, strongest first."""
    acf = autocorrelation(r)
    h, w = r.shape
    base = TILE * OVERSAMPLE
    low, high = SCALE_RANGE
    periods = np.arange(base * low, min(base * high, min(h, w) * 0.9), 0.25)
    if periods.size == 0:
        return [1.0]
    scores = np.zeros(periods.size)
    counts = np.zeros(periods.size)
    for i, j in _LATTICE:
        fits = (i * periods < h * 0.9) & (np.abs(j * periods) < w * 0.9)
        scores += np.where(fits, _bilinear(acf, i * periods, j * periods), 0.0)
        counts += fits
    scores /= np.maximum(counts, 1)
    picked: list[float] = []
    for idx in np.argsort(scores)[::-1]:
        p = float(periods[idx])
        if all(abs(p - q) > 2.0 for q in picked):
            picked.append(p)
        if len(picked) == count:
            break
    return [p / base for p in picked]


@dataclass(frozen=True)
class TileRead:
    """What the tiled layer's reader found in one image or one video's sampled frames."""

    z: float  # best normalised sync correlation
    threshold: float  # z needed for the tries made
    tries: int  # (scale, mirror, offset) hypotheses
    soft: np.ndarray  # per code bit z-scores at the best alignment
    scale: float  # chip size found, relative to the content's nominal chip
    mirror: bool
    offset: tuple[int, int]
    box: tuple[int, int, int, int]  # content box (top, bottom, left, right)
    frame_shape: tuple[int, int]
    weighted: np.ndarray | None = None  # video: soft bits of frames aligned one by one, weighted

    @property
    def detected(self) -> bool:
        return self.z >= self.threshold

    @property
    def false_positive(self) -> float:
        """The sync decision's bound for the tries made."""
        return self.tries * hoeffding_tail(self.threshold)

    @property
    def borders(self) -> bool:
        top, bottom, left, right = self.box
        return (top, left) != (0, 0) or (bottom, right) != self.frame_shape

    @property
    def chip_px(self) -> float:
        """Chip size found, in pixels of the received picture."""
        top, bottom, left, right = self.box
        return self.scale * nominal_chip((bottom - top, right - left))

    @property
    def rescale(self) -> float:
        """Chip size found over the size this picture's own marking would use: 1 when it was not
        rescaled (a crop of a larger frame, whose chips were larger, also shows here)."""
        top, bottom, left, right = self.box
        return self.chip_px / chip_size((bottom - top, right - left))


NULL_Z = 4.0  # about the best z of an unmarked frame over one scale's offsets: frames below add nothing


def frame_weighted(per_frame: list[tuple[float, np.ndarray]]) -> np.ndarray | None:
    """Each frame's own aligned chips, weighted by how far its sync z rises above noise (maximal-ratio
    combining): after a codec the intra frames carry more mark than the predicted ones, and a
    predicted frame's mark moves with the content it was predicted from."""
    total: np.ndarray | None = None
    for z, chips in per_frame:
        rms = float(np.sqrt(np.mean(chips * chips)))
        if rms <= 0 or z <= NULL_Z:
            continue
        part = (z - NULL_Z) * chips / rms
        total = part if total is None else total + part
    return total


def read(frames: list[np.ndarray], key: bytes) -> TileRead:
    """Fold the residuals of `frames` (one image, or frames of one video) and search the geometry for
    the layout of `key`."""
    box = union_box([content_box(f) for f in frames])
    residuals = [residual(f, box) for f in frames]
    total = np.mean(residuals, axis=0) if len(residuals) > 1 else residuals[0]
    lay = layout(key)
    best = (-np.inf, 1.0, False, (0, 0), np.zeros_like(lay.sync))
    tried_scales = set()
    for candidate in scale_candidates(total):
        for step in REFINE:
            s = round(candidate * (1 + step), 5)
            if s in tried_scales:
                continue
            tried_scales.add(s)
            folded = fold(total, s)
            for mirror in (False, True):
                z, offset, chips = align(folded[:, ::-1] if mirror else folded, lay)
                if z > best[0]:
                    best = (z, s, mirror, offset, chips)
    z, s, mirror, offset, chips = best
    weighted = None
    if len(residuals) > 1:
        per_frame = []
        for r in residuals:
            folded = fold(r, s)
            z_f, _, chips_f = align(folded[:, ::-1] if mirror else folded, lay)
            per_frame.append((z_f, chips_f))
        combined = frame_weighted(per_frame)
        weighted = soft_bits(combined, lay) if combined is not None else None
    tries = len(tried_scales) * 2 * OVERSAMPLE**2 * lay.sync.size
    return TileRead(
        z=float(z),
        threshold=z_threshold(tries),
        tries=tries,
        soft=soft_bits(chips, lay),
        scale=float(s),
        mirror=bool(mirror),
        offset=offset,
        box=box,
        frame_shape=(int(frames[0].shape[0]), int(frames[0].shape[1])),
        weighted=weighted,
    )


def spread(items: list, count: int) -> list:
    """At most `count` items, evenly spread (first and last kept)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]
