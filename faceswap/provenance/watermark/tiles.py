"""The tiled spread-spectrum layer: a token mark in luma that does not depend on the frame's geometry.

The frame is covered by a grid of chips, CHIP_ROWS of them across its short side (so a rendition
keeps the grid's share of the frame). One key-derived TILE x TILE block of chips repeats over the
grid: a quarter of its chips carry the sync, the rest carry the 160 code bits, each bit spread over
its own chips. Which chips are sync and which bit each other chip carries is fixed by the key; the
chips' signs are one of VARIANTS keyed sign patterns and the tile starts at a keyed cyclic shift,
both picked per output by a keyed hash of the token, so that outputs of one workspace share no common
pattern that averaging many of them would reveal.
Chip values are interpolated bilinearly to pixels, scaled by a texture mask and added to B, G and R
alike, so only luma changes. The marker reads each marked frame back at the geometry it wrote
(`margin`) and, where the mark would not read (a texture that swamps it, a small frame with few
tiles), raises the mask's ceiling (`delta`'s boost) until the code bits stand out by BIT_MARGIN
(informed embedding).
The first release's public key (`KEY`) had one sign pattern: its files, and marks written with it,
keep that scheme exactly.

Reading folds every tile of the frame onto one (a sum by position modulo the tile lattice), so a
crop costs signal, never sync. The lattice comes from the residual's autocorrelation (lattice.py:
its size, its turn, its stretch, so rescales, rotations and aspect changes are undone), the offset
and the sign pattern from correlating the folded tile with every variant's sync at every cyclic
shift, a mirror by also trying the flipped tile. Uniform bars (letterbox, pillarbox, a canvas) are
stripped first. Video folds the residual of every sampled frame together before any decision; when
that gives no token, each frame is aligned on its own and the frames are combined, weighted by their
own sync (marker.py also reads a video's intra frames by themselves).

Statistics: an unmarked image fixes its folded tile without knowing the key, so the normalised sync
correlation z is a Rademacher sum over the key's random signs and, by Hoeffding, P(z >= t) <=
exp(-t^2 / 2) for each (lattice, mirror, offset, variant) tried. `read` counts its tries and sets the
threshold so that tries * exp(-t^2 / 2) <= SYNC_BUDGET.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from math import exp, log, sqrt

import numpy as np

from faceswap.provenance.watermark import lattice

TILE = 32  # chips per tile side
CHIP_ROWS = 160  # chips across the frame's short side...
MIN_CHIP = 4.5  # ...but no chip smaller than this many pixels (small frames get fewer, larger chips)
SYNC_SHARE = 4  # one chip in SYNC_SHARE is a sync chip
OVERSAMPLE = 2  # pixels per chip of the folded tile
DENSITY = 2.5  # residual pixels per nominal chip: a picture squashed from 16:9 to 1:1 keeps 1.4 per chip
CODE_BITS = 160  # payload.V2_CODE_BITS
AMPLITUDE = 2.8  # luma levels at mask gain 1
BIT_MARGIN = 1.3  # mean per-bit z a marked frame must read at its own geometry (lossless reads: all from 1.3)
MAX_BOOST = 2.5  # the most the texture mask's ceiling is raised by to get there
SYNC_BUDGET = 1e-7  # false-positive share of the sync decision, per file
VARIANTS = 16  # keyed sign patterns per key (one per output, by token); the public KEY has one
SQUARE_CANDIDATES = 3  # upright square lattices folded (each in REFINE steps)
TURNED_CANDIDATES = 3  # turned or stretched lattices folded (each in SHARPEN steps per vector)
ALIGN_BATCH = 16  # folded tiles correlated at once (memory: batch x 8 x VARIANTS x TILE^2 floats)
REFINE = tuple(np.round(np.arange(-0.006, 0.00601, 0.001), 4))  # relative steps around an upright lattice
SHARPEN = (-0.001, 0.0, 0.001)  # relative steps of each vector around a turned or stretched lattice
KEY = b"faceswap/watermark/v2/tiles"  # public: anyone can compute its layout; files of the first release


@dataclass(frozen=True)
class Layout:
    signs: np.ndarray  # (variants, TILE, TILE) +-1: one sign pattern per variant
    role: np.ndarray  # (TILE, TILE): -1 sync, else the code bit index

    @property
    def sync(self) -> np.ndarray:
        """(variants, TILE, TILE): each variant's signs on the sync chips, 0 elsewhere."""
        return np.where(self.role < 0, self.signs, 0).astype(np.float32)

    @property
    def variants(self) -> int:
        return int(self.signs.shape[0])


