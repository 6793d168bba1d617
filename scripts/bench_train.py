"""Training throughput of the model presets: ms/step, samples/s, FLOPs, achieved TFLOP/s, memory.

    .venv/bin/python scripts/bench_train.py [--presets smoke-64 df-128] [--batch 4 8 16] [--steps 5]
        [--device cpu|cuda] [--precision 32|bf16] [--compile] [--out bench-results/train.json]

One step = both subjects through encoder/inter/decoder, every loss term, backward and AdamW, on
random tensors (the data pipeline is not timed). FLOPs come from torch's FlopCounterMode over one
step. On CUDA, MFU is achieved FLOP/s over the card's dense bf16/fp32 peak given by --peak-tflops.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
import yaml

from faceswap.model.losses import LossWeights, SwapLoss
from faceswap.model.networks import ModelConfig, SwapNetwork

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


def load_preset(name: str) -> ModelConfig:
    raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    fields = {k: raw[k] for k in ("architecture", "resolution", "e_dims", "ae_dims", "d_dims", "d_mask_dims")}
    return ModelConfig(**fields)


def make_step(network: SwapNetwork, loss: SwapLoss, optimizer, batch: dict, autocast):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        with autocast():
            for subject in ("a", "b"):
                x, mask = batch[subject]
                pred, pred_mask = network.reconstruct(x, subject)
                terms = loss(pred, pred_mask, x, mask, mask)
                total = total + sum(w for _, w in terms.values())
        total.backward()
        optimizer.step()

    return step


def bench(preset: str, batch_size: int, steps: int, device: str, precision: str, compile_model: bool) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    config = load_preset(preset)
    network = SwapNetwork(config).to(device)
    if device == "cuda":
        network = network.to(memory_format=torch.channels_last)
    runner = torch.compile(network) if compile_model else network
    loss = SwapLoss(LossWeights(), config.resolution)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    res = config.resolution
    batch = {
        s: (torch.rand(batch_size, 3, res, res, device=device), torch.ones(batch_size, 1, res, res, device=device))
        for s in ("a", "b")
    }
    dtype = torch.bfloat16 if precision == "bf16" else None

    def autocast():
        return torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None)

    step = make_step(runner, loss, optimizer, batch, autocast)
    with FlopCounterMode(display=False) as counter:
        make_step(network, loss, optimizer, batch, autocast)()
    flops = counter.get_total_flops()
    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    memory = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "preset": preset,
        "params_m": round(sum(p.numel() for p in network.parameters()) / 1e6, 2),
        "batch": batch_size,
        "device": device,
        "precision": precision,
        "compile": compile_model,
        "ms_per_step": round(seconds * 1000, 1),
        "samples_per_s": round(2 * batch_size / seconds, 1),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_tflops": round(flops / seconds / 1e12, 4),
        "peak_memory_mib": round(memory, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["smoke-64", "df-128"])
    parser.add_argument("--batch", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak, for MFU")
    parser.add_argument("--out", type=Path, default=Path("bench-results/train.json"))
    args = parser.parse_args()
    rows = []
    print(
        "| preset | params (M) | batch | device | precision | ms/step | samples/s | GFLOP/step | TFLOP/s | peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        for batch_size in args.batch:
            row = bench(preset, batch_size, args.steps, args.device, args.precision, args.compile)
            if args.peak_tflops:
                row["mfu"] = round(row["achieved_tflops"] / args.peak_tflops, 4)
            rows.append(row)
            print(
                f"| {preset} | {row['params_m']} | {batch_size} | {row['device']} | {row['precision']} | "
                f"{row['ms_per_step']} | {row['samples_per_s']} | {row['gflop_per_step']} | "
                f"{row['achieved_tflops']} | {row['peak_memory_mib']} |",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
