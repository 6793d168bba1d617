"""Wiring for `faceswap eval`: convert (through the sink) when no output is given, then measure."""

from __future__ import annotations

from pathlib import Path

from faceswap.consent.registry import ConsentStore
from faceswap.eval.independent import IndependentReferences
from faceswap.eval.metrics import EvalReport, InputFaces, evaluate, jitter_comparison
from faceswap.faces.identity import IdentityMatcher


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
        analyzer, input_video, output, refs_a, refs_b, truth, every,
        inputs=inputs, independent=independent, marks=model.marks,
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
