"""A revocation stops every job that turns a face into something, and a refused or killed job leaves
no capability behind: extraction, training (step boundary, preview, checkpoint, final publish),
kill -9 of training and extraction (and resume). Conversion, dubbing and batch conversion are in
test_integrity.py, test_dub.py and test_ledger_url_jobs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from consent_helpers import store_at

from faceswap.consent.gate import ConsentRefused
from faceswap.data.extract import ExtractOptions, extract
from faceswap.train import TrainRequest, run_training
from faceswap.workspace import Workspace

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "train" / "smoke.yaml"
QUIET = ["--trainer.enable_progress_bar", "false"]


def _after_revocation(root: Path, subject: str = "demo-a") -> tuple[str, list]:
    """The revoked record of `subject`, and every ledger entry appended after its revocation."""
    entries = store_at(root).ledger.entries()
    revoked = [e for e in entries if e.kind == "consent.revoked" and e.data["subject_id"] == subject]
    assert len(revoked) == 1
    return revoked[0].data["record_id"], entries[revoked[0].seq :]


def _revoked_at(root: Path) -> float:
    """When the revocation entry was committed (its signed timestamp), as a Unix time."""
    entry = next(e for e in store_at(root).ledger.entries() if e.kind == "consent.revoked")
    return datetime.strptime(entry.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _no_capability_left(root: Path, name: str) -> None:
    model_dir = root / "models" / name
    assert not (model_dir / "model.safetensors").exists() and not (model_dir / "checkpoints").exists()
    assert list(root.rglob("*.safetensors")) == [] and list(root.rglob("*.ckpt")) == []
    assert not (root / "staging").exists() or list((root / "staging").iterdir()) == []


class RevokeAt(pl.Callback):
    """Revokes subject A's consent after step `step` (or when training ends), from this process."""

    def __init__(self, root: Path, step: int | None = None) -> None:
        self.root, self.step = root, step
        self.revoked_at: float | None = None
        self.steps_after: list[int] = []  # steps started after the revocation (numbered from 1)

    def _revoke(self) -> None:
        store_at(self.root).revoke("demo-a", "withdrawn during training")
        self.revoked_at = time.monotonic()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.revoked_at is not None:
            self.steps_after.append(trainer.global_step + 1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.revoked_at is None and trainer.global_step == self.step:
            self._revoke()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.step is None:
            self._revoke()


def _train(root: Path, revoker: RevokeAt, steps: int, check_seconds: float, *extra: str, every: int = 1000) -> None:
    request = TrainRequest(
        Workspace(root),
        SMOKE,
        "demo-a",
        "demo-b",
        "evaluation",
        "m",
        ["--trainer.max_steps", str(steps), *QUIET, *extra],
        checkpoint_every=every,
        consent_check_seconds=check_seconds,
        callbacks=[revoker],
    )
    run_training(request)


# training, in this process: each path that records work re-checks consent


def test_revocation_stops_training_at_a_step_boundary_within_seconds(facesets_workspace):
    revoker = RevokeAt(facesets_workspace, step=3)
    with pytest.raises(ConsentRefused, match="consent record demo-a-.* was revoked"):
        _train(facesets_workspace, revoker, 2000, 0.5, "--model.preview_every", "0")
    stopped_after = time.monotonic() - revoker.revoked_at
    assert stopped_after < 5.0 and len(revoker.steps_after) < 1000
    _, after = _after_revocation(facesets_workspace)
    assert after == []
    _no_capability_left(facesets_workspace, "m")


def test_revocation_refuses_the_next_preview_inside_its_transaction(facesets_workspace):
    """The watch's timer is an hour: only the preview's own ledger transaction can see it."""
    revoker = RevokeAt(facesets_workspace, step=3)
    with pytest.raises(ConsentRefused, match="revoked"):
        _train(facesets_workspace, revoker, 40, 3600, "--model.preview_every", "4")
    assert revoker.steps_after == [4]  # the preview of step 4 was refused; step 5 never ran
    _, after = _after_revocation(facesets_workspace)
    assert after == [] and not list((facesets_workspace / "models" / "m").rglob("*.png"))
    _no_capability_left(facesets_workspace, "m")


def test_revocation_refuses_the_next_checkpoint_and_removes_the_earlier_ones(facesets_workspace):
    revoker = RevokeAt(facesets_workspace, step=3)
    checkpoints = facesets_workspace / "models" / "m" / "checkpoints"
    with pytest.raises(ConsentRefused, match="revoked"):
        _train(facesets_workspace, revoker, 40, 3600, "--model.preview_every", "0", every=2)
    assert revoker.steps_after == [4]  # step 4's checkpoint was refused as it was saved
    assert not checkpoints.exists()  # step 2's, made before the revocation, is gone too
    _, after = _after_revocation(facesets_workspace)
    assert after == []
    _no_capability_left(facesets_workspace, "m")


def test_revocation_after_the_last_step_refuses_the_publish_and_leaves_no_weights(facesets_workspace):
    revoker = RevokeAt(facesets_workspace, step=None)  # at on_train_end: after the final preview and checkpoint
    with pytest.raises(ConsentRefused, match="revoked"):
        _train(facesets_workspace, revoker, 4, 3600, "--model.preview_every", "0")
    record_id, after = _after_revocation(facesets_workspace)
    assert after == []
    entries = store_at(facesets_workspace).ledger.entries()
    assert [e for e in entries if e.kind == "model.trained"] == []
    previews = [e for e in entries if e.data.get("producer") == "train.preview"]
    assert len(previews) == 1 and record_id in previews[0].data["consent_record_ids"]  # made before: it stays
    _no_capability_left(facesets_workspace, "m")


def test_a_checkpoint_of_other_consent_records_is_not_resumed(trained_workspace, capsys):
    from faceswap.cli import main

    last = trained_workspace / "models" / "tiny" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    checkpoint["consent_grant"]["records"][0]["record_id"] = "someone-else-20260101-00000000"
    torch.save(checkpoint, last)
    args = _train_args("tiny", 40, 3)
    assert main([*args, "--workspace", str(trained_workspace)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faceswap: error:")]
    assert len(err) == 1 and "was trained under other consent records" in err[0]
    assert last.exists() and store_at(trained_workspace).ledger.entries("model.trained")[-1].data["steps"] == 30


# extraction, in this process


def _extract_revoking_at(root: Path, clip: Path, frame: int | None, check_seconds: float) -> float:
    """Revoke after `frame` frames (None: after the last one)."""
    revoked_at: list[float] = []

    def progress(done: int, total: int) -> None:
        if done == (frame or total) and not revoked_at:
            store_at(root).revoke("demo-a", "withdrawn during extraction")
            revoked_at.append(time.monotonic())

    with pytest.raises(ConsentRefused, match="consent record demo-a-.* was revoked"):
        extract(store_at(root), clip, "demo-a", ExtractOptions(consent_check_seconds=check_seconds), progress)
    return time.monotonic() - revoked_at[0]


@pytest.mark.parametrize("when", ["mid-run", "last-frame"])
def test_revocation_stops_extraction_and_leaves_no_faceset(demo_workspace, demo_subjects, when):
    files, _ = demo_subjects
    clip = files["demo-a"].clip
    frames = None if when == "last-frame" else 10  # after the last frame only the transaction's check can see it
    stopped_after = _extract_revoking_at(demo_workspace, clip, frames, 3600 if when == "last-frame" else 0.5)
    assert stopped_after < 5.0
    _, after = _after_revocation(demo_workspace)
    assert after == []
    assert not (demo_workspace / "facesets").exists() or list((demo_workspace / "facesets").iterdir()) == []
    assert list((demo_workspace / "staging").iterdir()) == []


# kill -9, in a real process: nothing counts until its entry, resume works


def _cli(root: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "faceswap.cli", *args, "--workspace", str(root)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 1800) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before the moment to kill it: {err[-2000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _exit_time(proc: subprocess.Popen, seconds: float) -> float:
    """When the process ended (Unix time), watched while other processes run."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None:
        assert time.monotonic() < deadline, "still running"
        time.sleep(0.02)
    return time.time()


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _train_args(name: str, steps: int, every: int) -> list[str]:
    return ["train", "--config", str(SMOKE), "--subject-a", "demo-a", "--subject-b", "demo-b"] + [
        "--purpose",
        "evaluation",
        "--name",
        name,
        "--checkpoint-every",
        str(every),
        "--trainer.max_steps",
        str(steps),
        "--model.preview_every",
        "0",
        *QUIET,
    ]


@pytest.mark.slow
def test_kill_9_during_training_leaves_no_weights_and_the_run_resumes(facesets_workspace):
    last = facesets_workspace / "models" / "k" / "checkpoints" / "last.ckpt"
    proc = _cli(facesets_workspace, *_train_args("k", 2000, 3))
    _wait_for(last.exists, proc)
    time.sleep(1.0)  # killed between checkpoints, or while one is written
    _kill9(proc)
    entries = store_at(facesets_workspace).ledger.entries()
    assert [e for e in entries if e.kind == "model.trained"] == []
    assert list(facesets_workspace.rglob("*.safetensors")) == []
    step = int(torch.load(last, map_location="cpu", weights_only=True)["global_step"])  # whole, never torn
    assert step >= 3
    request = TrainRequest(
        Workspace(facesets_workspace),
        SMOKE,
        "demo-a",
        "demo-b",
        "evaluation",
        "k",
        ["--trainer.max_steps", str(step + 3), "--model.preview_every", "0", *QUIET],
        checkpoint_every=3,
    )
    result = run_training(request)
    assert result.resumed_from == step and result.steps == step + 3 and result.ledger_seq > 0
    trained = store_at(facesets_workspace).ledger.entries("model.trained")
    assert [e.data["fingerprint"] for e in trained] == [result.fingerprint]
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # no half-written leftovers
    assert list((facesets_workspace / "staging").iterdir()) == []


@pytest.mark.slow
def test_kill_9_during_training_then_revocation_leaves_nothing_to_resume(facesets_workspace, capsys):
    last = facesets_workspace / "models" / "k" / "checkpoints" / "last.ckpt"
    proc = _cli(facesets_workspace, *_train_args("k", 2000, 3))
    _wait_for(last.exists, proc)
    _kill9(proc)
    store_at(facesets_workspace).revoke("demo-a", "withdrawn after the run died")
    from faceswap.cli import main

    assert main([*_train_args("k", 20, 3), "--workspace", str(facesets_workspace)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faceswap: error:")]
    assert len(err) == 1 and "was revoked" in err[0]
    _no_capability_left(facesets_workspace, "k")


@pytest.mark.slow
def test_kill_9_during_extraction_leaves_no_crops_and_a_rerun_completes(demo_workspace, demo_subjects):
    files, _ = demo_subjects
    staged = demo_workspace / "staging"

    def some_crops_staged() -> bool:
        return len(list(staged.rglob("*.png"))) >= 3 if staged.exists() else False

    proc = _cli(demo_workspace, "extract", str(files["demo-a"].clip), "--subject", "demo-a", "--json")
    _wait_for(some_crops_staged, proc)
    _kill9(proc)
    assert store_at(demo_workspace).ledger.entries("faceset.built") == []
    outside = [p for p in demo_workspace.rglob("*.png") if staged not in p.parents]
    assert outside == [] and not (demo_workspace / "facesets" / "demo-a" / "faceset.jsonl").exists()
    report = extract(store_at(demo_workspace), files["demo-a"].clip, "demo-a", ExtractOptions())
    assert report.kept > 0 and report.ledger_seq is not None
    folder = demo_workspace / "facesets" / "demo-a"
    index = [json.loads(line) for line in (folder / "faceset.jsonl").read_text().splitlines()]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["faceset.jsonl", *(f["file"] for f in index[1:])])
    assert list(staged.iterdir()) == []  # the killed run's staging was swept


@pytest.mark.slow
def test_revoking_from_another_process_stops_training_within_five_seconds(facesets_workspace):
    """As a user meets it: `faceswap train` running, `faceswap consent revoke` in another terminal."""
    checkpoints = facesets_workspace / "models" / "r" / "checkpoints"
    args = _train_args("r", 5000, 5)
    args[args.index("--model.preview_every") + 1] = "5"
    proc = _cli(facesets_workspace, *args)
    previews = facesets_workspace / "models" / "r" / "previews"
    _wait_for(lambda: (checkpoints / "last.ckpt").exists() and previews.is_dir() and any(previews.iterdir()), proc)
    revoke = _cli(facesets_workspace, "consent", "revoke", "demo-a", "--reason", "withdrawn")
    ended = _exit_time(proc, seconds=120)
    assert revoke.wait(timeout=120) == 0
    _, err = proc.communicate()
    stopped_after = ended - _revoked_at(facesets_workspace)
    lines = [line for line in err.splitlines() if line.strip()]
    record_id, after = _after_revocation(facesets_workspace)
    assert proc.returncode == 1 and stopped_after < 5.0, (stopped_after, err[-2000:])
    assert lines[-1].startswith("faceswap: error:") and record_id in lines[-1] and "Traceback" not in err
    assert after == []
    _no_capability_left(facesets_workspace, "r")
