"""`faceswap train`: LightningCLI over SwapModule + SwapDataModule, gated by consent.

The data module asks the consent gate in its constructor, so a refusal happens before the Trainer
exists. Checkpoints and model.json record the grant (record ids and hashes) and the facesets'
hashes; previews go through the output sink; the finished model gets a `model.trained` entry.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from argparse import ArgumentError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from faceswap.atomic import write_atomic
from faceswap.consent.gate import ConsentGate, ConsentGrant, ConsentRefused
from faceswap.errors import BadInput
from faceswap.workspace import Workspace

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")

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
    occlusion_model: Path | None = None  # a segmenter whose occluders are left out of the loss


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
    rank: int = 0  # the process's global rank: only rank zero publishes (ledger_seq -1 elsewhere)


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


def _resume_step(last: Path, grant: ConsentGrant) -> int:
    """The step a checkpoint resumes from, loaded weights-only; it must carry this run's consent."""
    import pickle

    import torch

    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadInput(f"{last}: not a weights-only checkpoint ({first}); nothing in it was run") from None
    saved = checkpoint.get("consent_grant") or {}
    saved_ids = sorted(str(r.get("record_id")) for r in saved.get("records", []) if isinstance(r, dict))
    if saved_ids != sorted(grant.record_ids):
        raise ConsentRefused(
            f"{last} was trained under other consent records than this run's ({', '.join(grant.record_ids)}); "
            "train under a new --name"
        )
    return int(checkpoint.get("global_step", 0))


def _build_cli(cli_class, module_class, data_class, args, model_dir: Path, checkpoints: Path, history):
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    return cli_class(
        module_class,
        data_class,
        args=args,
        run=False,
        parser_kwargs={"exit_on_error": False},  # one line from us instead of a page of usage
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
    """consent (in the data module) -> Trainer -> fit (previews through the sink) -> publish."""
    _check_request(request)
    model_dir = request.workspace.models_dir / request.name
    history = _LossHistory()
    checkpoints = model_dir / "checkpoints"
    cli = _configure(request, model_dir, checkpoints, history)
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    grant = datamodule.grant
    if request.occlusion_model is not None:
        exclude_occluders(request, datamodule)
    smoke = trainer.accelerator.__class__.__name__.lower().startswith("cpu")
    if smoke and trainer.is_global_zero:
        print(f"CPU smoke run of {request.name}: {trainer.max_steps} steps; real training needs a GPU", flush=True)
    from faceswap.ledger import open_ledger

    ledger = open_ledger(request.workspace)
    previews = preview_callback(request, model_dir, grant, ledger)
    trainer.callbacks.append(previews)
    last = checkpoints / "last.ckpt"
    resumed_from = _resume_step(last, grant) if last.exists() else None
    if resumed_from is not None and trainer.is_global_zero:
        print(f"resuming {request.name} from step {resumed_from}", flush=True)
    with warnings.catch_warnings():  # checkpoints hold the state after the step, as intended
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning on new torch
        # every step draws its faces at random, so a resume mid-"epoch" skips nothing
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None, weights_only=True)
    run = FinishedRun(request, model_dir, module, datamodule, trainer, grant, resumed_from, history.summary(), smoke)
    if not trainer.is_global_zero:  # one model, one entry: rank zero publishes
        return run.result(None, [])
    return run.result(publish_model(run, ledger), previews.paths)


def exclude_occluders(request: TrainRequest, datamodule: Any) -> None:
    """Leave what the segmenter finds in front of the faces out of the loss; the segmenter must be
    logged, under this run's consent, and made for the facesets' crops. Recorded in the model's entry."""
    from faceswap.consent.registry import ConsentStore
    from faceswap.model.occlusion import load_segmenter

    assert request.occlusion_model is not None
    segmenter = load_segmenter(ConsentStore(request.workspace), request.occlusion_model, datamodule.grant)
    made = {faceset.header.alignment for faceset in datamodule.facesets.values()}
    if made != {segmenter.alignment}:
        raise BadInput(f"{request.occlusion_model} segments {segmenter.alignment.name} crops; the facesets hold others")
    datamodule.visible = segmenter.on_crop
    datamodule.occlusion_model = {
        "name": segmenter.name,
        "fingerprint": segmenter.fingerprint,
        "seq": segmenter.entry.seq,
    }


def _check_request(request: TrainRequest) -> None:
    import torch

    if not NAME.match(request.name):
        raise BadInput(f"--name '{request.name}' must be a plain folder name (letters, digits, '.', '_', '-')")
    accelerator = _accelerator(request.config, request.overrides)
    if accelerator in ("gpu", "cuda", "auto") and not torch.cuda.is_available():
        raise BadInput(GPU_HINT.format(accelerator=accelerator))


