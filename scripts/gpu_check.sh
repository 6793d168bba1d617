#!/usr/bin/env bash
# Training throughput on a lent NVIDIA GPU machine (H100/H200), in one short run:
#
#   scripts/gpu_check.sh OUT_DIR [--steps N]   # the check (needs nvidia-smi and torch with CUDA)
#   scripts/gpu_check.sh OUT_DIR --dry-run     # print the plan, run nothing (any machine)
#   scripts/gpu_check.sh OUT_DIR --cpu-smoke   # the same plan, tiny, on the CPU (tests this script)
#
# Steps/s and samples/s at 128 px (df-128) and 256 px (df-256): fp32, bf16, and bf16 with
# torch.compile; MFU against the card's dense bf16 peak (H100/H200: 989 TFLOP/s; $PEAK_TFLOPS
# overrides); then DistributedDataParallel over every GPU (1 vs all, scaling efficiency). Each run is
# scripts/bench_train.py in its own process. Writes OUT_DIR/runs/*.json and OUT_DIR/gpu_check.json,
# and prints a table for docs/benchmarks.md. Installs nothing: it uses the project's .venv when there
# is one, else python3 (which must hold torch).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu_check: $*" >&2; exit 2; }
[[ $# -ge 1 && $1 != -* ]] || die "usage: scripts/gpu_check.sh OUT_DIR [--steps N] [--dry-run | --cpu-smoke]"
out="$1"; shift
mode=gpu steps=20
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) mode=dry ;;
    --cpu-smoke) mode=cpu ;;
    --steps) steps="${2:?--steps needs a number}"; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

card="none" gpus=1 peak="${PEAK_TFLOPS:-}"
if [[ $mode == gpu ]]; then
  command -v nvidia-smi >/dev/null || die "no nvidia-smi: this check needs an NVIDIA GPU (--cpu-smoke tests the script on a CPU)"
  card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)" || die "nvidia-smi sees no GPU"
  gpus="$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)"
  [[ -n "$card" && $gpus -ge 1 ]] || die "nvidia-smi sees no GPU"
  "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "$py has no CUDA-enabled torch (the card is $card)"
  if [[ -z "$peak" ]]; then
    case "$card" in
      *H100* | *H200*) peak=989 ;;  # dense bf16 tensor-core peak, SXM
    esac
  fi
  device=cuda
  plan=("df-128 64 32 off" "df-128 64 bf16 off" "df-128 64 bf16 on" "df-256 32 32 off" "df-256 32 bf16 off"
    "df-256 32 bf16 on")
  ddp=("df-128 64 bf16")
else
  device=cpu steps=1 gpus=2  # CPU smoke: two gloo processes stand in for two GPUs
  plan=("smoke-64 2 32 off" "smoke-64 2 bf16 off")
  ddp=("smoke-64 2 bf16")
  [[ $mode == dry ]] && { device=cuda steps=20 gpus=ALL
    plan=("df-128 64 32 off" "df-128 64 bf16 off" "df-128 64 bf16 on" "df-256 32 32 off" "df-256 32 bf16 off"
      "df-256 32 bf16 on")
    ddp=("df-128 64 bf16"); }
fi

peak_args=()
[[ -n "$peak" ]] && peak_args=(--peak-tflops "$peak")
run() {  # --dry-run: print the command; else log it and run it
  if [[ $mode == dry ]]; then printf '%q ' "$@"; echo; return; fi
  printf '+' >&2; printf ' %q' "$@" >&2; echo >&2
  "$@"
}
[[ $mode == dry ]] || { mkdir -p "$out/runs"; echo "gpu_check: $card x $gpus, peak ${peak:-unknown} TFLOP/s, $py, $steps steps per run" >&2; }
for row in "${plan[@]}"; do
  read -r preset batch precision compile <<<"$row"
  flag=(); [[ $compile == on ]] && flag=(--compile)
  run "$py" scripts/bench_train.py --presets "$preset" --batch "$batch" --steps "$steps" --device "$device" \
    --precision "$precision" "${flag[@]}" "${peak_args[@]}" --out "$out/runs/single-$preset-$precision-compile-$compile.json"
done
for row in "${ddp[@]}"; do
  read -r preset batch precision <<<"$row"
  run "$py" -m torch.distributed.run --standalone --nproc_per_node "$gpus" scripts/bench_train.py --ddp \
    --presets "$preset" --batch "$batch" --steps "$steps" --device "$device" --precision "$precision" \
    "${peak_args[@]}" --out "$out/runs/ddp-$preset-$precision-$gpus.json"
done
[[ $mode == dry ]] && exit 0

"$py" - "$out" "$card" "$gpus" "${peak:-}" "$mode" <<'PY'
"""Merge the runs into gpu_check.json and print the table."""
import json
import sys
from pathlib import Path

import torch

out, card, gpus, peak, mode = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = []
for path in sorted((out / "runs").glob("*.json"), key=lambda p: (p.name.startswith("ddp"), p.name)):
    for row in json.loads(path.read_text())["rows"]:
        row["run"] = path.stem
        row["steps_per_s"] = round(1000 / row["ms_per_step"], 3)
        rows.append(row)
single = {(r["preset"], r["batch"], r["precision"], r["compile"]): r for r in rows if r["processes"] == 1 and not r["run"].startswith("ddp")}
scaling = []
for r in rows:
    if not r["run"].startswith("ddp"):
        continue
    base = single.get((r["preset"], r["batch"], r["precision"], False))
    efficiency = round(r["samples_per_s"] / (r["processes"] * base["samples_per_s"]), 3) if base else None
    scaling.append({"preset": r["preset"], "batch_per_gpu": r["batch"], "precision": r["precision"],
                    "gpus": r["processes"], "samples_per_s": r["samples_per_s"],
                    "one_gpu_samples_per_s": base["samples_per_s"] if base else None, "efficiency": efficiency})
summary = {
    "mode": mode, "card": card, "gpus": gpus, "peak_bf16_tflops": float(peak) if peak else None,
    "mfu_note": "achieved FLOP/s (FlopCounterMode) over the dense bf16 peak times the GPUs, fp32 rows included",
    "torch": torch.__version__, "cuda": torch.version.cuda, "rows": rows, "scaling": scaling,
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(f"\n{card} x {gpus} (torch {torch.__version__}, peak {peak or '?'} TFLOP/s bf16 dense)\n")
print("| preset | px | batch | GPUs | precision | compile | steps/s | samples/s | TFLOP/s | MFU | peak MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    px = {"smoke-64": 64, "df-128": 128, "df-256": 256}.get(r["preset"], "?")
    print(f"| {r['preset']} | {px} | {r['batch']} | {r['processes']} | {r['precision']} | {r['compile']} | "
          f"{r['steps_per_s']} | {r['samples_per_s']} | {r['achieved_tflops']} | {r.get('mfu', '-')} | "
          f"{r['peak_memory_mib']} |")
for s in scaling:
    print(f"\nDDP {s['preset']} {s['precision']}, {s['batch_per_gpu']}/GPU: {s['gpus']} GPU(s) {s['samples_per_s']} "
          f"samples/s vs one {s['one_gpu_samples_per_s']}: scaling efficiency {s['efficiency']}")
print(f"\nwrote {out / 'gpu_check.json'}")
PY
