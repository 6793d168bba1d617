"""Payload code, the vectorised dwtDctSvd layer (interop with upstream), and two-layer detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from imwatermark import WatermarkDecoder, WatermarkEncoder

from faceswap.errors import BadInput
from faceswap.provenance import dwtdctsvd
from faceswap.provenance.payload import CODE_BITS, FALSE_ACCEPT_BOUND, decode_soft, encode_token
from faceswap.provenance.watermark import FALSE_POSITIVE_BOUND, Watermarker, format_token


@pytest.fixture(scope="module")
def watermarker() -> Watermarker:
    return Watermarker()


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def test_payload_round_trip_and_error_correction():
    bits = encode_token(0xABCDEF012345).astype(np.float64)
    assert bits.shape == (CODE_BITS,)
    assert decode_soft(bits).token == 0xABCDEF012345
    damaged = bits.copy()
    for byte in (0, 5, 9, 15):  # four whole bytes wrong: RS(16, 8) corrects them
        damaged[byte * 8 : byte * 8 + 8] = 1 - damaged[byte * 8 : byte * 8 + 8]
    read = decode_soft(damaged)
    assert read.token == 0xABCDEF012345 and read.corrected_bytes == 4


def test_uncertain_bytes_are_erased_before_giving_up():
    bits = encode_token(0x123456789ABC).astype(np.float64)
    for byte in (1, 3, 7, 11, 13):  # five bytes wrong, but the decoder saw they were doubtful
        bits[byte * 8 : byte * 8 + 8] = np.where(bits[byte * 8 : byte * 8 + 8] > 0.5, 0.45, 0.55)
    bits[4 * 8] = 1 - bits[4 * 8]  # and one confident error
    assert decode_soft(bits).token == 0x123456789ABC


def test_unmarked_reads_never_decode():
    assert FALSE_ACCEPT_BOUND < 1e-7 and FALSE_POSITIVE_BOUND < 1e-6
    rng = np.random.default_rng(3)
    assert not any(decode_soft(rng.random(CODE_BITS)).ok for _ in range(3000))
    for flat in (np.zeros(CODE_BITS), np.ones(CODE_BITS), np.full(CODE_BITS, 0.5)):
        assert not decode_soft(flat).ok


def test_upstream_decoder_reads_our_dwtdctsvd_marks(astronaut_image):
    bits = np.random.default_rng(5).integers(0, 2, 64)
    ours = np.clip(np.rint(dwtdctsvd.embed(astronaut_image, bits)), 0, 255).astype(np.uint8)
    upstream = WatermarkDecoder("bits", 64).decode(ours, "dwtDctSvd")
    assert (np.array(upstream) == bits).all()


def test_our_decoder_reads_upstream_marks(astronaut_image):
    bits = np.random.default_rng(6).integers(0, 2, 64)
    encoder = WatermarkEncoder()
    encoder.set_by_bits(list(bits))
    marked = encoder.encode(astronaut_image, "dwtDctSvd")
    share, per_bit = dwtdctsvd.soft_bits(marked, 64)
    assert ((share > 0.5) == bits).all() and per_bit >= 60


def test_upstream_decoder_reads_the_token_of_a_full_mark(watermarker, astronaut_image):
    from faceswap.provenance.watermark import TOKEN_SCALE

    marked = watermarker.embed([astronaut_image], 0x5EED5EED5EED)[0]
    bits = WatermarkDecoder("bits", CODE_BITS).decode(marked, "dwtDctSvd", scales=[0, TOKEN_SCALE, 0])
    assert decode_soft(np.array(bits, dtype=np.float64)).token == 0x5EED5EED5EED


def test_ours_changes_the_frame_less_than_upstream(astronaut_image):
    bits = np.random.default_rng(7).integers(0, 2, 64)
    ours = np.clip(np.rint(dwtdctsvd.embed(astronaut_image, bits)), 0, 255).astype(np.uint8)
    encoder = WatermarkEncoder()
    encoder.set_by_bits(list(bits))
    upstream = encoder.encode(astronaut_image, "dwtDctSvd")
    assert cv2.PSNR(astronaut_image, ours) > cv2.PSNR(astronaut_image, upstream)


def test_marked_image_carries_token_and_is_invisible(watermarker, t1_image):
    token = 0x0F1E2D3C4B5A
    marked = watermarker.embed([t1_image], token)[0]
    assert cv2.PSNR(t1_image, marked) >= 38.0
    found = watermarker.detect([marked])
    assert found.marked and found.token == format_token(token) and found.sync_agreement >= 30
    assert found.layer == "sync+token"


def test_unmarked_images_are_not_marked(watermarker, t1_image, astronaut_image):
    for image in (t1_image, astronaut_image, np.full((480, 640, 3), 128, np.uint8)):
        found = watermarker.detect([image])
        assert not found.marked and found.token is None


@pytest.mark.parametrize(
    "attack",
    ["jpeg75", "jpeg50", "resize0.5", "crop80", "blur", "brightness+20"],
)
def test_detection_survives_attacks(watermarker, t1_image, attack):
    token = 0x00C0FFEE0001
    marked = watermarker.embed([t1_image], token)[0]
    h, w = marked.shape[:2]
    if attack == "jpeg75":
        attacked = _jpeg(marked, 75)
    elif attack == "jpeg50":
        attacked = _jpeg(marked, 50)
    elif attack == "resize0.5":
        attacked = cv2.resize(cv2.resize(marked, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h))
    elif attack == "crop80":
        ch, cw = int(h * 0.894), int(w * 0.894)
        attacked = marked[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    elif attack == "blur":
        attacked = cv2.GaussianBlur(marked, (5, 5), 1.0)
    else:
        attacked = np.clip(marked.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    found = watermarker.detect([attacked])
    assert found.marked, attack
    if attack == "jpeg75":
        assert found.token == format_token(token)


def test_too_small_frames_are_refused(watermarker):
    with pytest.raises(BadInput, match="too small"):
        watermarker.embed([np.zeros((100, 100, 3), np.uint8)], 1)
