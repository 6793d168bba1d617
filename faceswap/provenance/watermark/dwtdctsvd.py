"""invisible-watermark's dwtDctSvd method, vectorised.

The method: U channel (cv2's YUV), one-level Haar DWT, 4x4 blocks of the LL band, and in each block
the largest singular value of its DCT quantised to (k + 0.25 + 0.5 * bit) * scale. Bits repeat
block by block in raster order. Two identities make it fast without changing what it embeds:
- the DCT is orthonormal, so the singular values of DCT(block) are those of the block itself and
  moving the top one is the rank-one update (s0' - s0) * u0 v0^T of the block;
- only the LL band changes, and the inverse Haar spreads a change of d in LL as d / 2 over its 2x2
  pixels, so the frame changes by that, times the U column of the YUV->BGR matrix.
The top singular triplet comes from a few batched power iterations (LL blocks of a U channel
centred on 128 have s0 >> s1, so they converge to float precision).
The upstream encoder also swaps the H and V detail bands on its way back (an upstream bug that
costs PSNR); this implementation leaves the detail bands alone, so upstream's decoder still reads
the marks and the frame changes less.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4
DEFAULT_SCALE = 36.0
_U_TO_BGR = np.array([2.032, -0.395, 0.0], dtype=np.float32)  # cv2 YUV2BGR column of U
_POWER_STEPS = 4


def u_channel(bgr: np.ndarray) -> np.ndarray:
    """cv2's COLOR_BGR2YUV U plane, in float32 (0..255 scale, offset 128)."""
    f = bgr.astype(np.float32)
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return (b - y) * 0.492 + 128.0


def _ll_blocks(u: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """LL band of the Haar DWT (pywt scaling: sum of the 2x2 / 2), cut into (N, 4, 4) blocks."""
    h, w = u.shape[0] // 4 * 4, u.shape[1] // 4 * 4
    x = u[:h, :w]
    ll = (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) * 0.5
    rows, cols = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    ll = ll[: rows * BLOCK, : cols * BLOCK]
    blocks = ll.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    return blocks, (rows, cols)


def _top_singular(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gram = np.einsum("nki,nkj->nij", blocks, blocks)
    v = np.full((blocks.shape[0], BLOCK), 0.5, dtype=np.float64)
    for _ in range(_POWER_STEPS):
        v = np.einsum("nij,nj->ni", gram, v)
        v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-30
    bv = np.einsum("nij,nj->ni", blocks, v)
    s0 = np.linalg.norm(bv, axis=1)
    u = bv / (s0[:, None] + 1e-30)
    return s0, u, v


def embed(bgr: np.ndarray, bits: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Return a float32 BGR frame carrying `bits` (0/1 array), unclipped and unrounded."""
    bits = np.asarray(bits, dtype=np.float64).ravel()
    u = u_channel(bgr).astype(np.float64)
    blocks, (rows, cols) = _ll_blocks(u)
    s0, left, right = _top_singular(blocks)
    wanted = np.resize(bits, blocks.shape[0])
    target = (np.floor(s0 / scale) + 0.25 + 0.5 * wanted) * scale
    delta_ll = ((target - s0)[:, None, None] * left[:, :, None] * right[:, None, :]).astype(np.float32)
    delta_ll = delta_ll.reshape(rows, cols, BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(rows * BLOCK, cols * BLOCK)
    delta_u = np.repeat(np.repeat(delta_ll * 0.5, 2, axis=0), 2, axis=1)
    out = bgr.astype(np.float32)
    h, w = delta_u.shape
    out[:h, :w] += delta_u[..., None] * _U_TO_BGR
    return out


def soft_bits(bgr: np.ndarray, length: int, scale: float = DEFAULT_SCALE) -> tuple[np.ndarray, int]:
    """Per-bit share of blocks voting 1, and how many blocks voted for each bit (at least)."""
    blocks, _ = _ll_blocks(u_channel(bgr).astype(np.float64))
    s0, _, _ = _top_singular(blocks)
    votes = ((s0 % scale) > scale * 0.5).astype(np.float64)
    n = votes.shape[0]
    slots = np.arange(n) % length
    sums = np.bincount(slots, weights=votes, minlength=length)
    counts = np.bincount(slots, minlength=length)
    return sums / np.maximum(counts, 1), int(counts.min()) if n else 0
