"""`faceswap convert-batch SHOTS.csv`: many shots, each the same `convert()` (consent check,
conversion, output sink) run as one Ray task, all appending to one ledger.

A CSV row is a shot: `model,input,output` and any convert option by its flag name (its columns,
their parsing and checks come from faceswap/convert/options.py, as convert's flags do). Rows are checked
up front (unknown columns, bad values, two shots writing one output), then each shot becomes a task
that first asks the ledger whether it is already done: an `output.written` entry carrying the shot's
identity (output name, the input's sha256, the model's fingerprint, the options) whose file is
still there, unchanged. That makes a re-run skip finished shots, and makes Ray's retry of a task
whose worker died safe: the sink renames a file into place only inside the transaction that
commits its entry, so a killed attempt leaves neither, and a retry after the commit finds it done.
A shot that fails is reported and the batch goes on.

Where the ledger is SQLite (file locks, one machine), a cluster on other machines is refused; a
PostgreSQL ledger serves every machine. The workspace (keys/, consent/, models/) must be at the
same path on every node.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceswap.convert import options as declared
from faceswap.convert.settings import ConvertOptions
from faceswap.errors import BadInput, ExitCode, FaceswapError, worst
from faceswap.hashing import canonical_json, file_sha256, safe_name, sha256_hex
from faceswap.ledger import Entry
from faceswap.limits import OPERATOR, InputLimits
from faceswap.report import Report

REQUIRED = ("model", "input", "output")
NOT_IDENTITY = ("model_root", "mask_model")  # paths: a shot is its files' contents (the segmenter's fingerprint)
RETRIES = 3  # Ray re-runs a task whose worker died; a failure the shot itself raises is not retried
LOCAL_HOSTS = ("", "auto", "localhost", "127.0.0.1", "::1")
OBJECT_STORE_BYTES = 100 * 2**20  # tasks exchange small records only


@dataclass(frozen=True)
class Shot:
    row: int  # line of the CSV (the header is line 1)
    model: Path
    input: Path
    output: Path
    options: ConvertOptions

    def identity(self) -> dict[str, Any]:
        """What the shot is, recorded in its entry's settings["shot"]: the same row on a re-run
        (same output name, input bytes, model weights, options) has the same key."""
        if not self.input.is_file():
            raise BadInput(f"{self.input}: no such input file")
        input_sha256 = file_sha256(self.input)
        model_fingerprint = _fingerprint_of(self.model)
        columns = {option.name for option in declared.columns().values()} - set(NOT_IDENTITY)
        options = {k: v for k, v in dataclasses.asdict(self.options).items() if k in columns}
        if self.options.mask_model is not None:
            options["mask_model_fingerprint"] = _fingerprint_of(self.options.mask_model)
        key = sha256_hex(
            canonical_json(
                {
                    "output": safe_name(self.output),
                    "input_sha256": input_sha256,
                    "model_fingerprint": model_fingerprint,
                    "options": options,
                }
            )
        )
        return {"key": key, "input_sha256": input_sha256, "model_fingerprint": model_fingerprint}


def _fingerprint_of(folder: Path) -> str:
    from faceswap.model.weights import fingerprint, read_weights

    if not folder.is_dir():
        raise BadInput(f"{folder}: not a model folder")
    return fingerprint(read_weights(folder)[0])


@dataclass
class ShotResult:
    row: int
    input: str
    output: str
    status: str  # done | skipped (already in the ledger) | failed
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    token: str | None = None
    ledger_seq: int | None = None
    error: str | None = None
    exit_code: int = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BatchReport(Report):
    csv: str
    ledger: str
    cluster: dict[str, Any]
    seconds: float
    results: list[ShotResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results if r.status == "done")

    @property
    def exit_code(self) -> ExitCode:
        return worst({ExitCode(r.exit_code) for r in self.results})

    def to_json(self) -> dict[str, Any]:
        return {
            "csv": self.csv,
            "ledger": self.ledger,
            "cluster": self.cluster,
            "shots": len(self.results),
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "frames": self.frames,
            "seconds": self.seconds,
            "frames_per_s": round(self.frames / max(self.seconds, 1e-9), 2),
            "results": [r.to_json() for r in self.results],
        }

    def lines(self) -> list[str]:
        out = []
        for result in self.results:
            if result.status == "failed":
                out.append(f"row {result.row}: FAILED {result.output}: {result.error}")
            else:
                frames = f"{result.frames} frames, ledger seq {result.ledger_seq}"
                out.append(f"row {result.row}: {result.status} {result.output} ({frames})")
        summary = self.to_json()
        return out + [
            f"{summary['shots']} shots: {summary['done']} done, {summary['skipped']} skipped (already in the ledger), "
            f"{summary['failed']} failed; {summary['frames']} frames in {summary['seconds']:.1f} s "
            f"({summary['frames_per_s']:.1f} frames/s) on {summary['cluster']['cpus']} CPUs, "
            f"{summary['cluster']['machines']} machine(s); ledger {summary['ledger']}"
        ]


# reading the CSV


def read_shots(path: Path) -> list[Shot]:
    """Every row checked before any shot runs; an error names the row (line) and the column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path}: cannot read the shot list ({error})") from None
    reader = csv.reader(text.splitlines())
    header = [name.strip() for name in next(reader, [])]
    flags = declared.columns()
    _check_header(path, header, flags)
    folder = path.parent.absolute()
    shots: list[Shot] = []
    outputs: dict[Path, int] = {}
    for cells in reader:
        row = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise BadInput(f"{path} row {row}: {len(cells)} cells for {len(header)} columns")
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        for name in REQUIRED:
            if not values[name]:
                raise BadInput(f"{path} row {row}: '{name}' is empty")
        options = _options(path, row, values, folder)
        model, source, output = (_resolve(folder, values[name]) for name in REQUIRED)
        if output in outputs:
            raise BadInput(f"{path} row {row}: output {output} is also row {outputs[output]}'s")
        outputs[output] = row
        shots.append(Shot(row, model, source, output, options))
    if not shots:
        raise BadInput(f"{path}: no shots (a header row, then one row per shot)")
    return shots


