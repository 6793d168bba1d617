"""`faceswap train-mask`: LightningCLI over OcclusionModule + OcclusionDataModule, gated by consent.

consent (authorised once, before any Lightning object exists: the grant for both subjects and the
purpose, both facesets and their labels checked against the ledger) -> the data module, handed that,
loads the labelled crops -> Trainer (checkpoints, loggers; the run's ConsentWatch re-checks consent
while it trains, at every step boundary and every checkpoint) -> publish: the weights are staged in
the workspace's staging folder and renamed into the model folder inside the `model.trained` entry's
transaction, which re-checks consent, so a refused or killed run leaves no segmenter without its
entry; a run that consent stops removes its checkpoints.

The segmenter serves the swap models of the same two subjects and purpose: they share one grant.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import CHECK_EVERY_SECONDS, ConsentWatch
from faceswap.errors import BadInput, ConsentDenied
from faceswap.model.weights import OCCLUSION, WEIGHTS_FILE
from faceswap.report import Report
from faceswap.workspace import Workspace


@dataclass
class MaskTrainRequest:
    workspace: Workspace
    config: Path
    subject_a: str
    subject_b: str
    purpose: str
    name: str
    overrides: list[str] = field(default_factory=list)  # LightningCLI flags, e.g. --trainer.max_steps 50
    checkpoint_every: int = 100  # steps between checkpoints (resume points)
    consent_check_seconds: float = CHECK_EVERY_SECONDS
    callbacks: list[Any] = field(default_factory=list)  # more Lightning Callbacks (library use), run after ours


@dataclass
class MaskTrainResult(Report):
    model_dir: Path
    steps: int
    fingerprint: str
    resumed_from: int | None
    metrics: dict[str, Any]
    labelled: dict[str, Any]
    ledger_seq: int
    smoke: bool
    seconds: float
    rank: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    def lines(self) -> list[str]:
        """Rank zero's, as for the swap model."""
        if self.rank != 0:
            return []
        metrics = self.metrics
        out = []
        if metrics:
            out.append(
                f"loss {metrics['loss_first50']:.4f} -> {metrics['loss_last50']:.4f}, training IoU "
                f"{metrics['train_iou_first50']:.3f} -> {metrics['train_iou_last50']:.3f} (first/last 50 steps)"
            )
        crops = sum(v["labelled_crops"] for v in self.labelled.values())
        return out + [
            f"segmenter {self.model_dir}: {self.steps} steps on {crops} labelled crop(s), fingerprint "
            f"{self.fingerprint[:16]}; ledger seq {self.ledger_seq}"
        ]


class _History:
    """Per-step loss and IoU, for the entry and model.json."""

    def __init__(self) -> None:
        import pytorch_lightning as pl

        outer = self

        class Callback(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                metrics = trainer.callback_metrics
                if "loss" in metrics and "iou" in metrics:
                    outer.rows.append((trainer.global_step, float(metrics["loss"]), float(metrics["iou"])))

        self.rows: list[tuple[int, float, float]] = []
        self.callback = Callback()

    def summary(self) -> dict[str, Any]:
        if not self.rows:
            return {}
        _, loss, iou = (np.array(column) for column in zip(*self.rows, strict=True))
        head, tail = slice(0, min(50, len(loss))), slice(max(0, len(loss) - 50), len(loss))
        return {
            "loss_first50": round(float(loss[head].mean()), 5),
            "loss_last50": round(float(loss[tail].mean()), 5),
            "train_iou_first50": round(float(iou[head].mean()), 5),
            "train_iou_last50": round(float(iou[tail].mean()), 5),
        }


def run_mask_training(request: MaskTrainRequest) -> MaskTrainResult:
    """consent (one grant, the facesets and labels it covers) -> Trainer -> fit, watched -> publish."""
    from faceswap.train import _check_request, _resume_point, _resume_step, discard_withdrawn_checkpoints
    from faceswap.train_hooks import consent_callback

    started = time.perf_counter()
    _check_request(request)  # the name, the checkpoint interval, and a GPU for a GPU config
    store = ConsentStore(request.workspace)
    model_dir = request.workspace.models_dir / request.name
    checkpoints = model_dir / "checkpoints"
    try:
        labelled = _authorise(store, request)
    except ConsentDenied:
        discard_withdrawn_checkpoints(checkpoints, store)
        raise
    _refuse_other_model(model_dir)
    last = _resume_point(checkpoints, labelled.grant, store)
    watch = ConsentWatch(ConsentGate(store), labelled.grant, request.consent_check_seconds)
    history = _History()
    cli = _configure(request, labelled, model_dir, checkpoints, [consent_callback(watch), history.callback])
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    watch.interrupt = trainer.world_size == 1  # DDP ranks stop together at step boundaries instead
    trainer.callbacks.extend(request.callbacks)
    smoke = trainer.accelerator.__class__.__name__.lower().startswith("cpu")
    resumed_from = _resume_step(last, labelled.grant) if last is not None else None
    try:
        with watch:
            _fit(trainer, module, datamodule, last)
            watch.poll()  # a refusal seen after the last step stops the publish too
            run = {"model_dir": model_dir, "resumed_from": resumed_from, "metrics": history.summary(), "smoke": smoke}
            if not trainer.is_global_zero:
                return _result(trainer, run, ("", -1), {}, 0.0)
            published = publish_segmenter(request, store, watch, (module, datamodule, trainer), run)
    except ConsentDenied:
        if trainer.is_global_zero:
            shutil.rmtree(checkpoints, ignore_errors=True)  # work under withdrawn consent is not resumed
        raise
    return _result(trainer, run, published, datamodule.labels_summary, time.perf_counter() - started)


def _authorise(store: ConsentStore, request: MaskTrainRequest) -> Any:
    from faceswap.data.authorised import authorise_training
    from faceswap.data.occlusion_data import authorise_labels

    authorised = authorise_training(store, request.subject_a, request.subject_b, request.purpose)
    return authorise_labels(store, authorised)


def _fit(trainer: Any, module: Any, datamodule: Any, last: Path | None) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last is not None else None, weights_only=True)


