"""convert-batch: a CSV of shots, each the same consent-checked conversion as a Ray task, one
ledger entry and one file per shot even when a worker is killed mid-shot; a re-run skips them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from consent_helpers import store_at

from faceswap.convert.batch import read_shots, run_batch
from faceswap.convert.options import columns
from faceswap.errors import BadInput
from faceswap.hashing import file_sha256
from faceswap.media import iter_video_frames
from faceswap.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def _cut(source: Path, out: Path, first: int, count: int) -> Path:
    """Frames [first, first + count) of a clip as a new H.264 clip: a shot small enough for 2 cores."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "18"}
        for i, frame in enumerate(iter_video_frames(source, limit=first + count)):
            if i < first:
                continue
            if i == first:
                stream.height, stream.width = frame.image.shape[:2]
            new = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
            new.pts, new.time_base = i - first, Fraction(1, 25)
            for packet in stream.encode(new):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def _write_csv(path: Path, header: str, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# the shot list, checked before anything runs


def test_rows_become_shots_with_options_by_flag_name_and_paths_against_the_csv(tmp_path):
    csv_path = _write_csv(
        tmp_path / "jobs" / "shots.csv",
        "model,input,output,mask,allow-empty,bits,sequence,alpha,smoothing,color",
        "/models/tiny,plates/a.mp4,out/a.mp4,mouth,yes,,,,0.1,lct",
        "../models/tiny,/plates/b.mp4,out/b,,,16,png,true,,",
    )
    first, second = read_shots(csv_path)
    folder = tmp_path / "jobs"
    assert (first.row, first.model, first.input, first.output) == (
        2,
        Path("/models/tiny"),
        folder / "plates/a.mp4",
        folder / "out/a.mp4",
    )
    assert (first.options.mask, first.options.allow_empty, first.options.smoothing, first.options.color) == (
        "mouth",
        True,
        0.1,
        "lct",
    )
    assert second.model == folder / "../models/tiny" and second.input == Path("/plates/b.mp4")
    assert (second.options.bits, second.options.sequence, second.options.alpha, second.options.mask) == (
        16,
        "png",
        True,
        "full",
    )
    assert {"mask", "color", "blend", "smoothing", "sequence", "bits", "alpha", "allow-empty"} <= set(columns())


def test_vfx_options_by_flag_name(tmp_path):
    header = "model,input,output,sequence,alpha,frames,start-frame,output-colorspace"
    csv_path = _write_csv(tmp_path / "shots.csv", header, "m,plate.mov,sh010,exr,true,1001-1100,1001,ACEScg")
    (shot,) = read_shots(csv_path)
    options = shot.options
    assert (options.sequence, options.alpha, options.frames, options.start_frame) == ("exr", True, (1001, 1100), 1001)
    assert options.output_colorspace == "ACEScg"


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("model,input,output,colour", "m,i.mp4,o.mp4,rct", "row 1 (header): unknown column 'colour'"),
        ("model,input", "m,i.mp4", "row 1 (header): missing column(s) output"),
        ("model,input,output,bits", "m,i.mp4,o.mp4,12", "row 2: --bits must be 8 or 16"),
        ("model,input,output,smoothing", "m,i.mp4,o.mp4,soon", "row 2: smoothing = 'soon' is not a number"),
        ("model,input,output,alpha", "m,i.mp4,o.mp4,maybe", "row 2: alpha = 'maybe' is not true or false"),
        ("model,input,output", "m,,o.mp4", "row 2: 'input' is empty"),
        ("model,input,output", "m,i.mp4,o.mp4,extra", "row 2: 4 cells for 3 columns"),
        ("model,input,output,frames", "m,i.mp4,o.mp4,soon", "row 2: frames = 'soon' is not FIRST-LAST"),
        ("model,input,output,frames", "m,i.mp4,o.mp4,9-3", "row 2: frames = '9-3' is not FIRST-LAST"),
    ],
)
def test_bad_rows_are_refused_up_front_naming_the_row(tmp_path, header, row, message):
    csv_path = _write_csv(tmp_path / "shots.csv", header, row)
    with pytest.raises(BadInput, match=re.escape(message)):
        read_shots(csv_path)


def test_two_shots_writing_one_output_are_refused(tmp_path):
    csv_path = _write_csv(tmp_path / "shots.csv", "model,input,output", "m,a.mp4,out.mp4", "m,b.mp4,./out.mp4")
    with pytest.raises(BadInput, match="row 3: output .* is also row 2's"):
        read_shots(csv_path)


def test_sqlite_ledger_is_refused_for_a_cluster_on_other_machines(tmp_path, capsys):
    """Refused before any connection is tried (192.0.2.0/24 is a documentation range)."""
    from faceswap.cli import main

    csv_path = _write_csv(tmp_path / "shots.csv", "model,input,output", "m,a.mp4,out.mp4")
    with pytest.raises(BadInput, match="SQLite, which only this machine can append to safely"):
        run_batch(Workspace(tmp_path / "ws"), csv_path, ray_address="192.0.2.10:6379")
    assert (
        main(["convert-batch", str(csv_path), "--workspace", str(tmp_path / "ws"), "--ray", "ray://192.0.2.10:10001"])
        == 2
    )
    assert "PostgreSQL ledger" in capsys.readouterr().err


# the batch on a local Ray cluster


def _conversions(ledger) -> list:
    """Output entries of conversions (the trained workspace also holds its training preview's)."""
    return [e for e in ledger.entries("output.written") if e.data["producer"] == "convert"]


