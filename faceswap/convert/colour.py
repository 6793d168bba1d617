"""Colour transfer of the swapped face toward the target face, inside the mask. One function a mode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ColourTransfer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    chosen = image.reshape(-1, 3)[mask.reshape(-1) > 0.5]
    return chosen if len(chosen) >= 16 else image.reshape(-1, 3)


def rct(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard: match each LAB channel's mean and spread inside the mask (the same function
    training colours its A samples with)."""
    from faceswap.data.augment import reinhard

    return reinhard(source, target, mask, mask)


def lct(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Linear colour transfer: match mean and full covariance in RGB (Monge-Kantorovich)."""
    s, t = _pixels(source.astype(np.float64), mask), _pixels(target.astype(np.float64), mask)
    cs, ct = np.cov(s, rowvar=False) + np.eye(3) * 1e-3, np.cov(t, rowvar=False) + np.eye(3) * 1e-3
    ws, vs = np.linalg.eigh(cs)
    half = vs @ np.diag(np.sqrt(ws)) @ vs.T
    inv_half = vs @ np.diag(1 / np.sqrt(ws)) @ vs.T
    wm, vm = np.linalg.eigh(half @ ct @ half)
    transform = inv_half @ (vm @ np.diag(np.sqrt(np.maximum(wm, 0))) @ vm.T) @ inv_half
    out = (source.reshape(-1, 3) - s.mean(0)) @ transform.T + t.mean(0)
    return np.clip(out, 0, 255).reshape(source.shape).astype(np.uint8)


def hist(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching inside the mask."""
    out = np.empty_like(source)
    keep = mask.reshape(-1) > 0.5
    for c in range(3):
        s = source[..., c].reshape(-1)
        t = target[..., c].reshape(-1)
        s_ref = s[keep] if keep.sum() >= 16 else s
        t_ref = t[keep] if keep.sum() >= 16 else t
        s_quant = np.searchsorted(np.sort(s_ref), np.arange(256), side="right") / len(s_ref)
        t_sorted = np.sort(t_ref)
        lookup = t_sorted[np.clip((s_quant * len(t_sorted)).astype(int), 0, len(t_sorted) - 1)]
        out[..., c] = lookup[s].reshape(source.shape[:2])
    return out


def none(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return source


MODES: dict[str, ColourTransfer] = {"rct": rct, "lct": lct, "hist": hist, "none": none}