def _result(
    trainer: Any, run: dict[str, Any], published: tuple[str, int], labelled: dict[str, Any], seconds: float
) -> MaskTrainResult:
    weights_id, seq = published
    return MaskTrainResult(
        steps=int(trainer.global_step),
        fingerprint=weights_id,
        labelled=labelled,
        ledger_seq=seq,
        seconds=round(seconds, 1),
        rank=int(trainer.global_rank),
        **run,
    )


def _refuse_other_model(model_dir: Path) -> None:
    """A folder holding a swap model is not overwritten by a segmenter (model.json says which a
    folder holds; it is only a guard against mistakes, nothing is trusted from it)."""
    info = model_dir / "model.json"
    if not info.is_file():
        return
    try:
        kind = json.loads(info.read_text()).get("model_type", "swap")
    except (OSError, ValueError, AttributeError):
        kind = "unknown"
    if kind != OCCLUSION:
        raise BadInput(f"{model_dir} holds a {kind} model; train the segmenter under another --name")


def _configure(request: MaskTrainRequest, labelled: Any, model_dir: Path, checkpoints: Path, callbacks: list):
    """LightningCLI over the config and the overrides (not run); the data module is built from the
    authorised labels, its options from the config and flags."""
    from faceswap.data.occlusion_data import OcclusionDataModule
    from faceswap.model.occlusion_module import OcclusionModule
    from faceswap.train import CliJob, build_granted_cli

    job = CliJob(request.config, request.overrides, request.checkpoint_every, "train-mask")
    classes = (OcclusionModule, OcclusionDataModule)
    return build_granted_cli(classes, ("labelled", labelled), job, model_dir, checkpoints, callbacks)


def publish_segmenter(
    request: MaskTrainRequest, store: ConsentStore, watch: ConsentWatch, fitted: tuple[Any, Any, Any], run: dict
) -> tuple[str, int]:
    """model.safetensors (staged in the workspace's staging folder, renamed in inside the
    `model.trained` entry's transaction, which re-checks consent through the watch), then model.json
    (a copy for people); (fingerprint, ledger seq)."""
    from faceswap.model.weights import fingerprint, save_weights
    from faceswap.staging import Staging

    module, datamodule, trainer = fitted
    grant = datamodule.grant
    state = module.network.state_dict()
    weights_id = fingerprint(state)
    hparams = {k: v for k, v in dict(module.hparams).items() if isinstance(v, (str, int, float, bool, type(None)))}
    model_dir: Path = run["model_dir"]
    described = {
        "model_type": OCCLUSION,
        "architecture": module.architecture,
        "resolution": module.config.resolution,
        "alignment": module.hparams.alignment,
        "hparams": hparams,
        "data": {k: v for k, v in dict(datamodule.hparams).items() if k in ("batch_size", "seed", "random_warp")},
        "precision": str(trainer.precision),
        "subjects": {"a": request.subject_a, "b": request.subject_b},
        "purpose": request.purpose,
        "labels": datamodule.labels_summary,
        "steps": int(trainer.global_step),
        "resumed_from": run["resumed_from"],
        "metrics": run["metrics"],
    }
    data = {
        "name": request.name,
        "fingerprint": weights_id,
        "weights_file": WEIGHTS_FILE,
        **described,
        "consent_record_ids": grant.record_ids,
        "consent_record_sha256": [r.record_sha256 for r in grant.records],
        "registrar_key_id": grant.registrar_key_id,
    }
    with Staging.open(request.workspace, "train-mask") as staging:
        staged = save_weights(staging.folder, state, hparams)
        entry = staging.commit(
            store.ledger, "model.trained", data, [(staged, model_dir / WEIGHTS_FILE)], guard=watch.final
        )
    info = {
        "note": "informational copy; what this segmenter is and under which consent is its model.trained ledger entry",
        "name": request.name,
        "ledger_seq": entry.seq,
        **described,
        "consent_grant": grant.to_json(),
        "fingerprint": weights_id,
        "weights": WEIGHTS_FILE,
        "checkpoint": "checkpoints/last.ckpt",
        "smoke_run": run["smoke"],
    }
    write_atomic(model_dir / "model.json", json.dumps(info, indent=2, default=str))
    return weights_id, entry.seq
