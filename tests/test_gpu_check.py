"""scripts/gpu_check.sh, as far as a machine without a GPU can check it: it stops at once saying
why, prints its plan, and runs that plan end to end on the CPU (two gloo processes for DDP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def _run(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: the check would really run")
def test_without_a_gpu_it_stops_at_once_saying_why(tmp_path):
    started = time.monotonic()
    result = _run(str(tmp_path / "out"))
    assert result.returncode == 2 and "no nvidia-smi" in result.stderr and "--cpu-smoke" in result.stderr
    assert time.monotonic() - started < 10 and not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path):
    assert _run().returncode == 2
    assert "unknown option --fast" in _run(str(tmp_path), "--fast").stderr


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    result = _run(str(tmp_path / "out"), "--dry-run")
    plan = result.stdout.splitlines()
    assert result.returncode == 0 and len(plan) == 7 and not (tmp_path / "out").exists()
    singles, ddp = plan[:6], plan[6]
    assert sum("df-128" in line for line in singles) == 3 and sum("df-256" in line for line in singles) == 3
    assert (
        sum("--precision bf16" in line for line in singles) == 4 and sum("--compile" in line for line in singles) == 2
    )
    assert "torch.distributed.run" in ddp and "--ddp" in ddp and "--device cuda" in ddp


@pytest.mark.slow
def test_cpu_smoke_runs_the_plan_and_writes_the_summary(tmp_path):
    out = tmp_path / "out"
    result = _run(str(out), "--cpu-smoke", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["mode"] == "cpu" and summary["peak_bf16_tflops"] is None
    single = [r for r in summary["rows"] if r["processes"] == 1]
    assert sorted(r["precision"] for r in single) == ["32", "bf16"]
    assert all(r["steps_per_s"] > 0 and r["gflop_per_step"] > 0 for r in summary["rows"])
    (scaling,) = summary["scaling"]
    assert scaling["gpus"] == 2 and scaling["precision"] == "bf16" and scaling["efficiency"] > 0
    assert "scaling efficiency" in result.stdout and "| smoke-64 | 64 |" in result.stdout
