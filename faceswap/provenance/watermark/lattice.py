"""The tiles' lattice in a received picture: how big the tile is, which way it turned, how it stretched.

The tiled mark repeats one tile, so the whitened residual's autocorrelation peaks on the tile
lattice: at the two basis vectors (one near the picture's rows, one near its columns), their sums
and their multiples. A rescale scales both, a rotation turns both, an aspect change (4:3 shown as
16:9, or as 1:1) stretches one more than the other; all of it shows as the two vectors. The reader
takes the strongest peaks near each axis (their fundamentals, not multiples), pairs them, keeps the
pairs whose whole lattice the autocorrelation supports, and sharpens each vector on its harmonics.
The tiles' reader then folds the picture along each candidate basis and lets the keyed sync decide
(every basis it folds is counted in its false-positive bound); this module only proposes, from data
anyone can compute.

A basis is a 2 x 2 array whose rows are the vectors (dy, dx), in residual pixels, of one tile step
along the tile's rows (first row) and along its columns (second row). Lengths are searched relative to
`tile`, the period of an unscaled tile in residual pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SHORTEST, LONGEST = 0.45, 3.1  # basis vector lengths searched, in unscaled tile periods
MAX_TURN = np.radians(12.0)  # rotation (+-5 degrees) and the shear a rotation + aspect change adds
MAX_STRETCH = 2.2  # longest over shortest basis vector (16:9 shown as 1:1 is 1.78)
FINER = 0.7  # a finer lattice replaces a coarser one when its support is at least this share
PEAKS = 6  # peaks kept near each axis
UPRIGHT = 0.0015  # turn (radians) or stretch below which an upright square lattice reads a basis
ROUGH = 0.012  # two candidates this close before sharpening (whole-pixel peaks) are one
SPARE = 2  # candidates sharpened beyond those wanted, in case the best are upright squares
_SUMS = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2))  # lattice points that score a basis


def bilinear(a: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a sampled at (y, x) (arrays, cyclic), bilinearly."""
    h, w = a.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    y0, x0, y1, x1 = y0 % h, x0 % w, (y0 + 1) % h, (x0 + 1) % w
    top = a[y0, x0] * (1 - fx) + a[y0, x1] * fx
    return top * (1 - fy) + (a[y1, x0] * (1 - fx) + a[y1, x1] * fx) * fy


@lru_cache(maxsize=8)
def _overlap(h: int, w: int, shape: tuple[int, int]) -> np.ndarray:
    ones = np.fft.rfft2(np.ones((h, w), np.float32), shape)
    return np.maximum(np.fft.irfft2(ones * np.conj(ones), shape), 1.0)


def autocorrelation(r: np.ndarray) -> np.ndarray:
    """Linear (zero-padded) autocorrelation of `r` per overlapping sample, 1 at lag (0, 0) = [0, 0]."""
    h, w = r.shape
    shape = (1 << int(np.ceil(np.log2(2 * h))), 1 << int(np.ceil(np.log2(2 * w))))
    spec = np.fft.rfft2(r, shape)
    acf = np.fft.irfft2(spec * np.conj(spec), shape) / _overlap(h, w, shape)
    return (acf / max(acf[0, 0], 1e-12)).astype(np.float32)


class Acf:
    """The autocorrelation of one residual, the lags that fall well inside it and the unscaled tile
    period (residual pixels) that lengths are measured against."""

    def __init__(self, r: np.ndarray, tile: float) -> None:
        self.values = autocorrelation(r)
        self.h, self.w = r.shape
        self.tile = tile

    def inside(self, y: np.ndarray, x: np.ndarray, share: float = 0.85) -> np.ndarray:
        return (np.abs(y) < share * self.h) & (np.abs(x) < share * self.w)

    def at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return bilinear(self.values, np.asarray(y, np.float64), np.asarray(x, np.float64))

    def comb(self, v: np.ndarray, harmonics: int = 3) -> float:
        """Mean autocorrelation over the multiples of `v` that fit: a lattice vector's support."""
        k = np.arange(1, harmonics + 1)
        y, x = k * v[0], k * v[1]
        ok = self.inside(y, x)
        return float(np.mean(self.at(y[ok], x[ok]))) if ok.any() else -np.inf

    def support(self, basis: np.ndarray) -> float:
        """Mean autocorrelation at the lattice points that score a basis (those that fit)."""
        points = np.array([i * basis[0] + j * basis[1] for i, j in _SUMS])
        ok = self.inside(points[:, 0], points[:, 1])
        return float(np.mean(self.at(points[ok, 0], points[ok, 1]))) if ok.sum() >= 3 else -np.inf