def _configure(request: TrainRequest, model_dir: Path, checkpoints: Path, history: _LossHistory):
    """LightningCLI over the config and the request's subjects, purpose and overrides (not run)."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)  # "Seed set to 0"
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    from pytorch_lightning.cli import LightningCLI

    from faceswap.data.datamodule import SwapDataModule
    from faceswap.model.module import SwapModule

    class SwapCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model.resolution", "data.resolution")  # the data follows the model

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
        try:
            return _build_cli(SwapCLI, SwapModule, SwapDataModule, args, model_dir, checkpoints, history)
        except ArgumentError as error:
            reason = " ".join(str(error).split())
            raise BadInput(f"{request.config}: {reason} (see `faceswap train --help` and docs/training.md)") from None


def preview_callback(request: TrainRequest, model_dir: Path, grant: ConsentGrant, ledger: Any):
    """A Lightning Callback that writes preview grids every `model.preview_every` steps and at the
    end, through the output sink (marked, logged under the run's consent), on rank zero only, and
    shows the marked grid to the loggers."""
    import pytorch_lightning as pl

    from faceswap.media import read_image
    from faceswap.model.module import weights_fingerprint
    from faceswap.provenance.sink import OutputContext, OutputSink

    sink = OutputSink.for_workspace(request.workspace, ledger)

    class Previews(pl.Callback):
        def __init__(self) -> None:
            self.paths: list[str] = []
            self.last_step: int | None = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            every = pl_module.hparams.preview_every
            if every and trainer.global_step > 0 and trainer.global_step % every == 0:
                self.write(trainer, pl_module)

        def on_train_end(self, trainer, pl_module) -> None:
            self.write(trainer, pl_module)

        def write(self, trainer, pl_module) -> None:
            step = trainer.global_step
            if not trainer.is_global_zero or self.last_step == step:  # one preview a step
                return
            self.last_step = step
            written = sink.write_image(
                model_dir / "previews" / f"step-{step:07d}.png",
                pl_module.preview_grid(),
                OutputContext(
                    producer="train.preview",
                    model_fingerprint=weights_fingerprint(pl_module.network),
                    consent_record_ids=tuple(grant.record_ids),
                    settings={"model": request.name, "step": step, "columns": "A, A->A, A->B, B, B->B, B->A"},
                ),
            )
            self.paths.append(str(written.path))
            marked = read_image(written.path)
            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "add_image"):
                    experiment.add_image("preview", marked[:, :, ::-1].copy(), step, dataformats="HWC")

    return Previews()


def _plain_values(hparams: Any, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The hyperparameters a ledger entry can hold as they are (strings, numbers, booleans, None)."""
    return {
        k: v for k, v in dict(hparams).items() if k not in skip and isinstance(v, (str, int, float, bool, type(None)))
    }


@dataclass
class FinishedRun:
    request: TrainRequest
    model_dir: Path
    module: Any
    datamodule: Any
    trainer: Any
    grant: ConsentGrant
    resumed_from: int | None
    losses: dict[str, Any]
    smoke: bool

    @property
    def hparams(self) -> dict[str, Any]:
        return _plain_values(self.module.hparams)

    @property
    def data_settings(self) -> dict[str, Any]:
        """How faces were drawn and augmented (the ledger's record of the recipe; who and where are
        recorded apart)."""
        return _plain_values(
            self.datamodule.hparams, skip={"subject_a", "subject_b", "purpose", "workspace", "num_workers"}
        )

    def result(self, published: tuple[str, int] | None, previews: list[str]) -> TrainResult:
        from faceswap.model.weights import fingerprint

        weights_id, seq = published or (fingerprint(self.module.network.state_dict()), -1)
        losses = {k: v for k, v in self.losses.items() if k != "curve"}
        steps = int(self.trainer.global_step)
        rank = int(self.trainer.global_rank)
        return TrainResult(
            self.model_dir, steps, weights_id, self.resumed_from, losses, seq, previews, self.smoke, rank
        )


def publish_model(run: FinishedRun, ledger: Any) -> tuple[str, int]:
    """model.safetensors, its `model.trained` entry (consent re-checked in the transaction), and
    model.json (a copy for people); (fingerprint, ledger seq)."""
    from faceswap.consent.registry import ConsentStore
    from faceswap.model.weights import fingerprint, save_weights

    request, module, grant = run.request, run.module, run.grant
    state = module.network.state_dict()
    weights_id, hparams = fingerprint(state), run.hparams
    weights_path = save_weights(run.model_dir, state, hparams)
    described = {
        "architecture": module.config.architecture,
        "resolution": module.config.resolution,
        "hparams": hparams,
        "data": run.data_settings,
        "precision": str(run.trainer.precision),
        "subjects": {"a": request.subject_a, "b": request.subject_b},
        "purpose": request.purpose,
        "faceset_hashes": run.datamodule.faceset_hashes,
        "steps": int(run.trainer.global_step),
        "resumed_from": run.resumed_from,
        **(
            {"occlusion_model": run.datamodule.occlusion_model}
            if getattr(run.datamodule, "occlusion_model", None)
            else {}
        ),
    }
    entry = ledger.append(
        "model.trained",
        {
            "name": request.name,
            "fingerprint": weights_id,
            "weights_file": weights_path.name,
            **described,
            "consent_record_ids": grant.record_ids,
            "consent_record_sha256": [r.record_sha256 for r in grant.records],
            "registrar_key_id": grant.registrar_key_id,
        },
        guard=lambda entries: ConsentGate(ConsentStore(request.workspace, ledger)).recheck(grant, entries),
    )
    info = {
        "note": "informational copy; what this model is and under which consent is its model.trained ledger entry",
        "name": request.name,
        "ledger_seq": entry.seq,
        **described,
        "consent_grant": grant.to_json(),
        "losses": run.losses,
        "nan_recoveries": module.recoveries,
        "fingerprint": weights_id,
        "weights": weights_path.name,
        "checkpoint": "checkpoints/last.ckpt",
        "smoke_run": run.smoke,
        "precision": str(run.trainer.precision),
    }
    write_atomic(run.model_dir / "model.json", json.dumps(info, indent=2, default=str))
    return weights_id, entry.seq
