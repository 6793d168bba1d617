"""Wiring for `faceswap eval`: convert (through the sink) when no output is given, then measure; or, with
--dub, measure a dub's output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.consent.registry import ConsentStore
from faceswap.errors import FaceswapError
from faceswap.eval.dub import DubEval, run_dub_eval
from faceswap.eval.independent import IndependentReferences
from faceswap.eval.metrics import EvalReport, InputFaces, evaluate, jitter_comparison
from faceswap.faces.identity import IdentityMatcher
from faceswap.report import Report


def run_eval(
    store: ConsentStore,
    model_dir: Path,
    input_video: Path,
    output: Path | None,
    truth: Path | None,
    mask: str,
    every: int,
    compare_frames: int,
    reference_photos: tuple[list[Path], list[Path]] | None = None,
) -> tuple[EvalReport, Path]:
    """`reference_photos`: A's and B's, for the second identity measure (dlib's own descriptor)."""
    from faceswap.convert.model_io import load_model
    from faceswap.convert.pipeline import Swapper, convert
    from faceswap.convert.settings import ConvertOptions
    from faceswap.faces.analyzer import FaceAnalyzer

    model = load_model(store, model_dir)
    grant = model.grant
    snapshot = store.load()
    record_a = snapshot.by_id(grant.record_for(grant.subject_a).record_id)
    record_b = snapshot.by_id(grant.record_for(grant.subject_b).record_id)
    options = ConvertOptions(mask=mask)
    if output is None:
        output = model_dir / "eval" / f"{input_video.stem}-{mask}.mp4"
        if output.exists():
            output.unlink()
        convert(store, model_dir, input_video, output, options)
    analyzer = FaceAnalyzer(record_b.backend)
    refs_a, refs_b = record_a.reference_embeddings, record_b.reference_embeddings
    inputs = InputFaces(analyzer, IdentityMatcher(refs_b, analyzer.name), input_video)
    independent = IndependentReferences.from_photos(*reference_photos) if reference_photos else None
    report = evaluate(
        analyzer,
        input_video,
        output,
        refs_a,
        refs_b,
        truth,
        every,
        inputs=inputs,
        independent=independent,
        marks=model.marks,
    )
    if compare_frames:
        from faceswap.media import probe_video

        fps = float(probe_video(input_video).fps)
        swappers = {
            "on": Swapper(model, refs_b, record_b.backend, options, fps),
            "off": Swapper(model, refs_b, record_b.backend, ConvertOptions(mask=mask, smoothing=0.0), fps),
        }
        jitters = jitter_comparison(swappers, input_video, analyzer, refs_a, refs_b, compare_frames, truth, inputs)
        report.jitter_smoothing_on, report.jitter_without_smoothing = jitters["on"].output, jitters["off"].output
        report.alignment_jitter_smoothing_on = jitters["on"].alignment
        report.alignment_jitter_without_smoothing = jitters["off"].alignment
        report.decoder_flicker = jitters["on"].decoder
    return report, output


@dataclass(frozen=True)
class EvalRequest:
    """`faceswap eval`'s question: a conversion's metrics, or with `dub` a dub's."""

    model: Path
    input: Path | None = None  # subject B's video (a conversion)
    output: Path | None = None  # an existing output (a conversion's: default, convert now)
    truth: Path | None = None
    mask: str = "full"
    every: int = 2
    compare_smoothing: int = 40
    dub: bool = False
    plate: Path | None = None
    performance: Path | None = None
    plate_truth: Path | None = None
    performance_truth: Path | None = None
    offset: float | None = None
    region: str | None = None


@dataclass
class Measured(Report):
    """An output, what was measured of it, and its metrics."""

    output: Path
    counted: str
    metrics: EvalReport | DubEval

    def to_json(self) -> dict[str, Any]:
        return {"output": str(self.output), **self.metrics.to_json()}

    def lines(self) -> list[str]:
        return [f"output {self.output}: {self.counted}", *(f"  {line}" for line in self.metrics.lines())]


def measure(store: ConsentStore, request: EvalRequest) -> Measured:
    r = request
    if r.dub:
        if r.plate is None or r.output is None:
            raise FaceswapError("eval --dub needs --plate and --output (and --performance or --performance-truth)")
        truth = r.performance_truth or r.truth
        dubbed = run_dub_eval(
            store, r.model, r.plate, r.output, r.performance, r.plate_truth, truth, r.offset, r.region
        )
        return Measured(r.output, f"{dubbed.frames} frames, {dubbed.frames_measured} measured", dubbed)
    if r.input is None:
        raise FaceswapError("eval needs --input (or --dub with --plate)")
    report, output = run_eval(store, r.model, r.input, r.output, r.truth, r.mask, r.every, r.compare_smoothing)
    return Measured(output, f"{report.frames_compared} frames compared", report)