def axis_peaks(acf: Acf, horizontal: bool, count: int = PEAKS) -> list[np.ndarray]:
    """The strongest lattice-vector candidates within MAX_TURN of one axis (fundamentals included)."""
    extent = acf.w if horizontal else acf.h
    longest = min(LONGEST * acf.tile, 0.9 * extent)
    main = np.arange(int(SHORTEST * acf.tile), int(longest) + 1)
    if main.size == 0:
        return []
    reach = int(np.ceil(np.tan(MAX_TURN) * longest)) + 1
    along, across = np.meshgrid(main, np.arange(-reach, reach + 1), indexing="ij")
    dx, dy = (along, across) if horizontal else (across, along)
    score = acf.at(dy, dx) + 0.5 * np.where(acf.inside(2 * dy, 2 * dx), acf.at(2 * dy, 2 * dx), 0.0)
    valid = (np.abs(across) <= np.tan(MAX_TURN) * along + 1) & acf.inside(dy, dx, 0.9)
    score = np.where(valid, score, -np.inf)
    peaks = valid & (score == _max3(score))
    idx = np.flatnonzero(peaks.ravel())
    idx = idx[np.argsort(score.ravel()[idx])[::-1][: 3 * count]]
    found: list[np.ndarray] = []
    for i in idx:
        v = np.array([dy.ravel()[i], dx.ravel()[i]], np.float64)
        found += [v / k for k in (1, 2, 3, 4) if np.hypot(*v) / k >= SHORTEST * acf.tile]
    ranked = sorted(found, key=lambda v: -acf.comb(v))
    kept: list[np.ndarray] = []
    for v in ranked:
        if all(np.hypot(*(v - u)) >= 1.5 for u in kept):
            kept.append(v)
    return kept[:count]


