"""The watermark payload: a 48-bit output token + CRC-16, under Reed-Solomon RS(16, 8) over GF(256).

128 code bits, XORed with a fixed whitening sequence so that the all-zero bits decoders read on flat
or unmarked images never decode. A read is accepted only when RS decoding succeeds and the CRC
matches; `FALSE_ACCEPT_BOUND` is the chance that random bits pass, from the code's maths.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from math import comb

import numpy as np

TOKEN_BYTES = 6
CRC_BYTES = 2
DATA_BYTES = TOKEN_BYTES + CRC_BYTES
PARITY_BYTES = 8
CODE_BYTES = DATA_BYTES + PARITY_BYTES
CODE_BITS = CODE_BYTES * 8
MAX_TOKEN = (1 << (8 * TOKEN_BYTES)) - 1
ERASURE_ATTEMPT = 4  # second attempt: the 4 least certain bytes as erasures, then up to 2 errors

WHITENING = np.unpackbits(
    np.frombuffer(hashlib.sha256(b"faceswap/watermark/v1/whitening").digest()[:CODE_BYTES], np.uint8)
)


def _ball(n: int, radius: int) -> int:
    return sum(comb(n, i) * 255**i for i in range(radius + 1))


def _false_accept_bound() -> float:
    crc = 2.0**-16
    plain = _ball(CODE_BYTES, PARITY_BYTES // 2) / 256.0**PARITY_BYTES
    kept = CODE_BYTES - ERASURE_ATTEMPT
    erased = _ball(kept, (PARITY_BYTES - ERASURE_ATTEMPT) // 2) / 256.0 ** (kept - DATA_BYTES)
    return (plain + erased) * crc


FALSE_ACCEPT_BOUND = _false_accept_bound()  # ~1.5e-8 per decode


def _codec():
    from reedsolo import RSCodec

    return RSCodec(PARITY_BYTES)


def _crc(token_bytes: bytes) -> bytes:
    return binascii.crc_hqx(token_bytes, 0xFFFF).to_bytes(2, "big")


def encode_token(token: int) -> np.ndarray:
    if not 0 <= token <= MAX_TOKEN:
        raise ValueError(f"token must fit in {8 * TOKEN_BYTES} bits")
    data = token.to_bytes(TOKEN_BYTES, "big")
    code = bytes(_codec().encode(data + _crc(data)))
    return np.unpackbits(np.frombuffer(code, np.uint8)) ^ WHITENING


@dataclass(frozen=True)
class TokenRead:
    token: int | None
    corrected_bytes: int = 0
    erasures: int = 0

    @property
    def ok(self) -> bool:
        return self.token is not None


def decode_soft(p_one: np.ndarray) -> TokenRead:
    """`p_one`: per code bit, the share of evidence for a 1 (0..1)."""
    from reedsolo import ReedSolomonError

    p = np.asarray(p_one, dtype=np.float64).ravel()[:CODE_BITS]
    hard = (p > 0.5).astype(np.uint8) ^ WHITENING
    received = bytearray(np.packbits(hard).tobytes())
    confidence = np.abs(p - 0.5).reshape(CODE_BYTES, 8).min(axis=1)
    attempts: list[list[int]] = [[], sorted(np.argsort(confidence)[:ERASURE_ATTEMPT].tolist())]
    codec = _codec()
    for erase in attempts:
        try:
            message, _, errata = codec.decode(bytearray(received), erase_pos=erase or None)
        except ReedSolomonError:
            continue
        data = bytes(message)
        if len(data) == DATA_BYTES and _crc(data[:TOKEN_BYTES]) == data[TOKEN_BYTES:]:
            return TokenRead(int.from_bytes(data[:TOKEN_BYTES], "big"), len(errata), len(erase))
    return TokenRead(None)