def _check_header(path: Path, header: list[str], flags: dict[str, declared.Option]) -> None:
    if not any(header):
        raise BadInput(f"{path} row 1: no header; the first row names the columns: {','.join(REQUIRED)}[,option...]")
    if len(set(header)) != len(header):
        raise BadInput(f"{path} row 1 (header): a column is named twice")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise BadInput(f"{path} row 1 (header): missing column(s) {', '.join(missing)}")
    unknown = [name for name in header if name not in REQUIRED and name not in flags]
    if unknown:
        raise BadInput(
            f"{path} row 1 (header): unknown column '{unknown[0]}'; besides {', '.join(REQUIRED)} a column is a "
            f"convert option: {', '.join(sorted(flags))}"
        )


def _options(path: Path, row: int, values: dict[str, str], folder: Path) -> ConvertOptions:
    try:
        options = declared.from_row(ConvertOptions, values, lambda cell: _resolve(folder, cell))
        options.validate()
    except BadInput as error:
        raise BadInput(f"{path} row {row}: {error}") from None
    return options


def _resolve(folder: Path, cell: str) -> Path:
    """A path as written, relative ones against the CSV's folder."""
    path = Path(cell).expanduser()
    return path if path.is_absolute() else folder / path


# one shot: what a Ray task runs


def run_shot(workspace, shot: Shot) -> ShotResult:
    """The shot, unless the ledger says it is done; failures become a result, never an exception
    (so Ray retries only a worker that died)."""
    from faceswap.consent.registry import ConsentStore
    from faceswap.convert.pipeline import convert

    result = ShotResult(shot.row, str(shot.input), str(shot.output), "failed")
    started = time.perf_counter()
    try:
        store = ConsentStore(workspace)
        identity = shot.identity()
        done = find_done(store.ledger.entries("output.written"), shot, identity["key"])
        if done is not None:
            result.status, result.ledger_seq, result.token = "skipped", done.seq, done.data.get("token")
            result.frames = int(done.data.get("frames", 0))
            return result
        report = convert(store, shot.model, shot.input, shot.output, shot.options, shot=identity)
    except FaceswapError as error:
        result.error, result.exit_code = str(error), int(error.exit_code)
    except Exception as error:  # noqa: BLE001 - reported with the shot; the batch goes on
        result.error, result.exit_code = f"{type(error).__name__}: {error}", int(ExitCode.REFUSED)
    else:
        result.status, result.frames, result.fps = "done", report.frames, report.fps
        result.token, result.ledger_seq = report.token, report.ledger_seq
    finally:
        result.seconds = round(time.perf_counter() - started, 2)
    return result


