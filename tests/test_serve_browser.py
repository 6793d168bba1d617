"""The verification page as people use it: `faceswap serve` runs as a real process on a free port and
Debian's Chromium, driven by Playwright, uploads a demo output (the smoke model converting demo-b's
clip, as `faceswap demo` does), a cropped and re-encoded copy of it, and an unmarked photo.

Without Chromium these tests skip, saying why; under CI ($CI set) that is a failure, since
scripts/setup.sh installs it there. FACESWAP_REFRESH_SCREENSHOT=1 saves docs/serve.png."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from media_helpers import reencode

from faceswap.cli import main
from faceswap.faces.samples import skimage_astronaut

ROOT = Path(__file__).parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORT_SESSION_FILE = ".ses"  # onnxruntime notes its session id in $TMPDIR: no upload's data
pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).is_file() else None


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory, trained_template, demo_subjects):
    """A workspace like the demo's after `convert`: its output, and a copy cropped 5% a side and
    re-encoded (H.264 CRF 26), as sharing does."""
    files, _ = demo_subjects
    folder = tmp_path_factory.mktemp("serve-demo")
    root = folder / "workspace"
    shutil.copytree(trained_template, root)
    output = folder / "demo-output.mp4"
    args = ["convert", "--workspace", str(root), "--model", str(root / "models" / "tiny")]
    assert main([*args, "--input", str(files["demo-b"].clip), "--output", str(output), "--json"]) == 0
    copy = reencode(output, folder / "shared-copy.mp4", crf=26, crop=0.05)
    from faceswap.ledger import open_ledger
    from faceswap.workspace import Workspace

    entries = open_ledger(Workspace(root), writable=False).entries()
    written = next(e for e in reversed(entries) if e.kind == "output.written")
    records = {e.data["subject_id"]: e.data["record_id"] for e in entries if e.kind == "consent.registered"}
    return {"root": root, "output": output, "copy": copy, "entry": written, "records": records}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(demo_output, tmp_path_factory):
    """`faceswap serve` in its own process, its temporary files confined to a folder we watch."""
    tmp = tmp_path_factory.mktemp("serve-tmp")
    port = _free_port()
    command = [sys.executable, "-m", "faceswap.cli", "serve", "--workspace", str(demo_output["root"])]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2", "--max-upload-mb", "16"],
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"faceswap serve did not start: {process.communicate()[0]}")
        time.sleep(0.3)
    yield {"base": base, "tmp": tmp, "process": process}
    process.terminate()
    process.wait(timeout=30)
    assert _left_in(tmp) == []


def _left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ORT_SESSION_FILE)


@pytest.fixture(scope="module")
def browser():
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        why = "no Chromium (or no playwright package): scripts/setup.sh installs Debian's chromium as root with apt"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    """A fresh page; afterwards every request it made must have gone to the server (or be inline)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    yield opened
    context.close()
    elsewhere = [u for u in requested if not u.startswith((server["base"] + "/", "data:"))]
    assert elsewhere == [], f"the page loaded from elsewhere: {elsewhere}"


def _check(page, server, path: Path) -> dict[str, str]:
    """Upload `path` through the page; the answer's facts by section, and the headline."""
    page.goto(server["base"] + "/")
    assert "Up to 16 MB" in page.inner_text("#limits")
    page.set_input_files("#file", str(path))  # the page's script sends it at once
    page.wait_for_selector("#answer, #error", timeout=180_000)
    assert page.query_selector("#error") is None, page.inner_text("#error")
    facts = {s.get_attribute("data-section"): s.inner_text() for s in page.query_selector_all("section.facts")}
    return {"headline": page.inner_text("#headline"), "summary": page.inner_text("#summary"), **facts}


def _frame_shown(page) -> bool:
    return bool(page.eval_on_selector("#frame img", "img => img.complete && img.naturalWidth > 0"))


