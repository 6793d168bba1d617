"""Training throughput of the model presets: ms/step, samples/s, FLOPs, achieved TFLOP/s, memory.

    .venv/bin/python scripts/bench_train.py [--presets smoke-64 df-128] [--batch 4 8 16] [--steps 5]
        [--device cpu|cuda] [--precision 32|bf16] [--compile] [--out bench-results/train.json]
    torchrun --standalone --nproc_per_node N scripts/bench_train.py --ddp ...   (N processes, DDP)

One step = both subjects through encoder/inter/decoder, every loss term, backward and AdamW, on
random tensors (the data pipeline is not timed). FLOPs come from torch's FlopCounterMode over one
step. On CUDA, MFU is achieved FLOP/s over the card's dense peak given by --peak-tflops (times the
number of GPUs). With --ddp each process trains its own batch under DistributedDataParallel (NCCL on
CUDA, gloo on CPU); samples/s and FLOP/s are for all processes together, and only rank 0 reports.
Peak memory is per row: on CUDA the allocator's peak over the timed steps, on CPU the resident peak of
a process that runs that row alone (without --ddp each CPU row runs in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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


class TrainStep(torch.nn.Module):
    """Both subjects' reconstruction and every loss term in forward(), so DDP sees the whole step."""

    def __init__(self, network: SwapNetwork, loss: SwapLoss) -> None:
        super().__init__()
        self.network, self.loss = network, loss

    def forward(self, batch: dict) -> torch.Tensor:
        total = 0.0
        for subject in ("a", "b"):
            x, mask = batch[subject]
            pred, pred_mask = self.network.reconstruct(x, subject)
            terms = self.loss(pred, pred_mask, x, mask, mask)
            total = total + sum(w for _, w in terms.values())
        return total


def make_step(model: torch.nn.Module, optimizer, batch: dict, autocast):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            total = model(batch)
        total.backward()
        optimizer.step()

    return step


def world() -> tuple[int, int]:
    """(rank, processes) under torch.distributed, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    if world()[1] > 1:
        torch.distributed.barrier()


def bench(preset: str, batch_size: int, steps: int, device: str, precision: str, compile_model: bool) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    config = load_preset(preset)
    network = SwapNetwork(config).to(device)
    if device.startswith("cuda"):
        network = network.to(memory_format=torch.channels_last)
    loss = SwapLoss(LossWeights(), config.resolution)
    whole = TrainStep(network, loss)
    _, processes = world()
    model = whole
    if processes > 1:
        index = torch.device(device).index
        model = torch.nn.parallel.DistributedDataParallel(whole, device_ids=None if index is None else [index])
    runner = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    res = config.resolution
    batch = {
        s: (torch.rand(batch_size, 3, res, res, device=device), torch.ones(batch_size, 1, res, res, device=device))
        for s in ("a", "b")
    }
    dtype = torch.bfloat16 if precision == "bf16" else None
    kind = torch.device(device).type

    def autocast():
        return torch.autocast(device_type=kind, dtype=dtype, enabled=dtype is not None)

    step = make_step(runner, optimizer, batch, autocast)
    with FlopCounterMode(display=False) as counter:
        make_step(whole, optimizer, batch, autocast)()
    flops = counter.get_total_flops() * processes
    for _ in range(2):
        step()
    sync(device)
    if kind == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    memory = (
        torch.cuda.max_memory_allocated() / 2**20
        if kind == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "preset": preset,
        "params_m": round(sum(p.numel() for p in network.parameters()) / 1e6, 2),
        "batch": batch_size,
        "device": kind,
        "processes": processes,
        "precision": precision,
        "compile": compile_model,
        "ms_per_step": round(seconds * 1000, 1),
        "samples_per_s": round(2 * batch_size * processes / seconds, 2),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_tflops": round(flops / seconds / 1e12, 4),
        "peak_memory_mib": round(memory, 1),
    }


def bench_row(
    preset: str, batch_size: int, steps: int, device: str, precision: str, compile_model: bool, ddp: bool
) -> dict:
    """One row; on CPU outside DDP in a process of its own, so that the resident peak is this row's and
    not the largest of every row before it."""
    if ddp or torch.device(device).type != "cpu":
        return bench(preset, batch_size, steps, device, precision, compile_model)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(bench, preset, batch_size, steps, device, precision, compile_model).result()


def start_ddp(device: str) -> str:
    """Join the process group torchrun describes; each process takes its own GPU."""
    import os

    backend = "nccl" if device == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend)
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["smoke-64", "df-128"])
    parser.add_argument("--batch", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="one device's dense peak, for MFU")
    parser.add_argument("--ddp", action="store_true", help="under torchrun: DistributedDataParallel, all processes")
    parser.add_argument("--out", type=Path, default=Path("bench-results/train.json"))
    args = parser.parse_args()
    device = start_ddp(args.device) if args.ddp else args.device
    rank, processes = world()
    say = print if rank == 0 else (lambda *_a, **_k: None)
    rows = []
    say(
        "| preset | params (M) | batch | processes | device | precision | compile | ms/step | samples/s | "
        "GFLOP/step | TFLOP/s | MFU | peak MiB |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        for batch_size in args.batch:
            row = bench_row(preset, batch_size, args.steps, device, args.precision, args.compile, args.ddp)
            if args.peak_tflops:
                row["mfu"] = round(row["achieved_tflops"] / (args.peak_tflops * processes), 4)
            rows.append(row)
            say(
                f"| {preset} | {row['params_m']} | {batch_size} | {processes} | {row['device']} | "
                f"{row['precision']} | {row['compile']} | {row['ms_per_step']} | {row['samples_per_s']} | "
                f"{row['gflop_per_step']} | {row['achieved_tflops']} | {row.get('mfu', '-')} | "
                f"{row['peak_memory_mib']} |",
                flush=True,
            )
    if rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))
    if args.ddp:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