def _batch(root: Path, csv_path: Path, *extra: str, kill: re.Pattern | None = None) -> tuple[dict, int | None]:
    """Run `faceswap convert-batch --json` in its own process (it starts and stops its own local
    Ray cluster); with `kill`, SIGKILL the worker writing the first partial output whose name
    matches, mid-shot (the sink names its partial files after the writing process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "faceswap.cli", "convert-batch", str(csv_path), "--json", "--workspace", str(root)]
    proc = subprocess.Popen([*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = None
    try:
        deadline = time.monotonic() + 600
        while kill is not None and killed is None and proc.poll() is None and time.monotonic() < deadline:
            for candidate in csv_path.parent.rglob(".*faceswap-partial-*"):
                match = kill.match(candidate.name)
                if match:
                    killed = int(match.group(1))
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.strip().startswith("{"), f"exit {proc.returncode}, no JSON summary; stderr:\n{err[-4000:]}"
    return {"code": proc.returncode, **json.loads(out)}, killed


@pytest.fixture
def shots(trained_workspace, demo_subjects, tmp_path) -> Path:
    """Three 6-frame shots of subject B, and one of subject A alone (nothing to swap: it fails)."""
    files, _ = demo_subjects
    folder = tmp_path / "job"
    for i in range(3):
        _cut(files["demo-b"].clip, folder / "plates" / f"shot{i + 1}.mp4", 6 * i, 6)
    _cut(files["demo-a"].clip, folder / "plates" / "nobody.mp4", 0, 4)
    model = trained_workspace / "models" / "tiny"
    return _write_csv(
        folder / "shots.csv",
        "model,input,output,smoothing,color",
        f"{model},plates/shot1.mp4,out/shot1.mp4,,",
        f"{model},plates/shot2.mp4,out/shot2.mp4,0.1,lct",
        f"{model},plates/shot3.mp4,out/shot3.mp4,,",
        f"{model},plates/nobody.mp4,out/nobody.mp4,,",
    )


@pytest.mark.slow
def test_a_killed_worker_still_ends_with_one_file_and_one_entry_per_shot_and_a_rerun_skips(trained_workspace, shots):
    out = shots.parent / "out"
    report, killed = _batch(
        trained_workspace, shots, "--workers", "2", kill=re.compile(r"^\.shot2\.mp4\.faceswap-partial-(\d+)-")
    )
    assert killed is not None, "no worker was caught writing shot 2"
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    by_row = {r["row"]: r for r in report["results"]}
    assert report["code"] == 1 and (report["done"], report["failed"], report["skipped"]) == (3, 1, 0), report
    assert "no face of subject 'demo-b'" in by_row[5]["error"] and by_row[5]["exit_code"] == 1
    assert report["frames"] == 18 and report["cluster"]["cpus"] == 2 and report["frames_per_s"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["shot1.mp4", "shot2.mp4", "shot3.mp4"]  # no partials left
    entries = _conversions(store_at(trained_workspace).ledger)
    assert sorted(e.data["name"] for e in entries) == ["shot1.mp4", "shot2.mp4", "shot3.mp4"]
    for entry in entries:
        path = out / entry.data["name"]
        assert entry.data["sha256"] == file_sha256(path) and entry.data["frames"] == 6
        assert entry.data["settings"]["shot"]["input_sha256"] == file_sha256(shots.parent / "plates" / path.name)
        assert by_row[int(path.stem[-1]) + 1]["ledger_seq"] == entry.seq
    assert entries[[e.data["name"] for e in entries].index("shot2.mp4")].data["settings"]["color"] == "lct"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    again, _ = _batch(trained_workspace, shots, "--workers", "2")
    assert (again["done"], again["skipped"], again["failed"]) == (0, 3, 1), again
    assert [r["ledger_seq"] for r in again["results"][:3]] == [by_row[row]["ledger_seq"] for row in (2, 3, 4)]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert len(_conversions(store_at(trained_workspace).ledger)) == 3


@pytest.mark.slow
def test_a_batch_appends_to_the_shared_postgresql_ledger(trained_workspace, demo_subjects, postgres_url, tmp_path):
    """The render-farm set-up on one machine: the workspace's ledger migrated to PostgreSQL, the
    batch's workers append there (the SQLite file is left as it was)."""
    from faceswap.cli import main
    from faceswap.ledger import open_ledger
    from faceswap.ledger.postgres import redact

    files, _ = demo_subjects
    assert main(["ledger", "migrate", "--workspace", str(trained_workspace), "--to", postgres_url, "--json"]) == 0
    _cut(files["demo-b"].clip, tmp_path / "job" / "plate.mp4", 0, 4)
    csv_path = _write_csv(
        tmp_path / "job" / "shots.csv",
        "model,input,output",
        f"{trained_workspace / 'models' / 'tiny'},plate.mp4,out.mp4",
    )
    report, _ = _batch(trained_workspace, csv_path, "--workers", "1", "--ledger-url", postgres_url)
    assert report["code"] == 0 and report["done"] == 1 and report["ledger"] == redact(postgres_url), report
    (entry,) = _conversions(open_ledger(Workspace(trained_workspace, postgres_url)))
    assert entry.data["sha256"] == file_sha256(tmp_path / "job" / "out.mp4") and entry.data["frames"] == 4
    assert _conversions(store_at(trained_workspace).ledger) == []