def find_done(outputs: list[Entry], shot: Shot, key: str) -> Entry | None:
    """The newest output entry of this shot whose file is still in place, unchanged."""
    for entry in reversed(outputs):
        settings = entry.data.get("settings") or {}
        if (settings.get("shot") or {}).get("key") == key and _still_there(shot.output, entry):
            return entry
    return None


def _still_there(path: Path, entry: Entry) -> bool:
    if entry.data.get("media") == "sequence":
        manifest = entry.data.get("manifest") or []
        return bool(manifest) and all(
            (path / name).is_file() and sha256_hex((path / name).read_bytes()) == digest for name, digest in manifest
        )
    return path.is_file() and file_sha256(path) == entry.data.get("sha256")


# the batch


Progress = Callable[[int, int, int, float], None]  # shots finished, shots, frames converted, seconds


def run_batch(
    workspace,
    csv_path: Path,
    ray_address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    limits: InputLimits = OPERATOR,
) -> BatchReport:
    """Every shot of the CSV as a Ray task on a local cluster (no address) or the one at
    `ray_address` ("auto": the one running on this machine); `limits` hold for every shot's input."""
    from faceswap.ledger import open_ledger

    if workers is not None and workers < 1:
        raise BadInput("--workers must be at least 1")
    shots = [
        dataclasses.replace(s, options=dataclasses.replace(s.options, limits=limits)) for s in read_shots(csv_path)
    ]
    ledger = open_ledger(workspace)
    ledger.entries()  # refuse to start over a ledger that fails verification
    started = time.perf_counter()
    results: list[ShotResult] = []
    with ray_cluster(ray_address, workers, ledger.backend.shared, ledger.location) as cluster:
        import ray

        task = ray.remote(run_shot).options(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)
        limit = workers or len(shots)
        waiting = list(shots)
        running: dict[Any, Shot] = {}
        while waiting or running:
            while waiting and len(running) < limit:
                shot = waiting.pop(0)
                running[task.remote(workspace, shot)] = shot
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                results.append(_collect(ray, ref, running.pop(ref)))
            if progress:
                frames = sum(r.frames for r in results if r.status == "done")
                progress(len(results), len(shots), frames, time.perf_counter() - started)
    report = BatchReport(str(csv_path), ledger.location, cluster, round(time.perf_counter() - started, 2))
    report.results = sorted(results, key=lambda r: r.row)
    return report


def _collect(ray, ref, shot: Shot) -> ShotResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:  # the worker died on every attempt, or the cluster went away
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return ShotResult(
            shot.row,
            str(shot.input),
            str(shot.output),
            "failed",
            error=f"{type(error).__name__} after {RETRIES + 1} attempts: {first}",
            exit_code=int(ExitCode.REFUSED),
        )


@contextlib.contextmanager
def ray_cluster(address: str | None, workers: int | None, shared_ledger: bool, ledger: str) -> Iterator[dict]:
    """A local cluster of `workers` CPUs (no address), or the cluster at `address`; shut down after.
    A ledger that is not shared (SQLite) is refused for a cluster on other machines."""
    import logging

    import ray

    if address is not None and not shared_ledger and not _local(address):
        raise BadInput(_not_shared(ledger, f"the Ray cluster at {address}"))
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(
            num_cpus=workers or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            **quiet,
        )
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise BadInput(f"cannot join the Ray cluster at {address} ({error})") from None
    try:
        hosts = sorted({node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")})
        if len(hosts) > 1 and not shared_ledger:
            raise BadInput(_not_shared(ledger, f"a Ray cluster on {len(hosts)} machines"))
        yield {
            "address": address or "local",
            "machines": len(hosts),
            "cpus": int(ray.cluster_resources().get("CPU", 0)),
            "workers": workers,
        }
    finally:
        ray.shutdown()


def _not_shared(ledger: str, cluster: str) -> str:
    return (
        f"the ledger {ledger} is SQLite, which only this machine can append to safely; {cluster} needs a shared "
        "PostgreSQL ledger (--ledger-url postgresql://... or FACESWAP_LEDGER_URL; `faceswap ledger migrate` moves "
        "this one there)"
    )


def _local(address: str) -> bool:
    """Is the cluster's head on this machine? ("auto" finds one running here; its other nodes are
    checked once joined.)"""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in LOCAL_HOSTS or host.startswith("127."):
        return True
    try:
        return host in (socket.gethostname(), socket.getfqdn()) or socket.gethostbyname(host).startswith("127.")
    except OSError:
        return False
