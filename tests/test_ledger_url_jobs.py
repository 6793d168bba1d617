"""Every job decides against the ledger the user named: `--ledger-url` (or FACESWAP_LEDGER_URL, the
same workspace object either way) reaches the gate of train, extract, convert, dub and
convert-batch. The case that proves it: a workspace migrated to PostgreSQL, a record revoked there,
and the revocation file removed by someone with write access to the workspace. The SQLite file that
migration leaves behind still says the record is active; only the PostgreSQL ledger knows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceswap.cli import main
from faceswap.ledger import open_ledger
from faceswap.workspace import LEDGER_URL_ENV, Workspace

ROOT = Path(__file__).parents[1]
SMOKE = str(ROOT / "configs" / "train" / "smoke.yaml")


@pytest.fixture
def revoked_in_postgres(trained_workspace, postgres_url, capsys) -> tuple[Path, str, str]:
    """(workspace, ledger URL, the revoked record of demo-a)."""
    ws = str(trained_workspace)
    assert main(["ledger", "migrate", "--workspace", ws, "--to", postgres_url, "--json"]) == 0
    assert (
        main(["consent", "revoke", "demo-a", "--reason", "withdrawn", "--workspace", ws, "--ledger-url", postgres_url])
        == 0
    )
    (revocation,) = (trained_workspace / "consent").glob("*.revocation.json")
    revocation.unlink()  # the workspace-write attacker: only the PostgreSQL ledger still says so
    local = open_ledger(Workspace(trained_workspace)).entries()
    assert [e for e in local if e.kind == "consent.revoked"] == []
    record_id = revocation.name.removesuffix(".revocation.json")
    capsys.readouterr()
    return trained_workspace, postgres_url, record_id


def _refused(capsys, record_id: str) -> None:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("faceswap: error:")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert f"consent record {record_id} was revoked" in lines[0], lines[0]


def _nothing_after_the_revocation(url: str, root: Path) -> None:
    entries = open_ledger(Workspace(root, url)).entries()
    assert entries[-1].kind == "consent.revoked"


def _jobs(root: Path, clips: dict, out: Path) -> dict[str, list[str]]:
    model = str(root / "models" / "tiny")
    return {
        "train": ["train", "--config", SMOKE, "--subject-a", "demo-a", "--subject-b", "demo-b"]
        + ["--purpose", "evaluation", "--name", "again", "--trainer.max_steps", "2"],
        "extract": ["extract", str(clips["demo-a"]), "--subject", "demo-a"],
        "convert": ["convert", "--model", model, "--input", str(clips["demo-b"]), "--output", str(out / "c.mp4")],
        "dub": ["dub", "--model", model, "--plate", str(clips["demo-a"]), "--performance", str(clips["demo-b"])]
        + ["--output", str(out / "d.mp4")],
    }


@pytest.mark.parametrize("job", ["train", "extract", "convert", "dub"])
@pytest.mark.parametrize("given_by", ["flag", "environment"])
def test_each_job_decides_against_the_ledger_url(
    revoked_in_postgres, demo_subjects, tmp_path, monkeypatch, capsys, job, given_by
):
    root, url, record_id = revoked_in_postgres
    files, _ = demo_subjects
    out = tmp_path / "out"
    out.mkdir()
    args = [*_jobs(root, {s: f.clip for s, f in files.items()}, out)[job], "--workspace", str(root)]
    if given_by == "flag":
        args += ["--ledger-url", url]
    else:
        monkeypatch.setenv(LEDGER_URL_ENV, url)
    before = sorted(p.relative_to(root) for p in root.rglob("*") if "witness" not in p.parts)
    assert main(args) == 1
    _refused(capsys, record_id)
    _nothing_after_the_revocation(url, root)
    assert list(out.iterdir()) == []
    after = sorted(p.relative_to(root) for p in root.rglob("*") if "witness" not in p.parts)
    assert [p for p in after if p not in before and p.parts[0] != "staging"] == []


@pytest.mark.slow
def test_convert_batch_decides_against_the_ledger_url(revoked_in_postgres, demo_subjects, tmp_path):
    root, url, record_id = revoked_in_postgres
    files, _ = demo_subjects
    shots = tmp_path / "shots.csv"
    shots.write_text(f"model,input,output\n{root / 'models' / 'tiny'},{files['demo-b'].clip},{tmp_path / 'out.mp4'}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "faceswap.cli", "convert-batch", str(shots), "--json", "--workers", "1"]
    done = subprocess.run(
        [*command, "--workspace", str(root), "--ledger-url", url], capture_output=True, text=True, env=env, timeout=600
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["failed"] == 1, done.stderr[-2000:]
    assert f"consent record {record_id} was revoked" in report["results"][0]["error"]
    assert not (tmp_path / "out.mp4").exists()
    _nothing_after_the_revocation(url, root)
