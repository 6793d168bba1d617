"""What an attacker with the source code and no key can do to a workspace's marks, beside what the same
attacks do to marks of the first release's public key: remove (a video's own residual averaged,
denoising, 20 outputs colluding, the pattern computed with the key), forge, copy. Removal must leave
the token or cost the picture (PSNR < 35 dB against the marked file). The attacks are the bench's
(scripts/watermark_attacks.py), on small inputs."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.marker import Watermarker, format_token

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import watermark_attacks as attacks  # noqa: E402

WORTH = 35.0  # dB: an attack that needs more change than this has cost more than the mark is worth
# a fixed workspace secret: a read at the margin repeats on every run (rates over fresh secrets are the
# bench's, docs/watermark.md)
SECRET = hashlib.sha256(b"faceswap tests: a workspace's watermark secret").digest()
SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png"]


def _photos() -> list[np.ndarray]:
    import skimage

    from faceswap.faces.samples import insightface_t1
    from faceswap.media import read_image

    data = Path(skimage.__file__).parent / "data"
    return [read_image(insightface_t1())] + [read_image(data / name) for name in SKIMAGE]


def _views(count: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """`count` different outputs of one size: zoomed, offset views of the photos."""
    rng = np.random.default_rng(seed)
    photos, (w, h), out = _photos(), size, []
    for i in range(count):
        image = photos[i % len(photos)]
        zoom = max(w / image.shape[1], h / image.shape[0]) * float(rng.uniform(1.05, 1.6))
        big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        y, x = int(rng.integers(0, big.shape[0] - h + 1)), int(rng.integers(0, big.shape[1] - w + 1))
        out.append(np.ascontiguousarray(big[y : y + h, x : x + w]))
    return out


def _pan(
    image: np.ndarray, count: int, step: int | None = None, size: tuple[int, int] = (640, 480)
) -> list[np.ndarray]:
    """A pan across `image`: `step` pixels a frame (default: across the whole width)."""
    w, h = size
    zoom = max(w / image.shape[1], h / image.shape[0]) * 1.3
    big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
    step = step or (big.shape[1] - w) // count
    return [np.ascontiguousarray(big[:h, i * step : i * step + w]) for i in range(count)]


@pytest.fixture(scope="module")
def schemes() -> dict[str, Watermarker]:
    return {"public": Watermarker(key=tiles.KEY), "secret": Watermarker(key=SECRET)}


@pytest.fixture(scope="module")
def workspace_outputs(schemes):
    """21 stills of one size (960x540) per scheme, each with its own token: a target and 20 colluders."""
    pictures = _views(21, (960, 540), seed=9)
    tokens = [int(t) for t in np.random.default_rng(10).integers(0, 1 << 47, len(pictures))]
    return {
        label: ([wm.embed([p], t)[0] for p, t in zip(pictures, tokens, strict=True)], tokens)
        for label, wm in schemes.items()
    }


def _traced_or_costly(wm: Watermarker, attacked: list[np.ndarray], marked: list[np.ndarray], token: int) -> bool:
    """The token still read, or the mark still found (verify then finds the entry by perceptual hash),
    or the attack cost more than the mark is worth."""
    found = wm.detect(attacked)
    return found.token == format_token(token) or found.marked or attacks.psnr(attacked, marked) < WORTH


def test_twenty_colluding_outputs_cannot_strip_a_secret_keyed_mark(schemes, workspace_outputs):
    """Averaging 20 outputs estimates what they share. Under the public key that is the sync and the
    chip signs, so subtracting it strips a 21st output above 35 dB; under a secret each output has one
    of 16 keyed sign patterns at its own shift, the average shares little with the target, and the
    token stays. (Stronger subtraction turns into jamming: see the bench.)"""
    strengths = [("averaged", a) for a in (1.0, 1.5, 2.0)] + [("folded", a) for a in (0.7, 1.0)]

    def attack(kind: str, alpha: float, marked: list[np.ndarray]) -> list[np.ndarray]:
        others = [[m] for m in marked[1:]]
        if kind == "averaged":
            return attacks.collusion([marked[0]], others, alpha)
        return attacks.fold_subtract([marked[0]], alpha, others)

    marked, tokens = workspace_outputs["secret"]
    for kind, alpha in strengths:
        attacked = attack(kind, alpha, marked)
        found = schemes["secret"].detect(attacked)
        assert found.token == format_token(tokens[0]) or attacks.psnr(attacked, marked[:1]) < WORTH, (kind, alpha)
    marked, tokens = workspace_outputs["public"]
    stripped = [
        (kind, alpha)
        for kind, alpha in strengths
        if not _traced_or_costly(schemes["public"], attack(kind, alpha, marked), [marked[0]], tokens[0])
    ]
    assert len(stripped) >= 2, "collusion strips the public key's mark above 35 dB (it did when measured)"


@pytest.mark.xfail(strict=True, reason="known limit (docs/watermark.md): the mark is the same in every frame")
def test_a_fast_pans_own_residual_averaged_and_subtracted_leaves_the_mark(schemes, t1_image):
    """24 frames of a fast pan: what stays fixed under moving content is the mark; its estimate over
    the public texture mask, subtracted at 1.5x, strips it near 38 dB with either key. Not fixed: a
    mark that changed from frame to frame would cost the reader its pooling over frames."""
    wm = schemes["secret"]
    marked = wm.embed(_pan(t1_image, 24), 0x0123456789AB)
    attacked = attacks.average_and_subtract(marked, 1.5, sigma=1.5)
    assert _traced_or_costly(wm, attacked, marked, 0x0123456789AB)


def test_a_slow_pans_own_residual_averaged_and_subtracted_leaves_the_mark(schemes, t1_image):
    """12 frames of a slow pan (a few pixels a frame, like the bench's clips): the average keeps the
    picture's own detail, and subtracting it costs more than the mark is worth before the mark goes."""
    wm = schemes["secret"]
    marked = wm.embed(_pan(t1_image, 12, step=3), 0x0123456789AB)
    for alpha in (1.0, 1.5, 2.0, 3.0):
        for sigma in (1.5, 3.0):
            attacked = attacks.average_and_subtract(marked, alpha, sigma)
            assert _traced_or_costly(wm, attacked, marked, 0x0123456789AB), (alpha, sigma)


@pytest.mark.parametrize("method", list(attacks.DENOISERS))
def test_denoising_leaves_the_mark(schemes, workspace_outputs, method):
    """Blur and median filters leave the token on insightface's photo; non-local means may take the
    token and leave the mark, which verify then follows to its entry by perceptual hash."""
    marked, tokens = workspace_outputs["secret"]
    attacked = attacks.denoise(marked[:1], method)
    found = schemes["secret"].detect(attacked)
    assert found.marked, method
    if not method.startswith("non-local means"):
        assert found.token == format_token(tokens[0])


@pytest.mark.xfail(
    strict=True, reason="known limit (docs/watermark.md): non-local means strips the mark from flat, clean content"
)
@pytest.mark.parametrize(("method", "index"), [("non-local means h=5", 18), ("non-local means h=10", 11)])
def test_non_local_means_on_a_clean_flat_photo_costs_the_picture(schemes, workspace_outputs, method, index):
    """Two views of skimage's rocket (sky, smooth hull): non-local means averages the mark away with
    the little noise there is and leaves the picture at 38.5 and 36.5 dB."""
    marked, tokens = workspace_outputs["secret"]
    attacked = attacks.denoise(marked[index : index + 1], method)
    assert _traced_or_costly(schemes["secret"], attacked, marked[index : index + 1], tokens[index])


def test_exact_removal_needs_the_key(schemes, workspace_outputs):
    """With the public key anyone reads the token, computes the pattern and subtracts it (above 35 dB);
    the public key reads nothing in a secret-keyed output, so there is nothing to compute."""
    marked, tokens = workspace_outputs["public"]
    assert schemes["public"].detect(marked[:1]).token == format_token(tokens[0])
    stripped = attacks.exact_removal(marked[:1], tiles.KEY, tokens[0])
    assert attacks.psnr(stripped, marked[:1]) > 38.0 and not schemes["public"].detect(stripped).marked
    marked, tokens = workspace_outputs["secret"]
    assert schemes["public"].detect(marked[:1]).token is None
    assert schemes["secret"].detect(marked[:1]).token == format_token(tokens[0])


def test_a_token_stamped_with_the_public_code_is_not_a_workspace_mark(schemes, workspace_outputs, astronaut_image):
    """Forgery: the token of an output, stamped on another picture with the public code and key. The
    public key's reader reads it (anyone can forge that); the workspace's reader does not."""
    _, tokens = workspace_outputs["secret"]
    forged = attacks.forge(cv2.resize(astronaut_image, (640, 640)), tokens[0])
    assert schemes["public"].detect([forged]).token == format_token(tokens[0])
    assert not schemes["secret"].detect([forged]).marked


def test_a_copied_mark_still_reads_at_the_token_layer(schemes, t1_image):
    """Copy: a video output's residual averaged over its frames (or its tile folded on the public grid)
    added to an unrelated picture carries its token; the token layer cannot tell a copy (the content
    check at verify level does)."""
    wm = schemes["secret"]
    marked = wm.embed(_pan(t1_image, 24), 0x0123456789AB)
    photo = _views(1, (640, 480), seed=31)[0]
    for copy in (attacks.copy_residual, attacks.copy_tile):
        copied = copy(marked, photo)
        assert cv2.PSNR(copied, photo) > 35.0
        assert wm.detect([copied]).token == format_token(0x0123456789AB), copy.__name__


@pytest.mark.xfail(strict=True, reason="known limit (docs/watermark.md): the tile repeats, so its own copies average")
def test_folding_a_still_on_the_public_chip_grid_leaves_the_token(schemes, workspace_outputs):
    """The tile repeats over the frame: averaging the residual over its own copies on the public chip
    grid estimates its chip signs, and subtracting them strips the token near 40 dB, with or without
    the key. Not fixed: see docs/watermark.md."""
    marked, tokens = workspace_outputs["secret"]
    attacked = attacks.fold_subtract(marked[:1], 1.0)
    assert _traced_or_costly(schemes["secret"], attacked, marked[:1], tokens[0])
