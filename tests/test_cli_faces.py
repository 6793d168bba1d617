"""`faceswap faces detect` and `--version`, through the installed entry point and in process."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from faceswap.cli import main
from faceswap.faces.samples import insightface_t1


def test_detect_lists_six_faces_as_json():
    out = subprocess.run(
        [sys.executable, "-m", "faceswap.cli", "faces", "detect", str(insightface_t1()), "--backend", "dlib", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    payload = json.loads(out.stdout)
    assert payload["backend"] == "dlib"
    assert len(payload["faces"]) == 6
    assert all(len(face["kps"]) == 5 and len(face["bbox"]) == 4 for face in payload["faces"])


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"faceswap {version('faceswap')}\n"  # the installed package's version


def test_non_image_file_exits_2_with_one_line(tmp_path, capsys):
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a picture")
    assert main(["faces", "detect", str(bogus), "--backend", "dlib"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"faceswap: error: {bogus}: not a readable image"


def test_missing_and_empty_files_exit_2(tmp_path, capsys):
    assert main(["faces", "detect", str(tmp_path / "nope.png")]) == 2
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert main(["faces", "detect", str(empty)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("faceswap: error:") for line in lines)


def test_insightface_without_pack_exits_2(tmp_path, capsys):
    code = main(["faces", "detect", str(insightface_t1()), "--backend", "insightface", "--model-root", str(tmp_path)])
    assert code == 2
    assert "model pack 'buffalo_l' not found" in capsys.readouterr().err
