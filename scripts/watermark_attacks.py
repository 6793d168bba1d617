"""Attacks on the tiled watermark as someone with the source code would try them: remove it (blind, or
with the key where the key is public), forge a token, copy a mark onto other content.

Used by scripts/bench_watermark.py (its attack table) and tests/test_watermark_attacks.py. Every
function takes and returns uint8 BGR frames and uses only what the attacker has: the marked files,
the public functions of faceswap.provenance.watermark.tiles (the texture mask, the chip grid, the renderer) and,
for `exact_removal` and `forge`, a key, which for the first release's public key is the source's own.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.payload import encode_token_v2

Frames = list[np.ndarray]


def high_pass(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Luma minus its Gaussian blur: where a spread-spectrum mark lives, with the picture's detail."""
    y = tiles.luma(frame)
    return y - cv2.GaussianBlur(y, (0, 0), sigma)


def mark_gain(frame: np.ndarray) -> np.ndarray:
    """The mark's amplitude per pixel, as the public texture mask gives it for this (marked) frame."""
    return tiles.AMPLITUDE * tiles.strength_map(frame)


def subtract(frames: Frames, estimate: np.ndarray, alpha: float) -> Frames:
    """Each frame minus `alpha` x the unit-amplitude estimate scaled by that frame's mask."""
    return [tiles.add_luma(f, -alpha * estimate * mark_gain(f)) for f in frames]


def averaged_residual(frames: Frames, sigma: float) -> np.ndarray:
    """The frames' high-passed luma over their mask, averaged: what is fixed in every frame (the mark)
    stays, moving content averages away."""
    return np.mean([high_pass(f, sigma) / mark_gain(f) for f in frames], axis=0)


def average_and_subtract(frames: Frames, alpha: float, sigma: float = 3.0) -> Frames:
    """Blind removal (a): a video's own residual averaged over its frames, subtracted."""
    return subtract(frames, averaged_residual(frames, sigma), alpha)


def collusion(target: Frames, outputs: list[Frames], alpha: float, sigma: float = 3.0) -> Frames:
    """Blind removal (c): the residuals of other outputs of one workspace (same size, other tokens)
    averaged, each output's frames first: what every output shares stays. Subtracted from `target`."""
    return subtract(target, np.mean([averaged_residual(o, sigma) for o in outputs], axis=0), alpha)


DENOISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Gaussian blur 1.5 px": lambda f: cv2.GaussianBlur(f, (0, 0), 1.5),
    "median 5 px": lambda f: cv2.medianBlur(f, 5),
    "non-local means h=5": lambda f: cv2.fastNlMeansDenoisingColored(f, None, 5, 5, 7, 21),
    "non-local means h=10": lambda f: cv2.fastNlMeansDenoisingColored(f, None, 10, 10, 7, 21),
}


def denoise(frames: Frames, method: str) -> Frames:
    """Blind removal (b): an off-the-shelf denoiser on every frame."""
    return [DENOISERS[method](f) for f in frames]


def chip_grid(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """Chip centres (rows, columns) of the public marking grid of a frame of this shape, and the chip
    size: anyone can compute them from `tiles.chip_size`."""
    g = tiles.chip_size(shape)
    rows, cols = int(shape[0] / g), int(shape[1] / g)
    return (np.arange(rows) + 0.5) * g - 0.5, (np.arange(cols) + 0.5) * g - 0.5, g


def folded_tile(outputs: list[Frames], sigma: float = 1.5) -> np.ndarray:
    """Blind tile estimate: the mask-normalised residual sampled at every chip centre of the public grid
    and averaged by position modulo the tile, over every frame of every output given. A periodic mark
    is averaged over its own repetitions, like a video's mark over frames."""
    side = tiles.TILE
    total, count = np.zeros((side, side)), np.zeros((side, side))
    for frames in outputs:
        ys, xs, _ = chip_grid(frames[0].shape)
        map_x, map_y = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))
        at = (np.arange(ys.size)[:, None] % side, np.arange(xs.size)[None, :] % side)
        at = tuple(np.broadcast_to(a, (ys.size, xs.size)) for a in at)
        for frame in frames:
            r = (high_pass(frame, sigma) / mark_gain(frame)).astype(np.float32)
            np.add.at(total, at, cv2.remap(r, map_x, map_y, cv2.INTER_LINEAR))
            np.add.at(count, at, 1.0)
    return total / np.maximum(count, 1.0)


def render_tile(tile: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A tile of chip values repeated over the public grid and rendered as the marker renders it."""
    h, w = shape[:2]
    g = tiles.chip_size(shape)
    rows, cols = int(np.ceil(h / g)) + 1, int(np.ceil(w / g)) + 1
    grid = np.tile(tile.astype(np.float32), (rows // tile.shape[0] + 1, cols // tile.shape[1] + 1))[:rows, :cols]
    return tiles.render_chips(np.ascontiguousarray(grid), (h, w), g)


def fold_subtract(frames: Frames, alpha: float, outputs: list[Frames] | None = None) -> Frames:
    """Blind removal by the mark's own repetitions: the tile estimated on the public chip grid (from the
    file itself, or from `outputs`), its chip signs re-rendered and subtracted."""
    tile = np.sign(folded_tile(outputs or [frames]))
    return subtract(frames, render_tile(tile, frames[0].shape), alpha)


def jam(frames: Frames, alpha: float, seed: int = 0) -> Frames:
    """Blind jamming: a random tile of chip signs on the public grid, `alpha` x the mark's amplitude.
    It repeats like the mark, so the reader folds it as coherently as the mark."""
    tile = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), (tiles.TILE, tiles.TILE))
    return subtract(frames, render_tile(tile, frames[0].shape), alpha)


def exact_removal(frames: Frames, key: bytes, token: int) -> Frames:
    """With the key and the token (read with the same key): the mark computed and subtracted."""
    pattern = tiles.pattern(frames[0].shape, encode_token_v2(token), key)
    return subtract(frames, pattern, 1.0)


def forge(photo: np.ndarray, token: int, key: bytes = tiles.KEY) -> np.ndarray:
    """Stamp `token` on content the workspace never made, with the public code and a key (the source's
    own public key when the attacker has no other)."""
    from faceswap.provenance.watermark.marker import Watermarker

    return Watermarker(key=key).embed([photo], token)[0]


def copy_residual(source: Frames, photo: np.ndarray, alpha: float = 1.0, sigma: float = 3.0) -> np.ndarray:
    """An output's residual averaged over its frames, added to an unrelated photo of the same size."""
    residual = averaged_residual(source, sigma)
    return tiles.add_luma(photo, alpha * residual * mark_gain(photo))


def copy_tile(source: Frames, photo: np.ndarray) -> np.ndarray:
    """The output's tile estimated on the public grid (its chip signs), rendered onto a photo."""
    tile = np.sign(folded_tile([source]))
    return tiles.add_luma(photo, tiles.delta(photo, render_tile(tile, photo.shape)))


def psnr(attacked: Frames, marked: Frames) -> float:
    """PSNR (dB) of the attacked frames against the marked ones, over all their pixels (before any
    re-encoding); infinite when the attack changed nothing."""
    error = np.mean([np.mean((a.astype(np.float64) - m) ** 2) for a, m in zip(attacked, marked, strict=True)])
    return float(10 * np.log10(255.0**2 / error)) if error > 0 else float("inf")
