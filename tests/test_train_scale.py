"""Training at scale, proven on CPU: two DDP processes (gloo) through `faceswap train`, and bf16."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from consent_helpers import store_at

from faceswap.cli import main

ROOT = Path(__file__).parents[1]
SMOKE = str(ROOT / "configs" / "train" / "smoke.yaml")


def _train_args(root: Path, name: str, *extra: str) -> list[str]:
    return [
        "train",
        "--workspace",
        str(root),
        "--config",
        SMOKE,
        "--subject-a",
        "demo-a",
        "--subject-b",
        "demo-b",
        "--purpose",
        "evaluation",
        "--name",
        name,
        "--json",
        *extra,
    ]


def _results(stdout: str) -> list[dict]:
    """Every JSON object the ranks printed (each rank runs the command and prints its result)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", at)) >= 0:
        try:
            value, end = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        if isinstance(value, dict) and "fingerprint" in value:
            found.append(value)
        at = end
    return found


def _ddp(root: Path, steps: int) -> list[dict]:
    """`faceswap train` as a user runs it, on two CPU processes; Lightning launches the second rank by
    running the same command again."""
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", str(steps)]
    args = [sys.executable, "-m", "faceswap.cli", *_train_args(root, "ddp", *ddp, "--model.preview_every", "4")]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = _results(done.stdout)
    assert sorted(r["rank"] for r in results) == [0, 1], done.stdout[-2000:]
    return sorted(results, key=lambda r: r["rank"])


@pytest.mark.slow
def test_two_ddp_processes_train_one_model_and_resume(facesets_workspace):
    zero, one = _ddp(facesets_workspace, 8)
    assert zero["fingerprint"] == one["fingerprint"]  # gradients were all-reduced: the ranks agree
    assert zero["steps"] == one["steps"] == 8
    assert zero["ledger_seq"] > 0 and one["ledger_seq"] == -1 and one["previews"] == []
    model_dir = facesets_workspace / "models" / "ddp"
    info = json.loads((model_dir / "model.json").read_text())
    assert info["fingerprint"] == zero["fingerprint"] and info["ledger_seq"] == zero["ledger_seq"]
    ledger = store_at(facesets_workspace).ledger
    trained = ledger.entries("model.trained")
    assert [e.data["fingerprint"] for e in trained] == [zero["fingerprint"]]
    previews = [e for e in ledger.entries("output.written") if e.data.get("producer") == "train.preview"]
    assert len(previews) == len(zero["previews"]) == len(list((model_dir / "previews").glob("*.png"))) >= 1

    again_zero, again_one = _ddp(facesets_workspace, 12)
    assert again_zero["resumed_from"] == again_one["resumed_from"] == 8
    assert again_zero["fingerprint"] == again_one["fingerprint"] != zero["fingerprint"]
    assert len(store_at(facesets_workspace).ledger.entries("model.trained")) == 2


@pytest.mark.slow
def test_two_ddp_processes_refuse_without_consent(facesets_workspace):
    """The consent gate runs in the data module of every rank: a revoked record stops the command."""
    store = store_at(facesets_workspace)
    record = store.load().for_subject("demo-b")[0]
    revoke = ["consent", "revoke", record.record_id, "--reason", "withdrawn", "--workspace", str(facesets_workspace)]
    assert main(revoke) == 0
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "4"]
    args = [sys.executable, "-m", "faceswap.cli", *_train_args(facesets_workspace, "refused", *ddp)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "faceswap: error:" in done.stderr and "Traceback" not in done.stderr
    assert not (facesets_workspace / "models" / "refused" / "model.json").exists()


def test_bf16_mixed_trains_on_cpu(facesets_workspace, capsys):
    args = _train_args(facesets_workspace, "bf16", "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "4")
    assert main(args) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.rfind("\n{") + 1 :] if "\n{" in out else out[out.find("{") :])
    assert result["steps"] == 4 and result["ledger_seq"] > 0
    info = json.loads((facesets_workspace / "models" / "bf16" / "model.json").read_text())
    assert info["precision"] == "bf16-mixed"
