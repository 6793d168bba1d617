"""`faceswap models fetch insightface`: a real download over HTTP from a local server serving a pack
built here, checked and installed atomically; bad downloads install nothing."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest
import tiny_onnx

from faceswap.cli import main
from faceswap.faces.insightface_backend import pack_available


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder of zips served on localhost; yields (folder, base url)."""
    folder = tmp_path_factory.mktemp("served")
    pack = tiny_onnx.build_pack(tmp_path_factory.mktemp("pack")) / "models" / "buffalo_l"
    with zipfile.ZipFile(folder / "buffalo_l.zip", "w") as good:
        for onnx in sorted(pack.glob("*.onnx")):
            good.write(onnx, f"buffalo_l/{onnx.name}")
    with zipfile.ZipFile(folder / "escape.zip", "w") as evil:
        evil.write(next(pack.glob("*.onnx")), "../../outside.onnx")
    with zipfile.ZipFile(folder / "broken.zip", "w") as broken:
        broken.writestr("det_10g.onnx", b"not an onnx model")
    (folder / "notazip.zip").write_bytes(b"<html>rate limited</html>")

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a, **k: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _fetch(root: Path, url: str, *extra: str) -> int:
    return main(["models", "fetch", "insightface", "--model-root", str(root), "--url", url, "--json", *extra])


def test_fetch_installs_a_pack_that_loads(served, tmp_path, capsys):
    folder, base = served
    digest = hashlib.sha256((folder / "buffalo_l.zip").read_bytes()).hexdigest()
    assert _fetch(tmp_path, f"{base}/buffalo_l.zip", "--sha256", digest) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sha256"] == digest and set(report["tasks"]) >= {"detection", "recognition", "landmark_2d_106"}
    assert pack_available(tmp_path) and sorted(p.name for p in (tmp_path / "models").iterdir()) == ["buffalo_l"]
    from faceswap.faces.analyzer import FaceAnalyzer

    assert FaceAnalyzer("auto", tmp_path).name == "insightface"  # the installed pack is what auto picks
    assert _fetch(tmp_path, f"{base}/buffalo_l.zip") == 0  # a second fetch leaves it alone
    assert json.loads(capsys.readouterr().out)["already_installed"] is True


@pytest.mark.parametrize(
    ("name", "extra", "why"),
    [
        ("buffalo_l.zip", ("--sha256", "0" * 64), "is not the expected"),
        ("escape.zip", (), "unsafe entry"),
        ("broken.zip", (), "does not load"),
        ("notazip.zip", (), "not a zip archive"),
        ("missing.zip", (), "could not download"),
    ],
    ids=["checksum", "path-escape", "broken-model", "not-a-zip", "404"],
)
def test_a_bad_download_installs_nothing(served, tmp_path, capsys, name, extra, why):
    _, base = served
    assert _fetch(tmp_path, f"{base}/{name}", *extra) == 2
    assert why in capsys.readouterr().err
    assert not pack_available(tmp_path)
    models = tmp_path / "models"
    assert not models.exists() or list(models.iterdir()) == []  # no partial download or staging folder
    assert not (tmp_path.parent / "outside.onnx").exists()


def test_doctor_names_the_fetch_command_when_the_pack_is_missing(tmp_path):
    from faceswap.doctor import check_insightface

    assert "faceswap models fetch insightface" in check_insightface(None, tmp_path).detail