def variant_count(key: bytes) -> int:
    """Sign patterns a key's marks use: one for the public key of the first release (its files were
    written so), VARIANTS for a workspace secret."""
    return 1 if key == KEY else VARIANTS


@lru_cache(maxsize=8)
def layout(key: bytes, side: int = TILE, bits: int = CODE_BITS) -> Layout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    n = side * side
    first = rng.choice(np.array([-1.0, 1.0], np.float32), size=n)
    order = rng.permutation(n)
    role = np.empty(n, np.int64)
    n_sync = n // SYNC_SHARE
    role[order[:n_sync]] = -1
    role[order[n_sync:]] = np.arange(n - n_sync) % bits
    signs = [first]
    for v in range(1, variant_count(key)):
        seed = hashlib.sha256(key + b"/variant/" + v.to_bytes(2, "big")).digest()[:8]
        signs.append(np.random.default_rng(int.from_bytes(seed, "big")).choice(np.array([-1.0, 1.0], np.float32), n))
    return Layout(np.stack(signs).reshape(-1, side, side), role.reshape(side, side))


def variant_of(bits: np.ndarray, key: bytes) -> tuple[int, tuple[int, int]]:
    """The sign pattern and the cyclic shift (chips) of the tile an output with these code bits uses:
    a keyed hash, the same for the bits and their complement (so a token's sync and payload parts can
    be told apart by marking both). The reader searches every shift anyway; a different one per output
    keeps many outputs' tiles from lining up on the public chip grid."""
    if variant_count(key) == 1:
        return 0, (0, 0)
    bits = np.asarray(bits).astype(np.uint8) & 1
    canonical = bits ^ bits[0]
    digest = hashlib.sha256(key + b"/variant-of/" + np.packbits(canonical).tobytes()).digest()
    draw = int.from_bytes(digest[:8], "big")
    return draw % variant_count(key), ((draw >> 32) % TILE, (draw >> 40) % TILE)


def chip_values(lay: Layout, bits: np.ndarray, variant: int = 0) -> np.ndarray:
    """Chip values of one tile: sync signs, and each payload chip's sign times its bit (+-1)."""
    symbols = np.where(np.asarray(bits)[np.maximum(lay.role, 0)] > 0, 1.0, -1.0)
    signs = lay.signs[variant]
    return np.where(lay.role < 0, signs, signs * symbols).astype(np.float32)


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
    variant, shift = variant_of(bits, key)
    tile = np.roll(chip_values(layout(key), bits, variant), shift, axis=(0, 1))
    grid = np.tile(tile, (rows // TILE + 1, cols // TILE + 1))[:rows, :cols]
    return render_chips(np.ascontiguousarray(grid), (h, w), g)


def luma(bgr: np.ndarray) -> np.ndarray:
    import cv2

    return (
        cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if bgr.dtype == np.uint8
        else (0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]).astype(np.float32)
    )


def grey(bgr: np.ndarray) -> np.ndarray:
    """Luma as the reader keeps it for a frame: uint8 for uint8 frames (a quarter of float's memory)."""
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.dtype == np.uint8 else luma(bgr)


CEILING = 1.6  # the most gain texture masking gives the busiest parts of a frame (scripts/bench_texture_ceiling.py)


def activity(bgr: np.ndarray) -> np.ndarray:
    """How busy each part of the frame is: local luma detail, at 1/4 size."""
    import cv2

    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    y = luma(small)
    detail = y - cv2.GaussianBlur(y, (0, 0), 1.5)
    return np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 2.0))


