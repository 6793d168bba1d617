"""The verification page under load: many people uploading a marked 10 s 640x480 clip at once.

    .venv/bin/python scripts/bench_serve.py [--uploads 20] [--workers 2] [--seconds 10] [--out bench-results]

Builds a workspace of its own (one consent record, the ledger, the Content Credentials identity) and
writes one marked clip through the output sink: 640x480 H.264 at 25 frames/s, a pan over a photo with
camera-like noise. Starts `faceswap serve` as its own process on a free port, sends one upload alone
(the baseline, three times), then `--uploads` at once (one client thread each, POST /api/verify),
while another process polls GET /healthz. Reports per upload the time from sending to the answer,
the time until all answered, the server's CPU seconds (from /proc) per upload, and every answer that
was not 200 and traced. Last, in this process: how late an asyncio loop wakes while 0, 1 or 2
threads verify the clip (the server's arrangement: a GIL the checks held would show). Prints tables,
writes OUT/serve.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from faceswap.consent.registry import ConsentStore, Registration
from faceswap.faces.samples import insightface_t1, skimage_astronaut
from faceswap.ledger import open_ledger
from faceswap.media import read_image
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame
from faceswap.workspace import Workspace

SIZE = (640, 480)
FPS = 25


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    source = read_image(insightface_t1())
    w, h = SIZE
    scale = max(w / source.shape[1], h / source.shape[0]) * 1.15
    big = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(count):
        x = int((big.shape[1] - w) * i / max(count - 1, 1))
        noisy = big[:h, x : x + w].astype(np.float32) + rng.normal(0.0, 4.0, (h, w, 3))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def marked_clip(folder: Path, seconds: float) -> tuple[Path, Path, str]:
    """A workspace with one consent record and one marked clip made under it."""
    root = folder / "workspace"
    evidence = folder / "consent-form.txt"
    evidence.write_text("bench consent form\n")
    store = ConsentStore(Workspace(root))
    expires = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 300 * 86400))
    record = store.register(
        Registration("bench", "Bench subject", [skimage_astronaut()], ["evaluation"], expires, evidence, backend="dlib")
    )
    ledger = open_ledger(Workspace(root))
    sink = OutputSink.for_workspace(Workspace(root), ledger)
    context = OutputContext("bench", model_fingerprint="ef" * 32, consent_record_ids=(record.record_id,))
    pictures = frames(int(seconds * FPS))
    stream = (SinkFrame(f, i, Fraction(1, FPS)) for i, f in enumerate(pictures))
    written = sink.write_video(folder / "clip.mp4", stream, Fraction(FPS), context)
    return root, written.path, written.token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(root: Path, workers: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "faceswap.cli", "serve", "--workspace", str(root), "--port", str(port)]
    env = {**os.environ, "TMPDIR": str(tmp)}
    server = subprocess.Popen([*command, "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("faceswap serve did not start")


def upload(base: str, clip: Path, token: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    with clip.open("rb") as handle:
        response = httpx.post(f"{base}/api/verify?frame=0", files={"file": handle}, timeout=1800)
    seconds = time.perf_counter() - start
    body = response.json()
    traced = response.status_code == 200 and body["report"]["detection"]["token"] == token
    return seconds, response.status_code, "traced" if traced else str(body.get("error") or body.get("outcome"))


def probe_health(base: str, stop: Any, slowest_ms: Any) -> None:
    """GET /healthz every 0.25 s until `stop`; the slowest answer says whether the event loop stalled.
    Runs in its own process, so the uploading threads' own GIL does not slow the probe."""
    while not stop.is_set():
        start = time.perf_counter()
        httpx.get(f"{base}/healthz", timeout=60)
        slowest_ms.value = max(slowest_ms.value, (time.perf_counter() - start) * 1000)
        time.sleep(0.25)


class HealthProbe:
    def __init__(self, base: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop, self.slowest = context.Event(), context.Value("d", 0.0)
        self.process = context.Process(target=probe_health, args=(base, self.stop, self.slowest), daemon=True)

    def __enter__(self) -> HealthProbe:
        self.process.start()
        time.sleep(1.0)  # the probe's interpreter is up before the uploads start
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.process.join()

    @property
    def slowest_ms(self) -> float:
        return float(self.slowest.value)


def at_once(base: str, clip: Path, token: str, count: int) -> tuple[list[tuple[float, int, str]], float, float]:
    results: list[tuple[float, int, str]] = []
    lock = threading.Lock()

    def one() -> None:
        result = upload(base, clip, token)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(count)]
    with HealthProbe(base) as probe:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = time.perf_counter() - start
    return results, total, probe.slowest_ms


