"""The payload codes by simulation: how much signal each needs per code bit to give the token
(docs/watermark.md, "Payload", quotes it).

    PYTHONPATH=. .venv/bin/python scripts/bench_payload.py --out bench-results [--trials 400]

Each code bit is read as z = d * (+-1) + N(0, 1), d the per-bit SNR. Scheme 2 (rate-1/2 K=7
convolutional code, tail-biting, CRC-32) decodes by soft Viterbi on the log-likelihood ratios the
reader derives from the z-scores (`watermark._llr`); scheme 1 (RS(16, 8) + CRC-16) decodes hard bits,
with a second try that erases the least certain bytes (`payload.decode_soft`, given each bit's
posterior). Prints, per d, the share of code bits read wrong and the share of tokens each code reads,
then the least d at which each reads >= 95 %, and writes OUT/bench_payload.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from faceswap.provenance.watermark.marker import _llr
from faceswap.provenance.watermark.payload import decode_soft, decode_v2, encode_token, encode_token_v2

SNRS = (0.75, 1.0, 1.125, 1.25, 1.375, 1.5, 1.75, 2.0, 2.25, 2.5)
GOAL = 0.95


def read_share(d: float, trials: int, rng: np.random.Generator) -> dict[str, float]:
    v2_reads = v1_reads = 0
    wrong = 0.0
    for _ in range(trials):
        token = int(rng.integers(0, 1 << 48))
        bits = encode_token_v2(token).astype(np.float64)
        z = d * (2 * bits - 1) + rng.normal(size=bits.size)
        wrong += float(np.mean((z > 0) != (bits > 0)))
        v2_reads += decode_v2(_llr(z)).token == token
        old = encode_token(token).astype(np.float64)
        z1 = d * (2 * old - 1) + rng.normal(size=old.size)
        v1_reads += decode_soft(1.0 / (1.0 + np.exp(-2.0 * d * z1))).token == token
    return {"snr": d, "wrong_bits": wrong / trials, "scheme2": v2_reads / trials, "scheme1": v1_reads / trials}


def least_snr(rows: list[dict[str, float]], scheme: str) -> float | None:
    """The smallest d reading >= GOAL, linearly interpolated between the two rows around it."""
    for low, high in zip(rows, rows[1:], strict=False):
        if low[scheme] >= GOAL:
            return low["snr"]
        if high[scheme] >= GOAL:
            t = (GOAL - low[scheme]) / (high[scheme] - low[scheme])
            return low["snr"] + t * (high["snr"] - low["snr"])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    print(f"{'per-bit SNR':>11} {'bits wrong':>10} {'scheme 2 reads':>14} {'scheme 1 reads':>14}")
    for d in SNRS:
        row = read_share(d, args.trials, rng)
        rows.append(row)
        print(f"{d:>11.3f} {row['wrong_bits']:>10.3f} {row['scheme2']:>14.3f} {row['scheme1']:>14.3f}", flush=True)
    need = {scheme: least_snr(rows, scheme) for scheme in ("scheme2", "scheme1")}
    gain = 20 * math.log10(need["scheme1"] / need["scheme2"]) if all(need.values()) else None
    shown = {k: "not reached" if v is None else f"{v:.2f}" for k, v in need.items()}
    print(f"least SNR for {GOAL:.0%} of tokens: scheme 2 {shown['scheme2']}, scheme 1 {shown['scheme1']}", end="")
    print(f"; scheme 2 needs {gain:.1f} dB less" if gain is not None else "")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"trials": args.trials, "goal": GOAL, "rows": rows, "least_snr": need, "gain_db": gain}
    (args.out / "bench_payload.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