def gain_from(
    busy: np.ndarray,
    shape: tuple[int, ...],
    floor: float = 0.5,
    ceil: float | None = None,
    knee: float = 6.0,
    boost: float = 1.0,
) -> np.ndarray:
    """The strength map of a frame of `shape` whose `activity` is `busy` (see strength_map): one
    activity serves every boost that marking tries on the frame."""
    import cv2

    top = (CEILING if ceil is None else ceil) * boost
    gain = np.clip(floor + busy / knee, floor, top).astype(np.float32)
    return cv2.resize(gain, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def strength_map(
    bgr: np.ndarray, floor: float = 0.5, ceil: float | None = None, knee: float = 6.0, boost: float = 1.0
) -> np.ndarray:
    """Texture masking: more mark where the frame is busy, less on flat areas (computed at 1/4 size).
    `boost` raises the ceiling (CEILING unless `ceil` is given) by that factor: only the busiest
    parts, where the ceiling held the mark back, take more; the rest keeps its gain."""
    return gain_from(activity(bgr), bgr.shape, floor, ceil, knee, boost)


def delta(
    bgr: np.ndarray,
    mark: np.ndarray,
    amplitude: float = AMPLITUDE,
    boost: float = 1.0,
    busy: np.ndarray | None = None,
) -> np.ndarray:
    """The luma change (H, W) float32 that carries `mark` in this frame; `busy`: the frame's `activity`,
    where the caller tries several boosts on one frame."""
    return mark * (amplitude * gain_from(activity(bgr) if busy is None else busy, bgr.shape, boost=boost))


def add_luma(bgr: np.ndarray, change: np.ndarray) -> np.ndarray:
    """uint8 frame + a luma change added to B, G and R alike, rounded and saturated."""
    import cv2

    step = np.rint(change).astype(np.int16)
    return cv2.add(bgr, cv2.merge([step, step, step]), dtype=cv2.CV_8U)


# ---------------------------------------------------------------- reading


def content_box(y: np.ndarray, spread: float = 2.5, min_keep: float = 0.2) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture (luma `y`) inside uniform bars (letterbox, pillarbox,
    a canvas)."""
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


def residual(y: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Whitened residual of the content box of luma `y` at DENSITY pixels per nominal chip."""
    import cv2

    top, bottom, left, right = box
    content = y[top:bottom, left:right]
    scale = DENSITY / nominal_chip(content.shape)
    h, w = content.shape[:2]
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    y = cv2.resize(content.astype(np.float32), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    r = y - cv2.GaussianBlur(y, (0, 0), 1.1)
    norm = np.sqrt(cv2.GaussianBlur(r * r, (0, 0), 2.0)) + 0.5
    return (r / norm).astype(np.float32)


def upright(scale: float) -> np.ndarray:
    """The lattice basis of an unturned, unstretched tile at `scale` (1: the nominal chip)."""
    period = TILE * DENSITY * scale
    return np.array([[0.0, period], [period, 0.0]])


def fold(r: np.ndarray, basis: np.ndarray, period: int = TILE * OVERSAMPLE) -> np.ndarray:
    """Resample `r` so that the lattice `basis` (rows (dy, dx) of one tile step along the tile's rows
    and columns) becomes square with side `period`, and sum it modulo the period."""
    import cv2

    to_residual = np.array([[basis[0][1], basis[1][1]], [basis[0][0], basis[1][0]]]) / period  # (u, v) -> (x, y)
    h, w = r.shape
    corners = np.linalg.inv(to_residual) @ np.array([[0.0, w, 0.0, w], [0.0, 0.0, h, h]])
    origin = np.floor(corners.min(axis=1))
    nw, nh = (int(n) for n in np.ceil(corners.max(axis=1) - origin))
    if nh < period // 2 or nw < period // 2:
        return np.zeros((period, period), np.float32)
    if np.allclose(to_residual, np.eye(2)):
        x = r
    else:
        warp = np.hstack([to_residual, (to_residual @ origin)[:, None]])
        x = cv2.warpAffine(r, warp, (nw, nh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0)
    ph, pw = -(-nh // period) * period, -(-nw // period) * period
    padded = np.zeros((ph, pw), np.float32)
    padded[:nh, :nw] = x[:nh, :nw]
    return padded.reshape(ph // period, period, pw // period, period).sum(axis=(0, 2))


@dataclass(frozen=True)
class Alignment:
    """The best sync correlation of folded tiles: its z, offset (folded pixels), sign pattern, whether
    the tile was read mirrored, the tile's chip values at that offset and which tile of the batch."""

    z: float
    offset: tuple[int, int]
    variant: int
    mirror: bool
    chips: np.ndarray
    index: int = 0  # which folded tile of a batch


@lru_cache(maxsize=8)
def _sync_spectra(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate spectra of every variant's sync and of the sync chips' mask, for `align`."""
    lay = layout(key)
    return np.conj(np.fft.rfft2(lay.sync)), np.conj(np.fft.rfft2((lay.role < 0).astype(np.float32)))


def phases(folds: np.ndarray, side: int = TILE) -> np.ndarray:
    """(n, OVERSAMPLE^2, side, side): each folded tile's chip values at each sub-chip phase."""
    o = OVERSAMPLE
    block = sum(np.roll(folds, (-dy, -dx), axis=(1, 2)) for dy in range(o) for dx in range(o)) / o**2
    return np.stack([block[:, py::o, px::o] for py in range(o) for px in range(o)], axis=1)


def align(
    folds: np.ndarray, key: bytes, variants: tuple[int, ...] | None = None, mirrors: tuple[bool, ...] = (False, True)
) -> Alignment:
    """Best sync z over a batch of folded tiles (n, period, period) or one, every cyclic offset
    (OVERSAMPLE^2 sub-chip phases x TILE^2 chip shifts), every mirror in `mirrors` and every sign
    pattern of `key`'s layout (or those listed). `Alignment.index` says which tile of the batch."""
    sync_f, mask_f = _sync_spectra(key)
    picked = np.arange(sync_f.shape[0]) if variants is None else np.array(variants)
    folds = np.asarray(folds, np.float32).reshape(-1, *np.shape(folds)[-2:])
    best = Alignment(-np.inf, (0, 0), 0, False, np.zeros((TILE, TILE), np.float32))
    for start in range(0, len(folds), ALIGN_BATCH):
        chunk = folds[start : start + ALIGN_BATCH]
        chips = np.concatenate([phases(chunk[:, :, ::-1] if m else chunk) for m in mirrors], axis=1)
        side = chips.shape[-1]
        corr = np.fft.irfft2(sync_f[picked][None, None] * np.fft.rfft2(chips)[:, :, None], (side, side))
        energy = np.fft.irfft2(mask_f * np.fft.rfft2(chips * chips), (side, side))
        z = corr / np.sqrt(np.maximum(energy, 1e-12))[:, :, None]
        n, which, v, dy, dx = (int(i) for i in np.unravel_index(int(np.argmax(z)), z.shape))
        if z[n, which, v, dy, dx] > best.z:
            mirror, phase = divmod(which, OVERSAMPLE**2)
            py, px = divmod(phase, OVERSAMPLE)
            best = Alignment(
                float(z[n, which, v, dy, dx]),
                (dy * OVERSAMPLE + py, dx * OVERSAMPLE + px),
                int(picked[v]),
                bool(mirrors[mirror]),
                np.roll(chips[n, which], (-dy, -dx), (0, 1)),
                start + n,
            )
    return best


def soft_bits(chips: np.ndarray, lay: Layout, variant: int = 0, bits: int = CODE_BITS) -> np.ndarray:
    """Per code bit, a z-score (positive reads 1) from its chips of an aligned tile."""
    payload = lay.role >= 0
    idx = lay.role[payload]
    sums = np.bincount(idx, weights=(chips * lay.signs[variant])[payload], minlength=bits)
    energy = np.bincount(idx, weights=chips[payload] ** 2, minlength=bits)
    return sums / np.sqrt(np.maximum(energy, 1e-12))


def margin(marked: np.ndarray, bits: np.ndarray, key: bytes) -> float:
    """How clearly a frame marked with `bits` under `key` carries them, read at the geometry it was
    marked at (the whole frame, its own chip size, unmirrored): the mean over code bits of each bit's
    z-score toward its true value. It tops out at BIT_CEILING (a mark with nothing under it); lossless
    reads start losing the token below about 1.2 (scripts/bench_informed.py)."""
    y = grey(marked)
    h, w = y.shape
    r = residual(y, (0, h, 0, w))
    folded = fold(r, upright(chip_size(marked.shape) / nominal_chip(marked.shape)))
    variant, _ = variant_of(bits, key)
    found = align(folded, key, (variant,), (False,))
    soft = soft_bits(found.chips, layout(key), variant)
    return float(np.mean(soft * np.where(np.asarray(bits) > 0, 1.0, -1.0)))


BIT_CEILING = sqrt(TILE * TILE * (1 - 1 / SYNC_SHARE) / CODE_BITS)  # per-bit z: chips per bit, one folded tile


def mark_to_residual(found: float) -> float:
    """The mark-to-residual amplitude ratio a `margin` of `found` stands for: the per-bit z is the
    folded chips' correlation rho with the bits times BIT_CEILING, and rho holds a ratio of
    rho / sqrt(1 - rho^2). It grows about in proportion to the mark's amplitude, so the marker steers
    its raise on it."""
    rho = min(max(found / BIT_CEILING, 0.05), 0.95)
    return rho / sqrt(1 - rho * rho)


def hoeffding_tail(z: float) -> float:
    return min(1.0, exp(-z * z / 2)) if z > 0 else 1.0


def z_threshold(tries: int, budget: float = SYNC_BUDGET) -> float:
    """Smallest z with tries * exp(-z^2 / 2) <= budget."""
    return sqrt(2 * log(max(tries, 1) / budget))


def lattices(r: np.ndarray) -> list[np.ndarray]:
    """Every lattice basis the reader folds `r` along: each upright square period lattice.py proposes,
    in REFINE steps of scale, and each turned or stretched basis, in SHARPEN steps of each vector."""
    periods, bases = lattice.candidates(r, TILE * DENSITY, SQUARE_CANDIDATES, TURNED_CANDIDATES, max(REFINE))
    out: list[np.ndarray] = []
    seen: set[float] = set()
    for period in periods:
        for step in REFINE:
            scale = round(period * (1 + step) / (TILE * DENSITY), 5)
            if scale not in seen:
                seen.add(scale)
                out.append(upright(scale))
    for basis in bases:
        out += [np.array([basis[0] * (1 + a), basis[1] * (1 + b)]) for a in SHARPEN for b in SHARPEN]
    return out


def tries_per_lattice(lay: Layout) -> int:
    """Hypotheses one folded lattice adds: 2 mirrors x OVERSAMPLE^2 phases x TILE^2 shifts x variants."""
    return 2 * OVERSAMPLE**2 * lay.role.size * lay.variants


def most_tries(key: bytes) -> int:
    """The most hypotheses one read under `key` can make (every candidate lattice proposed)."""
    lattices_at_most = SQUARE_CANDIDATES * len(REFINE) + TURNED_CANDIDATES * len(SHARPEN) ** 2
    return lattices_at_most * tries_per_lattice(layout(key))


@dataclass(frozen=True)
class TileRead:
    """What the tiled layer's reader found in one image or one video's sampled frames."""

    z: float  # best normalised sync correlation
    threshold: float  # z needed for the tries made
    tries: int  # (lattice, mirror, offset, variant) hypotheses
    soft: np.ndarray  # per code bit z-scores at the best alignment
    basis: np.ndarray  # the lattice found: rows (dy, dx), in residual pixels, of one tile step
    mirror: bool
    offset: tuple[int, int]
    box: tuple[int, int, int, int]  # content box (top, bottom, left, right)
    frame_shape: tuple[int, int]
    variant: int = 0  # the sign pattern found
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
    def scale(self) -> float:
        """Chip size found (geometric mean of its width and height), over the content's nominal chip."""
        return float(sqrt(abs(np.linalg.det(self.basis)))) / (TILE * DENSITY)

    @property
    def rotation(self) -> float:
        """Degrees the tile turned, anticlockwise as seen (a mirrored picture turns the other way)."""
        return float(np.degrees(np.arctan2(-self.basis[0][0], self.basis[0][1])))

    @property
    def aspect(self) -> float:
        """Chip width over chip height as received: 1 when the picture kept its aspect ratio."""
        return float(np.hypot(*self.basis[0]) / np.hypot(*self.basis[1]))

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


class Folded:
    """The key-independent part of reading one file: picture box, residuals, lattice candidates and
    the folded tile for each, so that several keys can be read off one preparation."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        greys = [grey(f) for f in frames]
        self.box = union_box([content_box(y) for y in greys])
        self.residuals = [residual(y, self.box) for y in greys]
        self.total = np.mean(self.residuals, axis=0) if len(self.residuals) > 1 else self.residuals[0]
        self.bases = lattices(self.total)
        self.folds = np.array([fold(self.total, b) for b in self.bases])
        self.frame_shape = (int(frames[0].shape[0]), int(frames[0].shape[1]))

    def read(self, key: bytes) -> TileRead:
        """Search every folded lattice, mirror, offset and sign pattern for the layout of `key`."""
        lay = layout(key)
        best = align(self.folds, key)
        basis = self.bases[best.index]
        tries = max(len(self.bases), 1) * tries_per_lattice(lay)
        return TileRead(
            z=float(best.z),
            threshold=z_threshold(tries),
            tries=tries,
            soft=soft_bits(best.chips, lay, best.variant),
            basis=basis,
            mirror=best.mirror,
            offset=best.offset,
            box=self.box,
            frame_shape=self.frame_shape,
            variant=best.variant,
            weighted=self._weighted(key, basis, best),
        )

    def _weighted(self, key: bytes, basis: np.ndarray, found: Alignment) -> np.ndarray | None:
        """Video: each frame folded along the lattice found and aligned on its own, then combined."""
        if len(self.residuals) < 2:
            return None
        per_frame = []
        for r in self.residuals:
            own = align(fold(r, basis), key, (found.variant,), (found.mirror,))
            per_frame.append((own.z, own.chips))
        combined = frame_weighted(per_frame)
        return soft_bits(combined, layout(key), found.variant) if combined is not None else None


def read(frames: list[np.ndarray], key: bytes) -> TileRead:
    """Fold the residuals of `frames` (one image, or frames of one video) and search the geometry for
    the layout of `key`."""
    return Folded(frames).read(key)


def spread(items: list, count: int) -> list:
    """At most `count` items, evenly spread (first and last kept)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]