def loop_lateness(root: Path, clip: Path, threads: int, seconds: float = 8.0) -> dict:
    """How late an asyncio loop wakes from 10 ms sleeps while `threads` threads verify the clip (the
    server's arrangement, measured in-process): a GIL held by the checks would show here."""
    import asyncio

    from faceswap.ledger import open_ledger
    from faceswap.provenance.verify.verifier import LedgerView, Verifier

    verifier = Verifier(LedgerView.from_ledger(open_ledger(Workspace(root), writable=False)))
    busy = threading.Event()

    def work() -> None:
        while busy.is_set():
            verifier.verify(clip)

    async def probe() -> list[float]:
        late = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            late.append((time.perf_counter() - start - 0.01) * 1000)
        return sorted(late)

    busy.set()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    late = asyncio.run(probe())
    busy.clear()
    for worker in workers:
        worker.join()
    pick = lambda q: round(late[min(len(late) - 1, int(q * len(late)))], 1)  # noqa: E731
    return {"check_threads": threads, "median_ms": pick(0.5), "p99_ms": pick(0.99), "worst_ms": round(late[-1], 1)}


def row(label: str, results: list[tuple[float, int, str]], total: float, cpu: float, health_ms: float) -> dict:
    times = [r[0] for r in results]
    return {
        "case": label,
        "uploads": len(results),
        "per_upload_s_median": round(statistics.median(times), 2),
        "per_upload_s_max": round(max(times), 2),
        "all_answered_s": round(total, 2),
        "server_cpu_s_per_upload": round(cpu / len(results), 2),
        "server_cores_busy": round(cpu / total, 2),
        "healthz_slowest_ms": round(health_ms, 1),
        "errors": [f"{r[1]} {r[2]}" for r in results if r[1] != 200 or r[2] != "traced"],
    }


def run(args: argparse.Namespace, folder: Path) -> dict:
    root, clip, token = marked_clip(folder, args.seconds)
    tmp = folder / "server-tmp"
    tmp.mkdir()
    server, base = start_server(root, args.workers, tmp)
    try:
        rows = []
        cpu = cpu_seconds(server.pid)
        with HealthProbe(base) as probe:
            alone = [upload(base, clip, token) for _ in range(3)]
        spent = cpu_seconds(server.pid) - cpu
        rows.append(row("one at a time", alone, sum(r[0] for r in alone), spent, probe.slowest_ms))
        cpu = cpu_seconds(server.pid)
        results, total, health_ms = at_once(base, clip, token, args.uploads)
        rows.append(row(f"{args.uploads} at once", results, total, cpu_seconds(server.pid) - cpu, health_ms))
        left = [p.name for p in tmp.rglob("*") if p.name != ".ses"]  # .ses: onnxruntime's session id
    finally:
        server.terminate()
        server.wait(timeout=60)
    lateness = [loop_lateness(root, clip, n) for n in (0, 1, 2)]
    return {
        "clip": {"size": f"{SIZE[0]}x{SIZE[1]}", "seconds": args.seconds, "bytes": clip.stat().st_size},
        "loop_lateness": lateness,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "left_on_disk": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        report = run(args, Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(report, indent=2))
    clip = report["clip"]
    print(f"clip {clip['size']}, {clip['seconds']:g} s, {clip['bytes'] / 2**20:.2f} MiB; {args.workers} workers")
    print("| case | per upload s (median / max) | all answered s | server CPU s per upload | cores busy |", end="")
    print(" /healthz slowest ms | errors |\n|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(
            f"| {r['case']} | {r['per_upload_s_median']} / {r['per_upload_s_max']} | {r['all_answered_s']} | "
            f"{r['server_cpu_s_per_upload']} | {r['server_cores_busy']} | {r['healthz_slowest_ms']} | "
            f"{len(r['errors'])} |"
        )
    print(f"files left on disk by the server: {len(report['left_on_disk'])}")
    print("\n| checks running beside the loop | loop wakes late: median ms | p99 ms | worst ms |\n|---|---|---|---|")
    for r in report["loop_lateness"]:
        print(f"| {r['check_threads']} | {r['median_ms']} | {r['p99_ms']} | {r['worst_ms']} |")


if __name__ == "__main__":
    main()
