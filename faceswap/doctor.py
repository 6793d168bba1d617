"""`faceswap doctor`: check the install and prove the mark round trip with two sample outputs."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import FaceswapError
from faceswap.workspace import Workspace

SAMPLE_SIZE = (1280, 720)
SAMPLE_FPS = 25
SAMPLE_SECONDS = 2


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def test_card(width: int = SAMPLE_SIZE[0], height: int = SAMPLE_SIZE[1], phase: float = 0.0) -> np.ndarray:
    """Colour bars, a luminance ramp, a zone plate and a moving disc: generated, no real pixels."""
    import cv2

    rng = np.random.default_rng(7)
    card = rng.integers(0, 24, size=(height, width, 3), dtype=np.uint8)  # film-grain texture
    bars = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192), (0, 0, 192), (192, 0, 0)]
    bar_w = width // len(bars)
    for i, colour in enumerate(bars):
        card[: height // 2, i * bar_w : (i + 1) * bar_w] += np.array(colour, np.uint8)
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    card[height // 2 : height * 3 // 4] += (ramp[None, :, None] * 0.9).astype(np.uint8)
    yy, xx = np.mgrid[0 : height // 4, 0:width].astype(np.float32)
    plate = 127.5 + 127.5 * np.cos((xx**2 + yy**2) / (width * 2.0))
    card[height * 3 // 4 :] += (plate[..., None] * 0.9).astype(np.uint8)
    cx = int(width * (0.2 + 0.6 * (0.5 + 0.5 * np.sin(phase))))
    cv2.circle(card, (cx, height // 4), height // 8, (40, 90, 230), -1, cv2.LINE_AA)
    cv2.putText(card, "faceswap doctor", (24, height // 2 - 24), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (20, 20, 20), 3)
    return card


def _tone(path: Path, seconds: float, rate: int = 48000) -> Path:
    """An AAC sine tone to stand in for a source's audio track."""
    from faceswap.synthetic import write_input_audio

    t = np.arange(int(rate * seconds)) / rate
    return write_input_audio(path, 0.2 * np.sin(2 * np.pi * 440 * t), rate)


def check_dlib(workspace: Workspace, model_root: Path | None) -> Check:
    try:
        from faceswap.faces.dlib_backend import DlibBackend

        DlibBackend()
    except Exception as error:  # noqa: BLE001 - doctor reports every failure as a line
        return Check("dlib backend", False, str(error))
    return Check("dlib backend", True, "HOG + 68 landmarks + ResNet weights found")


def check_insightface(workspace: Workspace, model_root: Path | None) -> Check:
    from faceswap.faces.insightface_backend import pack_available, pack_dir

    folder = pack_dir(model_root)
    if pack_available(model_root):
        return Check("insightface pack", True, f"{folder}: found")
    return Check(
        "insightface pack",
        True,
        f"{folder}: missing, the dlib backend is used (`faceswap models fetch insightface` installs it)",
    )


def check_encoders(workspace: Workspace, model_root: Path | None) -> Check:
    import av

    encoders = {name: name in av.codecs_available for name in ("libx264", "aac")}
    detail = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in encoders.items())
    return Check("ffmpeg encoders", all(encoders.values()), detail)


def check_onnxruntime(workspace: Workspace, model_root: Path | None) -> Check:
    import onnxruntime

    return Check("onnxruntime", True, ", ".join(onnxruntime.get_available_providers()))


def check_gpu(workspace: Workspace, model_root: Path | None) -> Check:
    try:
        import torch
    except ImportError as error:
        return Check("gpu", False, f"torch not importable: {error}")
    if torch.cuda.is_available():
        return Check("gpu", True, torch.cuda.get_device_name(0))
    return Check("gpu", True, f"no CUDA device (torch {torch.__version__}): training needs --trainer.accelerator cpu")


def check_ledger(workspace: Workspace, model_root: Path | None) -> Check:
    from faceswap.ledger import open_ledger

    ledger = open_ledger(workspace)
    finding = ledger.verify()
    key = ledger.key.key_id if ledger.key else "none"
    detail = f"{len(ledger.rows())} entries, key {key}" + (f"; {finding}" if finding else ", chain valid")
    return Check("ledger", finding is None, detail)


def check_consent(workspace: Workspace, model_root: Path | None) -> Check:
    from faceswap.consent.registry import ConsentStore

    problems = ConsentStore(workspace).verify()
    return Check("consent store", not problems, "; ".join(map(str, problems)) or "every record verifies")


CHECKS = (check_dlib, check_insightface, check_encoders, check_onnxruntime, check_gpu, check_ledger, check_consent)


def run_checks(workspace: Workspace, model_root: Path | None = None) -> list[Check]:
    checks = []
    for step in CHECKS:
        try:
            checks.append(step(workspace, model_root))
        except FaceswapError as error:  # a tampered ledger is a failed check, not a crash of the doctor
            checks.append(Check(step.__name__.removeprefix("check_"), False, str(error)))
    return checks


def write_samples(workspace: Workspace, out: Path) -> dict[str, dict[str, Any]]:
    """An image and a short video with audio, through the sink, each verified."""
    from faceswap.ledger import open_ledger
    from faceswap.provenance.output.sink import OutputContext, OutputSink
    from faceswap.provenance.verify.verifier import LedgerView, Verifier

    ledger = open_ledger(workspace)
    sink = OutputSink.for_workspace(workspace, ledger)
    context = OutputContext(producer="doctor", settings={"sample": "test card"}, source_type="algorithmic")
    out.mkdir(parents=True, exist_ok=True)
    image = sink.write_image(out / "doctor-sample.png", test_card(), context)
    frames = (test_card(phase=i / 8.0) for i in range(SAMPLE_FPS * SAMPLE_SECONDS))
    with tempfile.TemporaryDirectory() as tmp:
        audio = _tone(Path(tmp) / "tone.m4a", SAMPLE_SECONDS)
        video = sink.write_video(out / "doctor-sample.mp4", frames, Fraction(SAMPLE_FPS), context, audio_from=audio)
    verifier = Verifier(LedgerView.from_ledger(ledger, workspace.keys_dir))
    results = {}
    for written in (image, video):
        verdict = verifier.verify(written.path)
        results[written.path.name] = {"path": str(written.path), "token": written.token, "verify": verdict.to_json()}
    return results


@dataclass(frozen=True)
class DoctorReport:
    checks: list[Check]
    samples: dict[str, dict[str, Any]]

    @property
    def samples_verified(self) -> bool:
        return bool(self.samples) and all(s["verify"]["exit_code"] == 0 for s in self.samples.values())

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and self.samples_verified

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "samples": self.samples,
            "samples_verified": self.samples_verified,
        }

    def lines(self) -> list[str]:
        out = [f"[{'ok' if c.ok else '!!'}] {c.name:<18} {c.detail}" for c in self.checks]
        for name, sample in self.samples.items():
            code = sample["verify"]["exit_code"]
            state = "verifies as marked" if code == 0 else f"FAILED verify (exit {code})"
            out.append(
                f"[{'ok' if code == 0 else '!!'}] sample {name:<11} {sample['path']}: {state}, token {sample['token']}"
            )
        return out


def run_doctor(workspace: Workspace, out: Path, model_root: Path | None = None) -> DoctorReport:
    """The checks, then (when the ledger is sound) two marked samples that must verify."""
    checks = run_checks(workspace, model_root)
    ledger_ok = all(c.ok for c in checks if c.name == "ledger")
    return DoctorReport(checks, write_samples(workspace, out) if ledger_ok else {})
