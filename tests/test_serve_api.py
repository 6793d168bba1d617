"""`faceswap serve` without a browser: the JSON API and the pages over real HTTP semantics (FastAPI's
TestClient), a real workspace, real marked files; refusals are one line; nothing stays on disk."""

from __future__ import annotations

import json
import re
import struct
import zlib

import cv2
import pytest

from faceswap.cli import main
from faceswap.faces.samples import insightface_t1, skimage_astronaut
from faceswap.ledger import open_ledger
from faceswap.media import read_image
from faceswap.provenance.output.sink import OutputContext, OutputSink
from faceswap.serve.app import create_app
from faceswap.serve.config import MiB, ServeConfig
from faceswap.workspace import Workspace

LIMIT = 4 * MiB
pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient. is deprecated")


@pytest.fixture(scope="module")
def served(tmp_path_factory, registered_template):
    """A workspace with consent for 'astro' and 'hanks', an output made under both and one under
    hanks alone."""
    import shutil

    root = tmp_path_factory.mktemp("serve") / "ws"
    shutil.copytree(registered_template, root)
    ledger = open_ledger(Workspace(root))
    ids = {e.data["subject_id"]: e.data["record_id"] for e in ledger.entries("consent.registered")}
    sink = OutputSink.for_workspace(Workspace(root), ledger)
    both = OutputContext("convert", model_fingerprint="cd" * 32, consent_record_ids=(ids["astro"], ids["hanks"]))
    alone = OutputContext("convert", model_fingerprint="ef" * 32, consent_record_ids=(ids["hanks"],))
    image = read_image(insightface_t1())
    marked = sink.write_image(root.parent / "marked.png", image, both)
    other = sink.write_image(root.parent / "hanks-only.png", cv2.flip(image, 0), alone)
    return {"root": root, "ids": ids, "marked": marked, "other": other}


def _client(root, uploads, **limits):
    from fastapi.testclient import TestClient

    uploads.mkdir(exist_ok=True)
    config = ServeConfig(Workspace(root), tmp_root=uploads, max_upload_bytes=LIMIT, workers=2, queue=2, **limits)
    return TestClient(create_app(config))


@pytest.fixture
def client(served, tmp_path):
    """A server on `served`; afterwards its upload folder must be empty, whatever the test did."""
    uploads = tmp_path / "uploads"
    with _client(served["root"], uploads) as test_client:
        test_client.uploads = uploads
        yield test_client
    assert list(uploads.iterdir()) == [], "an upload was left on disk"


def _post(client, name: str, data: bytes, route: str = "/api/verify"):
    return client.post(route, files={"file": (name, data, "application/octet-stream")})


def _one_line_refusal(response, status: int) -> str:
    assert response.status_code == status, response.text
    reason = response.json()["error"]
    assert "\n" not in reason and "Traceback" not in reason and "/" not in reason.replace("/api", "")
    return reason


def test_marked_image_is_traced_with_consent_model_credentials_and_no_changes(client, served):
    answer = _post(client, "photo.png", served["marked"].path.read_bytes()).json()
    assert answer["outcome"] == "traced" and answer["headline"] == "Synthetic: made with faceswap"
    report = answer["report"]
    assert report["detection"]["token"] == served["marked"].token and report["ledger"] == "valid"
    assert report["model_fingerprint"] == "cd" * 32 and report["path"] == "photo.png"
    assert {c["record_id"]: c["status"] for c in report["consent"]} == {i: "active" for i in served["ids"].values()}
    assert report["credentials"]["state"] == "trusted" and report["credentials"]["path"] == "photo.png"
    assert [c["kind"] for c in answer["changes"]] == ["identical"]
    sections = {s["title"]: s["facts"] for s in answer["sections"]}
    assert sections["Model"][0]["text"].startswith("cd" * 32)
    proof = {f["label"]: f for f in sections["Content Credentials"]}["Transparency log"]
    assert proof["tone"] == "good" and proof["text"].startswith(
        f"logged as leaf {report['transparency']['leaf_index']}"
    )
    assert report["transparency"]["state"] == "proven" and "still has that head" in proof["text"]
    assert {f["label"] for f in sections["Consent"]} == set(served["ids"].values())
    assert answer["frame"]["image"].startswith("data:image/jpeg;base64,") and answer["frame"]["sampled"] == 1
    assert answer["file"] == {
        "name": "photo.png",
        "bytes": served["marked"].path.stat().st_size,
        "sha256": served["marked"].entry.data["sha256"],
        "type": "PNG",
        "media": "image",
        "width": 1280,
        "height": 886,
        "frames": 1,
    }


