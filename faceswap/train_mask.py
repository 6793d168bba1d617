"""`faceswap train-mask`: LightningCLI over OcclusionModule + OcclusionDataModule, gated by consent.

consent (the gate decides once, for both subjects and the purpose, before anything is built) ->
the data module, handed the grant, loads the labelled crops it allows -> Trainer (checkpoints,
loggers; a Callback re-checks consent every 2 s while it trains) -> publish: the weights are
written beside the model folder and renamed into it inside the `model.trained` entry's transaction,
which re-checks consent, so a refused or killed run leaves no segmenter without its entry.

The segmenter serves the swap models of the same two subjects and purpose: they share one grant.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from argparse import ArgumentError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.consent.gate import ConsentGate, ConsentGrant
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import CHECK_EVERY_SECONDS, ConsentWatch
from faceswap.errors import BadInput
from faceswap.model.weights import OCCLUSION, WEIGHTS_FILE
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


@dataclass
class MaskTrainResult:
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


def consent_watch_callback(watch: ConsentWatch):
    """A Lightning Callback that re-checks the grant between steps (every `watch.interval` s): a
    revocation stops the run, before anything is published."""
    import pytorch_lightning as pl

    class WatchConsent(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            watch.poll()

    return WatchConsent()


def run_mask_training(request: MaskTrainRequest, check_seconds: float = CHECK_EVERY_SECONDS) -> MaskTrainResult:
    """consent -> data (the grant's labelled crops) -> Trainer -> fit -> publish."""
    import time

    from faceswap.train import _check_request, _resume_step

    started = time.perf_counter()
    _check_request(request)  # the name, and a GPU for a GPU config
    store = ConsentStore(request.workspace)
    gate = ConsentGate(store)
    grant = gate.authorize(request.subject_a, request.subject_b, request.purpose)
    model_dir = request.workspace.models_dir / request.name
    _refuse_other_model(model_dir)
    history = _History()
    checkpoints = model_dir / "checkpoints"
    cli = _configure(request, grant, model_dir, checkpoints, history)
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    trainer.callbacks.append(consent_watch_callback(ConsentWatch(gate, grant, check_seconds)))
    smoke = trainer.accelerator.__class__.__name__.lower().startswith("cpu")
    last = checkpoints / "last.ckpt"
    resumed_from = _resume_step(last, grant) if last.exists() else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None, weights_only=True)
    run = {"model_dir": model_dir, "resumed_from": resumed_from, "metrics": history.summary(), "smoke": smoke}
    if not trainer.is_global_zero:
        return MaskTrainResult(
            steps=int(trainer.global_step),
            fingerprint="",
            labelled={},
            ledger_seq=-1,
            seconds=0.0,
            rank=int(trainer.global_rank),
            **run,
        )
    weights_id, seq = publish_segmenter(request, store, grant, module, datamodule, trainer, run)
    return MaskTrainResult(
        steps=int(trainer.global_step),
        fingerprint=weights_id,
        labelled=datamodule.labels_summary,
        ledger_seq=seq,
        seconds=round(time.perf_counter() - started, 1),
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


def _configure(request: MaskTrainRequest, grant: ConsentGrant, model_dir: Path, checkpoints: Path, history: _History):
    """LightningCLI over the config and the overrides; the grant and workspace come last, so no
    override replaces them (not run)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningCLI
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from faceswap.data.occlusion_data import OcclusionDataModule
    from faceswap.model.occlusion_module import OcclusionModule

    class MaskCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model.resolution", "data.resolution")

    args = [
        "--config",
        str(request.config),
        *request.overrides,
        "--data.grant",
        json.dumps(grant.to_json()),
        "--data.workspace",
        str(request.workspace.root),
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        warnings.filterwarnings("ignore", message="(?s).*Unable to serialize instance")
        try:
            return MaskCLI(
                OcclusionModule,
                OcclusionDataModule,
                args=args,
                run=False,
                parser_kwargs={"exit_on_error": False},
                save_config_callback=None,
                trainer_defaults={
                    "default_root_dir": str(model_dir),
                    "logger": [
                        TensorBoardLogger(str(model_dir), name="tensorboard"),
                        CSVLogger(str(model_dir), name="csv"),
                    ],
                    "callbacks": [
                        ModelCheckpoint(
                            dirpath=str(checkpoints), every_n_train_steps=100, save_last=True, save_top_k=0
                        ),
                        history.callback,
                    ],
                },
            )
        except ArgumentError as error:
            reason = " ".join(str(error).split())
            raise BadInput(f"{request.config}: {reason} (see `faceswap train-mask --help`)") from None


def publish_segmenter(
    request: MaskTrainRequest, store: ConsentStore, grant: ConsentGrant, module, datamodule, trainer, run: dict
) -> tuple[str, int]:
    """model.safetensors (staged beside the folder, renamed in inside the `model.trained` entry's
    transaction, which re-checks consent), then model.json (a copy for people)."""
    from faceswap.model.weights import fingerprint, save_weights

    state = module.network.state_dict()
    weights_id = fingerprint(state)
    hparams = {k: v for k, v in dict(module.hparams).items() if isinstance(v, (str, int, float, bool, type(None)))}
    model_dir: Path = run["model_dir"]
    staging = model_dir / f".staging-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        staged = save_weights(staging, state, hparams)
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
        entry = store.ledger.append(
            "model.trained",
            {
                "name": request.name,
                "fingerprint": weights_id,
                "weights_file": WEIGHTS_FILE,
                **described,
                "consent_record_ids": grant.record_ids,
                "consent_record_sha256": [r.record_sha256 for r in grant.records],
                "registrar_key_id": grant.registrar_key_id,
            },
            guard=lambda entries: ConsentGate(store).recheck(grant, entries),
            on_commit=lambda _entry: os.replace(staged, model_dir / WEIGHTS_FILE),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
