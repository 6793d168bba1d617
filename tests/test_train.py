"""Consent-gated training: refusals before any step, the smoke run learns, resume, NaN guard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from consent_helpers import store_at

from faceswap.cli import main

SMOKE = str(Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml")
GPU_CONFIG = str(Path(__file__).parents[1] / "configs" / "train" / "df-128.yaml")


def _train(root: Path, *extra: str, name: str = "m", purpose: str = "evaluation") -> int:
    return main(
        [
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
            purpose,
            "--name",
            name,
            *extra,
        ]
    )


def _one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faceswap: error:")]
    assert len(err) == 1
    return err[0]


def test_refused_without_consent_for_a_subject(facesets_workspace, capsys):
    code = main(
        [
            "train",
            "--workspace",
            str(facesets_workspace),
            "--config",
            SMOKE,
            "--subject-a",
            "demo-a",
            "--subject-b",
            "stranger",
            "--purpose",
            "evaluation",
            "--name",
            "m",
        ]
    )
    assert code == 1
    assert "no consent record for subject 'stranger'" in _one_line_error(capsys)
    assert not (facesets_workspace / "models" / "m" / "checkpoints").exists()


def test_refused_after_revocation(facesets_workspace, capsys):
    store_at(facesets_workspace).revoke("demo-b", "withdrawn")
    assert _train(facesets_workspace) == 1
    assert "subject 'demo-b'" in _one_line_error(capsys)


def test_refused_for_a_purpose_not_consented(facesets_workspace, demo_subjects, capsys):
    from consent_helpers import in_days

    from faceswap.consent.registry import Registration

    files, _ = demo_subjects
    store = store_at(facesets_workspace)
    store.revoke("demo-a", "narrowing the purpose")
    store.register(
        Registration(
            "demo-a",
            "Synthetic demo-a",
            files["demo-a"].references,
            ["evaluation"],
            in_days(30),
            files["demo-a"].truth,
            synthetic=True,
            backend="dlib",
        )
    )
    assert _train(facesets_workspace, purpose="dubbing-research") == 1
    assert "does not allow purpose 'dubbing-research'" in _one_line_error(capsys)


def test_refused_for_a_faceset_of_another_subject(facesets_workspace, capsys):
    facesets = facesets_workspace / "facesets"
    shutil.rmtree(facesets / "demo-b")
    shutil.copytree(facesets / "demo-a", facesets / "demo-b")
    assert _train(facesets_workspace) == 1
    assert "belongs to subject 'demo-a', not 'demo-b'" in _one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_gpu_config_without_gpu_says_how_to_smoke_run(facesets_workspace, capsys):
    code = main(
        [
            "train",
            "--workspace",
            str(facesets_workspace),
            "--config",
            GPU_CONFIG,
            "--subject-a",
            "demo-a",
            "--subject-b",
            "demo-b",
            "--purpose",
            "evaluation",
            "--name",
            "m",
        ]
    )
    assert code == 2
    assert "--trainer.accelerator cpu" in _one_line_error(capsys)


def test_resume_continues_and_nan_is_survived(facesets_workspace, capsys):
    assert (
        _train(
            facesets_workspace,
            "--trainer.max_steps",
            "12",
            "--model.inject_nan_at_step",
            "6",
            "--model.snapshot_every",
            "2",
            "--json",
        )
        == 0
    )
    first = _last_json(capsys)
    assert first["steps"] == 12
    model_dir = facesets_workspace / "models" / "m"
    info = json.loads((model_dir / "model.json").read_text())
    assert info["nan_recoveries"] == 1
    assert (model_dir / "checkpoints" / "last.ckpt").exists()
    assert _train(facesets_workspace, "--trainer.max_steps", "20", "--json") == 0
    second = _last_json(capsys)
    assert second["resumed_from"] == 12 and second["steps"] == 20
    ckpt = torch.load(model_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["consent_grant"]["subject_a"] == "demo-a" and len(ckpt["consent_grant"]["records"]) == 2


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out
    start = out.rfind("\n{")
    return json.loads(out[start + 1 :] if start >= 0 else out[out.find("{") :])


@pytest.mark.slow
def test_smoke_run_learns_and_every_preview_verifies(facesets_workspace, capsys):
    assert _train(facesets_workspace, "--name", "smoke", "--json") == 0
    result = _last_json(capsys)
    losses = result["losses"]
    assert losses["recon_a_last50"] < 0.6 * losses["recon_a_first50"]
    assert losses["recon_b_last50"] < 0.6 * losses["recon_b_first50"]
    model_dir = facesets_workspace / "models" / "smoke"
    info = json.loads((model_dir / "model.json").read_text())
    grant_ids = [r["record_id"] for r in info["consent_grant"]["records"]]
    snapshot = store_at(facesets_workspace).load()
    assert grant_ids == [snapshot.for_subject("demo-a")[0].record_id, snapshot.for_subject("demo-b")[0].record_id]
    assert set(info["faceset_hashes"]) == {"a", "b"} and info["steps"] == 300
    previews = sorted((model_dir / "previews").glob("*.png"))
    assert len(previews) >= 3
    assert main(["verify", *map(str, previews), "--workspace", str(facesets_workspace), "--json"]) == 0
    report = _last_json(capsys)
    assert all(f["ledger"] == "valid" and f["producer"] == "train.preview" for f in report["files"])
    entry = store_at(facesets_workspace).ledger.entries("model.trained")[-1]
    assert entry.data["fingerprint"] == info["fingerprint"] and entry.data["consent_record_ids"] == grant_ids


def test_config_overrides_reach_the_model_and_its_signed_entry(facesets_workspace, capsys):
    """Flags over the config change what is trained, and the signed entry records the recipe used."""
    overrides = ["--model.lr", "0.0001", "--model.weight_priority", "5", "--data.random_warp", "false"]
    overrides += ["--data.colour_transfer", "0", "--data.batch_size", "4", "--trainer.max_steps", "3"]
    assert _train(facesets_workspace, *overrides, "--json", name="overridden") == 0
    entry = store_at(facesets_workspace).ledger.entries("model.trained")[-1]
    assert entry.data["name"] == "overridden" and entry.data["steps"] == 3
    assert entry.data["hparams"]["lr"] == 0.0001 and entry.data["hparams"]["weight_priority"] == 5
    data = entry.data["data"]
    assert data["random_warp"] is False and data["colour_transfer"] == 0 and data["batch_size"] == 4
    assert data["resolution"] == entry.data["resolution"] == 64  # linked to the model's, never set apart
    capsys.readouterr()
    wrong = {
        "--data.resolution": ("32", 'must be given via "model.resolution"'),  # linked: one resolution
        "--model.no_such_option": ("1", "no_such_option"),
        "--data.batch_size": ("many", "batch_size"),
    }
    for flag, (value, said) in wrong.items():
        assert _train(facesets_workspace, flag, value, "--trainer.max_steps", "3", name="wrong") == 2, flag
        line = _one_line_error(capsys)
        assert said in line and "usage:" not in line, line
    assert not (facesets_workspace / "models" / "wrong").exists()
