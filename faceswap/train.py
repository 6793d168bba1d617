"""`faceswap train`: LightningCLI over SwapModule + SwapDataModule, gated by consent.

The data module asks the consent gate in its constructor, so a refusal happens before the Trainer
exists. Checkpoints and model.json record the grant (record ids and hashes) and the facesets'
hashes; previews go through the output sink; the finished model gets a `model.trained` entry.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from faceswap.errors import BadInput
from faceswap.workspace import Workspace

GPU_HINT = (
    "no CUDA GPU found and this config trains on '{accelerator}'. Training needs a GPU; for a CPU smoke "
    "run use --config configs/train/smoke.yaml (it sets --trainer.accelerator cpu) or pass "
    "--trainer.accelerator cpu explicitly"
)


@dataclass
class TrainRequest:
    workspace: Workspace
    config: Path
    subject_a: str
    subject_b: str
    purpose: str
    name: str
    overrides: list[str] = field(default_factory=list)  # LightningCLI flags, e.g. --trainer.max_steps 50


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    fingerprint: str
    resumed_from: int | None
    losses: dict[str, Any]
    ledger_seq: int
    previews: list[str]
    smoke: bool


def _accelerator(config: Path, overrides: list[str]) -> str:
    value = "auto"
    try:
        loaded = yaml.safe_load(config.read_text()) or {}
        value = str((loaded.get("trainer") or {}).get("accelerator", value))
    except (OSError, yaml.YAMLError) as error:
        raise BadInput(f"{config}: not a readable YAML config ({error})") from None
    for i, arg in enumerate(overrides):
        if arg.startswith("--trainer.accelerator="):
            value = arg.split("=", 1)[1]
        elif arg == "--trainer.accelerator" and i + 1 < len(overrides):
            value = overrides[i + 1]
    return value


class _LossHistory:
    """Keeps per-step reconstruction losses for model.json (the loss curve of the run)."""

    def __init__(self) -> None:
        import pytorch_lightning as pl

        outer = self

        class Callback(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                metrics = trainer.callback_metrics
                if "recon_a" in metrics and "recon_b" in metrics:
                    outer.rows.append((trainer.global_step, float(metrics["recon_a"]), float(metrics["recon_b"])))

        self.rows: list[tuple[int, float, float]] = []
        self.callback = Callback()

    def summary(self) -> dict[str, Any]:
        if not self.rows:
            return {}
        steps, a, b = (np.array(c) for c in zip(*self.rows, strict=True))
        head, tail = slice(0, min(50, len(a))), slice(max(0, len(a) - 50), len(a))
        stride = max(1, len(a) // 60)
        return {
            "recon_a_first50": float(a[head].mean()),
            "recon_b_first50": float(b[head].mean()),
            "recon_a_last50": float(a[tail].mean()),
            "recon_b_last50": float(b[tail].mean()),
            "curve": [[int(s), round(float(x), 5), round(float(y), 5)] for s, x, y in self.rows[::stride]],
        }


def _build_cli(cli_class, module_class, data_class, args, model_dir: Path, checkpoints: Path, history):
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    return cli_class(
        module_class,
        data_class,
        args=args,
        run=False,
        save_config_callback=None,
        trainer_defaults={
            "default_root_dir": str(model_dir),
            "logger": [TensorBoardLogger(str(model_dir), name="tensorboard"), CSVLogger(str(model_dir), name="csv")],
            "callbacks": [
                ModelCheckpoint(dirpath=str(checkpoints), every_n_train_steps=100, save_last=True, save_top_k=0),
                history.callback,
            ],
        },
    )


def run_training(request: TrainRequest) -> TrainResult:
    import torch

    accelerator = _accelerator(request.config, request.overrides)
    if accelerator in ("gpu", "cuda", "auto") and not torch.cuda.is_available():
        raise BadInput(GPU_HINT.format(accelerator=accelerator))
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    from pytorch_lightning.cli import LightningCLI

    from faceswap.data.datamodule import SwapDataModule
    from faceswap.model.module import SwapModule, weights_fingerprint
    from faceswap.provenance.ledger import open_ledger
    from faceswap.provenance.sink import OutputContext, OutputSink

    if not request.name or "/" in request.name or request.name.startswith("."):
        raise BadInput(f"--name '{request.name}' must be a plain folder name")
    model_dir = request.workspace.models_dir / request.name
    history = _LossHistory()
    checkpoints = model_dir / "checkpoints"
    args = [
        "--config",
        str(request.config),
        "--data.subject_a",
        request.subject_a,
        "--data.subject_b",
        request.subject_b,
        "--data.purpose",
        request.purpose,
        "--data.workspace",
        str(request.workspace.root),
        *request.overrides,
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        warnings.filterwarnings("ignore", message="(?s).*Unable to serialize instance")
        cli = _build_cli(LightningCLI, SwapModule, SwapDataModule, args, model_dir, checkpoints, history)
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    grant = datamodule.grant
    smoke = trainer.accelerator.__class__.__name__.lower().startswith("cpu")
    if smoke:
        print(f"CPU smoke run of {request.name}: {trainer.max_steps} steps; real training needs a GPU", flush=True)
    ledger = open_ledger(request.workspace)
    sink = OutputSink(ledger)
    previews: list[str] = []

    def write_preview(grid: np.ndarray, step: int, fingerprint: str) -> np.ndarray:
        from faceswap.media import read_image

        written = sink.write_image(
            model_dir / "previews" / f"step-{step:07d}.png",
            grid,
            OutputContext(
                producer="train.preview",
                model_fingerprint=fingerprint,
                consent_record_ids=tuple(grant.record_ids),
                settings={"model": request.name, "step": step, "columns": "A, A->A, A->B, B, B->B, B->A"},
            ),
        )
        previews.append(str(written.path))
        return read_image(written.path)

    module.preview_sink = write_preview
    last = checkpoints / "last.ckpt"
    resumed_from = None
    if last.exists():
        resumed_from = int(torch.load(last, map_location="cpu", weights_only=False).get("global_step", 0))
        print(f"resuming {request.name} from step {resumed_from}", flush=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)
    fingerprint = weights_fingerprint(module.network)
    weights_path = model_dir / "model.pt"
    tmp = model_dir / f".model.pt.{os.getpid()}.tmp"
    torch.save({"hparams": dict(module.hparams), "state_dict": module.network.state_dict()}, tmp)  # weights
    os.replace(tmp, weights_path)
    losses = history.summary()
    info = {
        "name": request.name,
        "architecture": module.config.architecture,
        "resolution": module.config.resolution,
        "hparams": dict(module.hparams),
        "subjects": {"a": request.subject_a, "b": request.subject_b},
        "purpose": request.purpose,
        "consent_grant": grant.to_json(),
        "faceset_hashes": datamodule.faceset_hashes,
        "steps": int(trainer.global_step),
        "resumed_from": resumed_from,
        "losses": losses,
        "nan_recoveries": module.recoveries,
        "fingerprint": fingerprint,
        "weights": weights_path.name,
        "checkpoint": "checkpoints/last.ckpt",
        "smoke_run": smoke,
        "precision": str(trainer.precision),
    }
    tmp_json = model_dir / f".model.json.{os.getpid()}.tmp"
    tmp_json.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp_json, model_dir / "model.json")
    entry = ledger.append(
        "model.trained",
        {
            "name": request.name,
            "fingerprint": fingerprint,
            "architecture": module.config.architecture,
            "resolution": module.config.resolution,
            "purpose": request.purpose,
            "consent_record_ids": grant.record_ids,
            "consent_record_sha256": [r.record_sha256 for r in grant.records],
            "faceset_hashes": datamodule.faceset_hashes,
            "steps": int(trainer.global_step),
        },
    )
    return TrainResult(
        model_dir,
        int(trainer.global_step),
        fingerprint,
        resumed_from,
        {k: v for k, v in losses.items() if k != "curve"},
        entry.seq,
        previews,
        smoke,
    )