def test_the_demo_output_is_synthetic_traced_with_consent_model_and_credentials(page, server, demo_output):
    shown = _check(page, server, demo_output["output"])
    entry = demo_output["entry"].data
    assert shown["headline"] == "Synthetic: made with faceswap"
    assert "yes (scheme 2)" in shown["The watermark"] and entry["token"] in shown["The watermark"]
    assert f"seq {demo_output['entry'].seq}" in shown["Ledger entry"] and "faceswap convert" in shown["Ledger entry"]
    for record in demo_output["records"].values():
        assert f"{record}\nactive: the consent holds today" in shown["Consent"]
    assert entry["model_fingerprint"] in shown["Model"]
    assert "valid, signed under this workspace's root" in shown["Content Credentials"]
    assert "nothing: byte for byte the file that was written" in shown["What was done to the file"]
    assert _frame_shown(page) and "the mark was read on all" in page.inner_text("#frame figcaption")
    if os.environ.get("FACESWAP_REFRESH_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "serve.png"), full_page=True)


def test_a_cropped_reencoded_copy_is_traced_and_says_what_was_done(page, server, demo_output):
    shown = _check(page, server, demo_output["copy"])
    assert shown["headline"] == "Synthetic: made with faceswap"
    assert demo_output["entry"].data["token"] in shown["The watermark"]
    assert "none: sharing usually strips them" in shown["Content Credentials"]
    done = shown["What was done to the file"]
    assert "re-encoded" in done and "cropped: about 90% of the width and 90% of the height are left" in done
    assert "bars" not in done  # the demo's smooth backdrop at the cut edge is no bar that was added
    assert all(f"{r}\nactive" in shown["Consent"] for r in demo_output["records"].values())
    assert _frame_shown(page)


def test_an_unmarked_photo_is_not_found(page, server):
    shown = _check(page, server, skimage_astronaut())
    assert shown["headline"] == "No faceswap mark found"
    assert "does not show the file is authentic" in shown["summary"]
    assert "Found\nno" in shown["The watermark"] and "none: the file is not marked" in shown["Ledger entry"]
    assert page.get_attribute("#answer", "data-outcome") == "not-found" and _frame_shown(page)


def test_a_subject_opens_their_consent_page_from_the_answer(page, server, demo_output, capsys):
    _check(page, server, demo_output["output"])
    record, other = demo_output["records"]["demo-b"], demo_output["records"]["demo-a"]
    page.click(f"a[href='/consent/{record}']")
    assert page.inner_text("#consent-status").startswith("active")
    assert page.query_selector("#outputs") is None  # the id alone does not list outputs
    assert main(["consent", "link", record, "--workspace", str(demo_output["root"]), "--json"]) == 0
    code = json.loads(capsys.readouterr().out)["code"]
    page.fill("#code", code)
    page.click("form.consent-form button")
    page.wait_for_selector("#outputs")
    assert demo_output["entry"].data["token"] in page.inner_text("#outputs")
    assert "1 model(s)" in page.inner_text("#counts") and other not in page.content()


def test_a_file_over_the_limit_is_refused_with_or_without_the_pages_script(browser, server, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(17 * 1024 * 1024))
    for script in (True, False):
        context = browser.new_context(java_script_enabled=script)
        tab = context.new_page()
        tab.goto(server["base"] + "/")
        tab.set_input_files("#file", str(big))
        if script:  # refused before a byte is sent
            tab.wait_for_selector("#status.error")
            assert tab.inner_text("#status") == "This file is larger than this page accepts (16 MB)."
        else:  # the server refuses it from its declared length
            with tab.expect_navigation() as navigation:
                tab.click("#check")
            assert navigation.value.status == 413
            assert tab.inner_text("#error") == "the file is larger than this page accepts (16 MB)"
        context.close()
    assert _left_in(server["tmp"]) == []


def test_several_people_at_once_and_the_server_keeps_answering(server, demo_output):
    """Eight uploads at once all answer; meanwhile the event loop answers at once; nothing is left."""
    files = [demo_output["output"], demo_output["copy"]] * 4
    results: list[int] = []

    def upload(path: Path) -> None:
        with path.open("rb") as handle:
            response = httpx.post(f"{server['base']}/api/verify?frame=0", files={"file": handle}, timeout=600)
        results.append(response.status_code)

    threads = [threading.Thread(target=upload, args=(p,)) for p in files]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    health = httpx.get(f"{server['base']}/healthz", timeout=10).json()
    answered_in = time.monotonic() - started
    for thread in threads:
        thread.join()
    assert results == [200] * len(files)
    assert health["checking"] >= 2 and answered_in < 2.0
    assert _left_in(server["tmp"]) == []
