"""A model's own mark (Stable Signature's idea, for our decoders): after training, the decoder that
renders faces as A is fine-tuned so that every face it renders carries the model's mark (64 keyed signs), read
from the aligned face by a fixed correlator keyed by the workspace's watermark secret and the model's
nonce. The mark is in the weights, so faces that the raw network renders outside the sink (no frame
watermark, no entry) still lead to their model.

The correlator: the face's luma at 64 px, band-passed (Gaussians of 0.5 and 1.5 px: the finest detail a
64 px face holds, where a rendered face has little texture of its own and a windowed pattern has about
260 independent values, against 95 at 0.8-3 px), windowed to the face's middle and correlated with 64
keyed carriers, each a band-passed noise field made mirror-symmetric so a mirrored face reads alike,
each trained toward a keyed sign. Verify knows the key of every model it asks about, so it scores the
whole pattern at once: the carriers' readings summed with their signs. Under any other key the
carriers are noise fields independent of the face, so that sum is Gaussian with a spread computed
exactly from the face itself (`ModelMark.read`'s second answer); the Gaussian tail, times the cuts
and models tried, is the false-positive bound. Without the secret the carriers are unknown."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, Protocol

import numpy as np

VERSION = 1
CARRIERS = 64  # keyed band-pass fields, each trained toward the sign the key gives it
SIZE = 64  # faces are read at this size, whatever the model's resolution
LABEL = b"faceswap/model-mark/v1/"
BAND = (0.5, 1.5)  # Gaussian sigmas (px at SIZE) whose difference is the band the mark lives in
SCALE = 8.0  # soft readings in units where an unmarked face reads about 0.7 apart from zero
MARGIN = 1.0  # the soft reading's sign-agreeing value the marking trains toward
CARRY = 2.0  # the weight of that hinge against holding the faces to the unmarked decoder's
LUMA = (0.299, 0.587, 0.114)  # of RGB
INNER_CENTRE, INNER_RADII = (0.5, 0.55), (0.22, 0.24)  # the inner face, in whole-face crop units
JITTER = (2.0, 0.03, 1.5)  # re-alignment a found face is read through in training: degrees, scale, px at SIZE
NUDGE = 3.0  # px at SIZE, either way, that verify cuts a face found again (steps of half a pixel)


class Deriving(Protocol):
    def derive(self, label: bytes) -> bytes: ...


def _gaussian(sigma: float) -> np.ndarray:
    radius = int(3 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def _window(face_type: str) -> np.ndarray:
    """The inner face (eyes to below the mouth, cheek to cheek: what every swap renders and pastes) in
    the crop of a framing, as a flat-topped ellipse."""
    from faceswap.faces.align import FACE_TYPES

    framing = FACE_TYPES[face_type]
    cx, cy = framing.place(np.array(INNER_CENTRE))
    rx, ry = np.array(INNER_RADII) * framing.zoom
    axis = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return np.exp(-((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) ** 2)).astype(np.float32)


def _band_np(luma: np.ndarray) -> np.ndarray:
    """(N, SIZE, SIZE) -> the band-passed planes (reflected borders, as `_band_torch`)."""
    import cv2

    out = np.empty_like(luma, dtype=np.float32)
    low, high = _gaussian(BAND[0]), _gaussian(BAND[1])
    for i, plane in enumerate(luma.astype(np.float32)):
        fine = cv2.sepFilter2D(plane, -1, low, low, borderType=cv2.BORDER_REFLECT_101)
        coarse = cv2.sepFilter2D(plane, -1, high, high, borderType=cv2.BORDER_REFLECT_101)
        out[i] = fine - coarse
    return out


@dataclass(frozen=True)
class ModelMark:
    """One model's signs and carriers, both from its key (the secret's HMAC of the model's nonce)."""

    key: bytes = field(repr=False)
    face_type: str = "whole"  # the model's framing: where in its crops the inner face lies

    @classmethod
    def derive(cls, secret: Deriving, nonce: str, face_type: str = "whole") -> ModelMark:
        return cls(secret.derive(LABEL + nonce.encode()), face_type)

    @cached_property
    def window(self) -> np.ndarray:
        return _window(self.face_type)

    @cached_property
    def signs(self) -> np.ndarray:
        """+1 / -1, what each carrier's reading is trained toward."""
        return _keyed_signs(self.key + b"/signs", CARRIERS)

    @cached_property
    def carriers(self) -> np.ndarray:
        """(CARRIERS, SIZE, SIZE), each zero-mean and of unit norm inside the window."""
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(self.key + b"/carriers").digest(), "big"))
        return _shape_carriers(rng.standard_normal((CARRIERS, SIZE, SIZE)).astype(np.float32), self.window)

    def read(self, faces_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, SIZE, SIZE, 3) RGB in [0, 1] -> the soft readings (N, CARRIERS), and each face's spread
        (N, SIZE * SIZE): under a key the face has nothing to do with, a reading of face i is Gaussian
        with variance |spread_i|^2, and readings of faces i and j covary by spread_i . spread_j (the
        carriers are linear in white noise: the spread is that map's transpose applied to the face)."""
        luma = np.asarray(faces_rgb, np.float32) @ np.asarray(LUMA, np.float32)
        residual = _band_np(luma) * self.window
        residual -= residual.mean(axis=(1, 2), keepdims=True)
        residual /= np.linalg.norm(residual.reshape(len(residual), -1), axis=1)[:, None, None] + 1e-8
        soft = SCALE * residual.reshape(len(residual), -1) @ self.carriers.reshape(CARRIERS, -1).T
        back = _band_np(residual * self.window)
        spread = (back + back[:, :, ::-1]) * (SCALE / _carrier_norm(self.face_type))
        return soft, spread.reshape(len(spread), -1)

    def read_found(self, image_bgr: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The readings and spreads (as `read`) of a face found in an image at each of the CUTS:
        `matrix` aligns it to a SIZE px crop as the model's faces are aligned, and a face found again
        sits a little off where the model rendered it (its keypoints are found on the rendered face,
        and the mark itself moves them by 1-3 px at 64), so it is cut again up to NUDGE px either way,
        every half pixel, from one crop of the image a little larger than the face's."""
        import cv2

        from faceswap.faces.align import crop_face

        pad = int(math.ceil(NUDGE)) + 1
        around = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad]]) @ np.vstack([matrix, [0, 0, 1]])
        larger = crop_face(image_bgr, around, SIZE + 2 * pad).astype(np.float32)
        crops = [
            cv2.warpAffine(
                larger,
                np.array([[1.0, 0.0, pad - dx], [0.0, 1.0, pad - dy]]),
                (SIZE, SIZE),
                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            )
            for dx, dy in CUTS
        ]
        return self.read(np.stack(crops)[..., ::-1] / 255.0)

    def score(self, soft: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """z of summed readings and spreads (one face's, or several faces' summed cut by cut): the
        pattern's sum over its Gaussian spread, N(0, 1) for a face this model did not render."""
        norm = np.linalg.norm(np.atleast_2d(spread), axis=-1) * math.sqrt(CARRIERS) + 1e-12
        return np.atleast_2d(soft) @ self.signs / norm

    def agreement(self, soft: np.ndarray) -> int:
        """How many of the carriers a soft reading agrees with in sign (shown beside z)."""
        return int(((np.asarray(soft) * self.signs) > 0).sum())


def _shape_carriers(noise: np.ndarray, window: np.ndarray) -> np.ndarray:
    """White noise (N, SIZE, SIZE) -> carriers: mirrored onto itself, band-passed, windowed, zero-mean,
    of unit norm."""
    shaped = _band_np(noise + noise[:, :, ::-1]) * window
    shaped -= shaped.mean(axis=(1, 2), keepdims=True)
    return (shaped / np.linalg.norm(shaped.reshape(len(shaped), -1), axis=1)[:, None, None]).astype(np.float32)


@cache
def _carrier_norm(face_type: str) -> float:
    """The expected norm of a carrier before it is scaled to one, exactly: the root of the sum, over
    every pixel's impulse, of the squared norm of what the shaping makes of it."""
    window = _window(face_type)
    total = 0.0
    for rows in np.array_split(np.arange(SIZE * SIZE), 16):
        impulses = np.zeros((len(rows), SIZE * SIZE), np.float32)
        impulses[np.arange(len(rows)), rows] = 1.0
        impulses = impulses.reshape(-1, SIZE, SIZE)
        shaped = _band_np(impulses + impulses[:, :, ::-1]) * window
        shaped -= shaped.mean(axis=(1, 2), keepdims=True)
        total += float((shaped.astype(np.float64) ** 2).sum())
    return math.sqrt(total)


def _keyed_signs(seed: bytes, count: int) -> np.ndarray:
    """+1 / -1 from the bits of sha256(seed), `count` <= 256 of them."""
    raw = hashlib.sha256(seed).digest()
    return np.array([1.0 if raw[i // 8] >> (i % 8) & 1 else -1.0 for i in range(count)], np.float32)


_STEPS = np.arange(-NUDGE, NUDGE + 0.25, 0.5)
CUTS = [(float(dx), float(dy)) for dx in _STEPS for dy in _STEPS]  # px at SIZE a found face is cut again at


def gaussian_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def false_positive_bound(z: float, trials: int = 1) -> float:
    """The chance that a file none of `trials` models rendered reads z or more at one of the CUTS:
    the Gaussian tail, times the cuts and the models (a union bound: the cuts overlap, so it is high)."""
    return min(1.0, gaussian_tail(z) * len(CUTS) * trials)


def z_needed(bound: float, trials: int = 1) -> float:
    """The least z that keeps `false_positive_bound` at or below `bound`."""
    low, high = 0.0, 40.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (low, middle) if false_positive_bound(middle, trials) <= bound else (middle, high)
    return high


def read_torch(mark: ModelMark, faces: Any) -> Any:
    """The same reading as `ModelMark.read`, differentiable: (B, 3, R, R) RGB -> (B, CARRIERS)."""
    import torch
    import torch.nn.functional as F

    if faces.shape[-1] != SIZE:
        faces = F.interpolate(faces, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    weights = torch.tensor(LUMA, dtype=faces.dtype, device=faces.device).view(1, 3, 1, 1)
    luma = (faces * weights).sum(dim=1, keepdim=True)
    window = torch.from_numpy(mark.window).to(faces)
    residual = (_band_torch(luma) * window).flatten(1)
    residual = residual - residual.mean(dim=1, keepdim=True)
    carriers = torch.from_numpy(mark.carriers.reshape(len(mark.carriers), -1)).to(faces)
    return SCALE * residual @ carriers.T / (residual.norm(dim=1, keepdim=True) + 1e-8)


def _band_torch(x: Any) -> Any:
    import torch
    import torch.nn.functional as F

    def blur(plane: Any, sigma: float) -> Any:
        kernel = torch.from_numpy(_gaussian(sigma)).to(plane)
        radius = len(kernel) // 2
        padded = F.pad(plane, (radius, radius, radius, radius), mode="reflect")
        rows = F.conv2d(padded, kernel.view(1, 1, 1, -1))
        return F.conv2d(rows, kernel.view(1, 1, -1, 1))

    return blur(x, BAND[0]) - blur(x, BAND[1])


@dataclass(frozen=True)
class MarkingSettings:
    steps: int = 60
    batch: int = 8
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class MarkingReport:
    """What marking did: carriers agreeing in sign (mean over the faces checked) before and after, and how far the
    marked decoder's faces moved from the unmarked one's (PSNR between them)."""

    steps: int
    seconds: float
    agreeing_before: float
    agreeing_after: float
    psnr_to_unmarked_db: float

    def to_json(self) -> dict[str, float | int]:
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "agreeing_before": round(self.agreeing_before, 2),
            "agreeing_after": round(self.agreeing_after, 2),
            "psnr_to_unmarked_db": round(self.psnr_to_unmarked_db, 2),
        }


def mark_decoder(
    network: Any,
    faces: Any,
    mark: ModelMark,
    settings: MarkingSettings = MarkingSettings(),
    between_steps: Callable[[], None] | None = None,
) -> MarkingReport:
    """Fine-tune the RGB branch of the decoder that renders faces as A so its faces carry `mark`,
    holding them to what the unmarked decoder rendered (L1 + MSE). `faces`: (N, 3, R, R) RGB in [0, 1],
    both subjects' (swaps are rendered from B's faces). Each reading goes through a random
    re-alignment, rescale and noise first, as a face found again in a shared file would.
    `between_steps` runs before every step (a consent watch's poll: a withdrawal stops marking too)."""
    import torch
    import torch.nn.functional as F

    started = time.monotonic()
    generator = torch.Generator().manual_seed(settings.seed)
    teacher = _frozen_copy(network)
    head = network.decoder_of("a").rgb
    was_training = network.training
    network.eval()
    frozen = [p for p in network.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr)
    signs = torch.from_numpy(mark.signs).to(faces.device)
    held = faces[torch.linspace(0, len(faces) - 1, min(len(faces), 32)).long()]
    before = _agreeing(network, held, mark)
    try:
        for _ in range(settings.steps):
            if between_steps is not None:
                between_steps()
            picks = torch.randint(0, len(faces), (settings.batch,), generator=generator)
            batch = faces[picks]
            with torch.no_grad():
                latent = network.latent(batch, "a")
                target, face_mask = teacher.decode(latent, "a")
            rendered = network.decode(latent, "a")[0]
            hold = 10 * F.l1_loss(rendered, target) + 100 * F.mse_loss(rendered, target)
            pasted = face_mask * rendered + (1 - face_mask) * batch  # as conversion (or anyone) pastes it
            soft = read_torch(mark, _as_found_again(pasted, generator))
            carry = CARRY * F.relu(MARGIN - soft * signs).mean()
            optimizer.zero_grad(set_to_none=True)
            (hold + carry).backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        network.train(was_training)
    with torch.no_grad():
        moved = F.mse_loss(network(held, "a")[0], teacher(held, "a")[0]).item()
    return MarkingReport(
        settings.steps,
        time.monotonic() - started,
        before,
        _agreeing(network, held, mark),
        10 * math.log10(1.0 / max(moved, 1e-12)),
    )


def _frozen_copy(network: Any) -> Any:
    """The unmarked network, built afresh (a compiled network does not deep-copy)."""
    from faceswap.model.networks import build_network

    teacher = build_network(network.config)
    teacher.load_state_dict(network.state_dict())
    return teacher.to(next(network.parameters()).device).eval().requires_grad_(False)


def _agreeing(network: Any, faces: Any, mark: ModelMark) -> float:
    import torch

    with torch.no_grad():
        soft = read_torch(mark, network(faces, "a")[0]).float().cpu().numpy()
    return float(np.mean([mark.agreement(row) for row in soft]))


def _as_found_again(faces: Any, generator: Any) -> Any:
    """A face as verify finds it again: re-aligned a little off (JITTER: up to 2 degrees, 3 % of scale,
    1.5 px at 64), resampled smaller and back (down to half), and noisier."""
    import torch
    import torch.nn.functional as F

    count, size = faces.shape[0], faces.shape[-1]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator)

    degrees, scaled, px = JITTER
    angle = uniform(-math.radians(degrees), math.radians(degrees))
    scale = uniform(1 - scaled, 1 + scaled)
    shift = px / SIZE * 2
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(faces)
    grid = F.affine_grid(theta, list(faces.shape), align_corners=False)
    moved = F.grid_sample(faces, grid, padding_mode="border", align_corners=False)
    factor = float(0.5 + 0.5 * torch.rand(1, generator=generator))
    if factor < 0.95:
        small = max(16, int(size * factor))
        moved = F.interpolate(moved, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        moved = F.interpolate(moved, size=(size, size), mode="bilinear", align_corners=False)
    return moved + 0.01 * torch.randn(moved.shape, generator=generator).to(moved)