def _max3(a: np.ndarray) -> np.ndarray:
    """3 x 3 maximum filter (edges padded with -inf)."""
    padded = np.pad(a, 1, constant_values=-np.inf)
    h, w = a.shape
    return np.max([padded[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)


def normalise(basis: np.ndarray) -> np.ndarray:
    """Gauss-reduce the pair (the most orthogonal basis of the same lattice) and point the first vector
    right, the second down (the autocorrelation cannot tell a vector from its negative)."""
    a, b = basis[0].copy(), basis[1].copy()
    for _ in range(4):
        b = b - np.round(np.dot(a, b) / np.dot(a, a)) * a
        a = a - np.round(np.dot(a, b) / np.dot(b, b)) * b
    if abs(a[0]) > abs(a[1]):  # keep the row-wise vector first
        a, b = b, a
    a = a if a[1] >= 0 else -a
    b = b if b[0] >= 0 else -b
    return np.array([a, b])


def finest(acf: Acf, basis: np.ndarray) -> np.ndarray:
    """Replace a basis by a finer one (a vector divided by 2, 3, ...) while the lattice points the finer
    basis adds are supported nearly as well as the basis itself: a multiple of the lattice scores like
    the lattice itself. Only the added points count, since the points the two lattices share would
    let a finer basis of a strong lattice pass on the coarse one's support alone."""
    best, score = basis, acf.support(basis)
    changed = True
    while changed:
        changed = False
        for row in (0, 1):
            for k in range(2, int(np.hypot(*best[row]) / (SHORTEST * acf.tile)) + 1):
                finer = best.copy()
                finer[row] = finer[row] / k
                if _added_support(acf, finer, row, k) >= FINER * score:
                    best, score, changed = finer, max(score, acf.support(finer)), True
                    break
    return best


def _added_support(acf: Acf, finer: np.ndarray, row: int, k: int) -> float:
    """Mean autocorrelation at the points of the finer lattice that the coarser one (its `row` vector
    k times longer) lacks: m steps of the finer vector, m not a multiple of k, plus -1, 0 or 1 of the
    other vector."""
    other = finer[1 - row]
    points = np.array([m * finer[row] + n * other for m in range(1, 2 * k) if m % k for n in (-1, 0, 1)])
    ok = acf.inside(points[:, 0], points[:, 1])
    return float(np.mean(acf.at(points[ok, 0], points[ok, 1]))) if ok.sum() >= 2 else -np.inf


def sharpen(acf: Acf, basis: np.ndarray, rounds: int = 2) -> np.ndarray:
    """The basis near `basis` whose whole lattice (every point i * a + j * b that fits, weighted by its
    overlap) the autocorrelation supports most, one vector at a time, coarse then fine: the far
    lattice points fix the lengths and angles to a fraction of a residual pixel."""
    best = np.array(basis, np.float64)
    for _ in range(rounds):
        for row in (0, 1):
            for span, step in ((1.0, 0.1), (0.12, 0.01)):
                best[row] = _sharpen_vector(acf, best, row, span, step)
    return best


def _sharpen_vector(acf: Acf, basis: np.ndarray, row: int, span: float, step: float) -> np.ndarray:
    reach = [int(min(acf.h, acf.w) * 0.85 / max(np.hypot(*v), 1.0)) + 2 for v in basis]
    i, j = np.meshgrid(np.arange(-reach[0], reach[0] + 1), np.arange(reach[1] + 1), indexing="ij")
    moving = (i, j)[row].ravel()
    keep = (moving != 0) & ((j.ravel() > 0) | (i.ravel() > 0))  # moved by the vector, one of each +- pair
    lags = np.outer(i.ravel()[keep], basis[0]) + np.outer(j.ravel()[keep], basis[1])
    fits = acf.inside(lags[:, 0], lags[:, 1], 0.9)
    lags, moving = lags[fits], moving[keep][fits]
    d = np.arange(-span, span + step / 2, step)
    gy, gx = np.meshgrid(d, d, indexing="ij")
    y = lags[:, 0, None, None] + moving[:, None, None] * gy
    x = lags[:, 1, None, None] + moving[:, None, None] * gx
    weight = np.clip((1 - np.abs(y) / acf.h) * (1 - np.abs(x) / acf.w), 0, 1) * acf.inside(y, x)
    total = (acf.at(y, x) * weight).sum(axis=0)
    best = np.unravel_index(int(np.argmax(total)), total.shape)
    return basis[row] + np.array([gy[best], gx[best]])


def square_periods(acf: Acf, count: int) -> list[float]:
    """Periods (residual pixels) of an upright square lattice that the autocorrelation supports most
    (the unstretched, unturned case, scored on all six lattice points at once)."""
    periods = np.arange(acf.tile * 0.5, min(acf.tile * 3.0, min(acf.h, acf.w) * 0.9), 0.25)
    if periods.size == 0:
        return []
    scores = np.zeros(periods.size)
    counts = np.zeros(periods.size)
    for i, j in _SUMS:
        fits = acf.inside(i * periods, j * periods, 0.9)
        scores += np.where(fits, acf.at(i * periods, j * periods), 0.0)
        counts += fits
    scores /= np.maximum(counts, 1)
    picked: list[float] = []
    for idx in np.argsort(scores)[::-1]:
        p = float(periods[idx])
        if all(abs(p - q) > 2.0 for q in picked):
            picked.append(p)
        if len(picked) == count:
            break
    return picked


def candidates(
    r: np.ndarray, tile: float, square: int = 3, general: int = 3, refine: float = 0.006
) -> tuple[list[float], list[np.ndarray]]:
    """What to fold `r` along, best supported first: the periods of `square` upright square lattices,
    and up to `general` turned or stretched bases (from the peaks near each axis, sharpened) that no
    square period read within +-`refine` of its scale already covers. `tile`: the period of an
    unscaled tile in residual pixels."""
    acf = Acf(r, tile)
    periods = square_periods(acf, square)
    rows, cols = axis_peaks(acf, True), axis_peaks(acf, False)
    pairs = []
    for a in rows:
        for b in cols:
            if 1 / MAX_STRETCH <= np.hypot(*a) / np.hypot(*b) <= MAX_STRETCH:
                basis = finest(acf, normalise(np.array([a, b])))
                pairs.append((acf.support(basis), basis))
    pairs.sort(key=lambda p: -p[0])
    rough: list[np.ndarray] = []
    for _, basis in pairs:
        if not any(_same(basis, b, ROUGH) for b in rough):
            rough.append(basis)
    bases: list[np.ndarray] = []
    for basis in rough[: general + SPARE]:
        sharp = sharpen(acf, basis)
        if len(bases) < general and not any(_same(sharp, b) for b in bases) and not _covered(sharp, periods, refine):
            bases.append(sharp)
    return periods, bases


def _covered(basis: np.ndarray, periods: list[float], refine: float) -> bool:
    """Would an upright square lattice read `basis`: is it unturned and unstretched (within UPRIGHT)
    and its size within `refine` of one of `periods`?"""
    lengths = np.hypot(*basis.T)
    across = np.abs([basis[0][0], basis[1][1]]) / lengths
    if across.max() > UPRIGHT or abs(lengths[0] / lengths[1] - 1) > UPRIGHT:
        return False
    return any(abs(lengths.mean() / p - 1) <= refine for p in periods)


def _same(a: np.ndarray, b: np.ndarray, tolerance: float = 0.003) -> bool:
    return bool(np.all(np.hypot(*(a - b).T) <= tolerance * np.hypot(*b.T)))