def test_a_mirrored_cropped_jpeg_copy_says_what_was_done(client, served, tmp_path):
    image = cv2.imread(str(served["marked"].path))
    h, w = image.shape[:2]
    copy = cv2.resize(cv2.flip(image[h // 10 : h - h // 10, : w - w // 5], 1), None, fx=0.8, fy=0.8)
    ok, jpeg = cv2.imencode(".jpg", copy, [cv2.IMWRITE_JPEG_QUALITY, 90])
    answer = _post(client, "shared.jpg", jpeg.tobytes()).json()
    assert answer["outcome"] == "traced" and answer["report"]["credentials"]["state"] == "absent"
    changes = {c["kind"]: c["value"] for c in answer["changes"]}
    assert set(changes) == {"reencoded", "format", "mirror", "scale", "crop"}
    assert changes["scale"] == pytest.approx(0.8, abs=0.02)
    assert changes["crop"] == pytest.approx([0.8, 0.8], abs=0.02)


def test_a_pillarboxed_copy_says_bars_were_added_and_nothing_was_cut(client, served):
    image = cv2.imread(str(served["marked"].path))
    boxed = cv2.copyMakeBorder(image, 0, 0, 200, 200, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    ok, png = cv2.imencode(".png", boxed)
    answer = _post(client, "boxed.png", png.tobytes()).json()
    assert {c["kind"] for c in answer["changes"]} == {"reencoded", "borders"}
    assert answer["frame"]["region"] == pytest.approx({"top": 0, "left": 200 / 1680, "bottom": 1, "right": 1480 / 1680})


def test_unmarked_photo_is_not_found(client):
    answer = _post(client, "astronaut.png", skimage_astronaut().read_bytes()).json()
    assert answer["outcome"] == "not-found" and answer["headline"] == "No faceswap mark found"
    assert answer["report"]["marked"] is False and answer["changes"] == []


def test_the_page_form_answers_as_html(client, served):
    response = _post(client, "photo.png", served["marked"].path.read_bytes(), route="/verify")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "Synthetic: made with faceswap" in response.text and served["ids"]["astro"] in response.text


def test_raw_body_upload(client, served):
    data = served["marked"].path.read_bytes()
    response = client.post("/api/verify?frame=0&name=raw.png", content=data)
    assert response.status_code == 200 and response.json()["outcome"] == "traced"
    assert "image" not in response.json()["frame"] and response.json()["file"]["name"] == "raw.png"


def test_oversized_upload_is_413_whether_declared_or_streamed(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(LIMIT + 1)
    assert "larger than this page accepts (4 MB)" in _one_line_refusal(_post(client, "big.png", big), 413)

    def chunks():
        for start in range(0, len(big), 256 * 1024):
            yield big[start : start + 256 * 1024]

    streamed = client.post("/api/verify", content=chunks())  # no Content-Length: counted as it arrives
    assert "larger than this page accepts" in _one_line_refusal(streamed, 413)
    page = _post(client, "big.png", big, route="/verify")
    assert page.status_code == 413 and "larger than this page accepts" in page.text


def test_unreadable_uploads_are_refused_in_one_line(client, served):
    assert "not a file this page reads" in _one_line_refusal(_post(client, "notes.png", b"just some text " * 20), 415)
    truncated = served["marked"].path.read_bytes()[:5000]
    assert _one_line_refusal(_post(client, "cut.png", truncated), 422).startswith("cut.png: not a readable image")
    assert _one_line_refusal(_post(client, "empty.png", b""), 422) == "the upload is empty"
    no_file = client.post("/api/verify", data={"other": "x"}, files={"note": ("a.txt", b"x")})
    assert "no file in the form" in _one_line_refusal(no_file, 422)
    broken_video = b"\x00\x00\x00\x20ftypisom" + bytes(3000)
    assert "cut.mp4" in _one_line_refusal(_post(client, "cut.mp4", broken_video), 422)


def _png_header(width: int, height: int) -> bytes:
    """A small PNG whose header declares a huge picture (its pixel data is a few zero rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b"")
    )


def test_a_picture_larger_than_the_limit_is_refused_before_it_is_decoded(client):
    reason = _one_line_refusal(_post(client, "large.png", _png_header(9000, 5000)), 413)
    assert reason == "the picture is 9000x5000 pixels; this page reads images up to 40.0 MP"
    reason = _one_line_refusal(_post(client, "bomb.png", _png_header(30000, 30000)), 413)
    assert reason == "the picture is larger than the 40.0 MP this page reads"


def test_an_unexpected_failure_is_one_line_and_leaves_nothing(client, served, monkeypatch):
    from faceswap.serve.check import Checker

    seen = []

    def failing(self, upload):
        seen.append(upload.path.exists())
        raise RuntimeError(f"boom at {upload.path}")

    monkeypatch.setattr(Checker, "check", failing)
    response = _post(client, "photo.png", served["marked"].path.read_bytes())
    assert _one_line_refusal(response, 500) == "internal error while checking the file; nothing was kept"
    assert seen == [True] and list(client.uploads.iterdir()) == []


def test_the_upload_exists_only_while_it_is_checked(client, served, monkeypatch):
    from faceswap.serve.check import Checker

    seen = []
    real = Checker.check

    def watched(self, upload):
        seen.append((upload.path.parent.parent, upload.path.read_bytes() == served["marked"].path.read_bytes()))
        return real(self, upload)

    monkeypatch.setattr(Checker, "check", watched)
    assert _post(client, "photo.png", served["marked"].path.read_bytes()).status_code == 200
    assert seen == [(client.uploads, True)] and list(client.uploads.iterdir()) == []


def test_a_full_pool_refuses_at_once():
    from faceswap.serve.pool import CheckPool
    from faceswap.serve.upload import Refusal

    pool = CheckPool(workers=1, queue=1)
    with pool.slot(), pool.slot():
        with pytest.raises(Refusal) as refused:
            with pool.slot():
                pass
    assert refused.value.status == 503 and pool.active == 0
    pool.close()


def test_the_page_loads_nothing_from_elsewhere(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert re.findall(r"""(?:src|href|action)=["'](?:https?:)?//""", response.text) == []
    assert "Up to 4 MB" in response.text
    for asset in ("/static/page.css", "/static/page.js"):
        assert client.get(asset).status_code == 200


def _link(root, record_id: str, capsys) -> str:
    assert main(["consent", "link", record_id, "--workspace", str(root), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["code"]


def test_consent_page_shows_status_and_only_with_its_code_that_records_outputs(client, served, capsys):
    astro, hanks = served["ids"]["astro"], served["ids"]["hanks"]
    public = client.get(f"/api/consent/{astro}").json()
    assert public["status"] == "active" and public["access"] == "none" and "outputs" not in public
    code = _link(served["root"], astro, capsys)
    opened = client.get(f"/api/consent/{astro}", params={"code": code}).json()
    assert opened["access"] == "opened"
    assert [o["token"] for o in opened["outputs"]] == [served["marked"].token]
    assert hanks not in json.dumps(opened) and served["other"].token not in json.dumps(opened)
    page = client.get(f"/consent/{astro}", params={"code": code})
    assert served["marked"].token in page.text and hanks not in page.text and "Test subject" not in page.text
    hanks_code = _link(served["root"], hanks, capsys)
    assert client.get(f"/api/consent/{astro}", params={"code": hanks_code}).json()["access"] == "wrong"
    posted = client.post(f"/consent/{hanks}", data={"code": hanks_code})
    assert served["other"].token in posted.text and served["marked"].token in posted.text and astro not in posted.text


def test_consent_ids_that_do_not_exist_are_404(client, served):
    assert client.get("/api/consent/astro-20990101-00000000").status_code == 404
    assert client.get("/consent/..%2Fkeys").status_code == 404
    assert client.post("/consent", data={"record_id": "<script>"}).status_code == 404


def test_revocation_shows_in_the_next_answer(served, tmp_path):
    import shutil

    from consent_helpers import store_at

    root = tmp_path / "ws"
    shutil.copytree(served["root"], root)
    with _client(root, tmp_path / "uploads") as client:
        assert client.get(f"/api/consent/{served['ids']['hanks']}").json()["status"] == "active"
        store_at(root).revoke("hanks", "withdrawn")
        assert client.get(f"/api/consent/{served['ids']['hanks']}").json()["status"] == "revoked"
        answer = _post(client, "photo.png", served["marked"].path.read_bytes()).json()
        assert {c["status"] for c in answer["report"]["consent"]} == {"active", "revoked"}
        consent = {f["label"]: f["text"] for s in answer["sections"] if s["title"] == "Consent" for f in s["facts"]}
        assert consent[served["ids"]["hanks"]].startswith("revoked")


def test_a_server_without_the_workspaces_secret_reads_no_mark(served, tmp_path):
    """Marks are keyed by the workspace's watermark secret: another ledger's server, or one with no
    ledger, cannot read them (nor forge them), and says no mark found rather than guess."""
    open_ledger(Workspace(tmp_path / "other"))
    data = served["marked"].path.read_bytes()
    with _client(tmp_path / "other", tmp_path / "uploads") as client:
        answer = _post(client, "photo.png", data).json()
    assert answer["outcome"] == "not-found" and not answer["report"]["marked"]
    assert answer["report"]["credentials"]["state"] != "trusted"
    with _client(tmp_path / "nothing-here", tmp_path / "uploads") as client:
        assert "This server has no ledger" in client.get("/").text
        answer = _post(client, "photo.png", data).json()
    assert answer["outcome"] == "not-found" and answer["report"]["ledger"] == "unavailable"
    assert not (tmp_path / "nothing-here" / "ledger.sqlite").exists()


def test_a_tampered_entry_is_untraced(served, tmp_path):
    import shutil
    import sqlite3

    root = tmp_path / "ws"
    shutil.copytree(served["root"], root)
    conn = sqlite3.connect(root / "ledger.sqlite")
    seq = served["marked"].entry.seq
    body = conn.execute("SELECT body FROM ledger WHERE seq = ?", (seq,)).fetchone()[0]
    conn.execute("UPDATE ledger SET body = ? WHERE seq = ?", (body.replace('"convert"', '"other"'), seq))
    conn.commit()
    conn.close()
    with _client(root, tmp_path / "uploads") as client:
        answer = _post(client, "photo.png", served["marked"].path.read_bytes()).json()
    assert answer["outcome"] == "untraced" and answer["report"]["ledger"] == "tampered"
    assert "fails its signature or hash chain" in answer["summary"]


def test_a_file_whose_entry_was_removed_from_a_rewritten_log_says_so(tmp_path):
    """Someone holding the workspace drops an output's entry and re-signs the rest with its own key:
    the page names the rewrite from the head the file carries."""
    from test_ledger import SqliteStorage
    from test_tlog import rewrite_without

    workspace = Workspace(tmp_path / "ws")
    sink = OutputSink.for_workspace(workspace)
    image = read_image(insightface_t1())
    gone = sink.write_image(tmp_path / "gone.png", image, OutputContext("convert"))
    sink.write_image(tmp_path / "kept.png", cv2.flip(image, 1), OutputContext("convert"))
    rewrite_without(SqliteStorage(workspace), sink.ledger, gone.entry.seq, sink.ledger.key)
    with _client(workspace.root, tmp_path / "uploads") as client:
        answer = _post(client, "gone.png", gone.path.read_bytes()).json()
    assert answer["outcome"] == "untraced" and answer["report"]["transparency"]["state"] == "invalid"
    assert "transparency-log proof fails: the ledger no longer has the head this file carries" in answer["summary"]
    facts = {f["label"]: f for s in answer["sections"] for f in s["facts"]}
    assert facts["Transparency log"]["tone"] == "bad"
