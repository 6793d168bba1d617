"""`faceswap train`: consent first, then LightningCLI over SwapModule + SwapDataModule, watched.

The caller authorises once (data/authorised.py: one grant for both subjects, both facesets checked
against it and the ledger) before any Lightning object exists, and hands that, with the workspace it
was decided in, to the data module (which only loads it) and to the callbacks (train_hooks.py) that
watch the grant: every step boundary, every preview (inside its ledger transaction) and every
checkpoint re-check consent. The finished weights are written in the workspace's staging folder and
renamed to `model.safetensors` only inside the `model.trained` entry's transaction, which re-checks
consent too. A run that consent stops leaves no weights and removes its checkpoints; a killed run
keeps its checkpoints (resume state, not a model: nothing converts from them) and resumes from the
last one while its consent holds.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import warnings
from argparse import ArgumentError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faceswap.atomic import remove_stale_temps, write_atomic
from faceswap.consent.gate import ConsentGate, ConsentGrant, ConsentRefused
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import CHECK_EVERY_SECONDS, ConsentWatch
from faceswap.errors import BadInput, ConsentDenied
from faceswap.report import Report
from faceswap.workspace import Workspace

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")

GPU_HINT = (
    "no CUDA GPU found and this config trains on '{accelerator}'. Training needs a GPU; for a CPU smoke "
    "run use --config configs/train/smoke.yaml (it sets --trainer.accelerator cpu) or pass "
    "--trainer.accelerator cpu explicitly"
)
# a dubbing model's framing cut from facesets aligned on the eyes and nose follows the performer's lips
# worse than from facesets aligned on the five keypoints (scripts/bench_dub.py --dubs 4, both alignments)
DUBBING_ALIGNMENT_NOTE = (
    "note: {face_type} crops cut from facesets aligned on {points}: dubbing models followed the performer's "
    "lips better on facesets extracted with --align-on five (lip sync 0.87 against 0.74 on the demo's dub "
    'pair; README, "Dubbing")'
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
    checkpoint_every: int = 100  # steps between checkpoints (resume points)
    consent_check_seconds: float = CHECK_EVERY_SECONDS
    callbacks: list[Any] = field(default_factory=list)  # more Lightning Callbacks (library use), run after ours


@dataclass
class TrainResult(Report):
    model_dir: Path
    steps: int
    fingerprint: str
    resumed_from: int | None
    losses: dict[str, Any]
    ledger_seq: int
    previews: list[str]
    smoke: bool
    rank: int = 0  # the process's global rank: only rank zero publishes (ledger_seq -1 elsewhere)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    def lines(self) -> list[str]:
        """Rank zero's: under DDP every rank returns a result, and one report of the model is enough."""
        if self.rank != 0:
            return []
        losses = self.losses
        out = []
        if losses:
            out.append(
                f"recon A {losses['recon_a_first50']:.4f} -> {losses['recon_a_last50']:.4f}, "
                f"recon B {losses['recon_b_first50']:.4f} -> {losses['recon_b_last50']:.4f} (first/last 50 steps)"
            )
        return out + [
            f"model {self.model_dir}: {self.steps} steps, fingerprint {self.fingerprint[:16]}, "
            f"{len(self.previews)} watermarked preview(s); ledger seq {self.ledger_seq}"
        ]


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


def _build_cli(cli_class, module_class, args, model_dir: Path, checkpoints: Path, every: int, callbacks: list):
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from faceswap.train_hooks import atomic_checkpoints

    return cli_class(
        module_class,
        None,  # the data module is built from the grant (SwapCLI.instantiate_classes)
        args=args,
        run=False,
        parser_kwargs={"exit_on_error": False},  # one line from us instead of a page of usage
        save_config_callback=None,
        trainer_defaults={
            "default_root_dir": str(model_dir),
            "logger": [TensorBoardLogger(str(model_dir), name="tensorboard"), CSVLogger(str(model_dir), name="csv")],
            "plugins": [atomic_checkpoints()],
            "callbacks": [
                *callbacks,
                ModelCheckpoint(dirpath=str(checkpoints), every_n_train_steps=every, save_last=True, save_top_k=0),
            ],
        },
    )


def run_training(request: TrainRequest) -> TrainResult:
    """consent (one grant) -> Trainer -> fit, watched (previews through the sink) -> publish."""
    from faceswap.data.authorised import authorise_training
    from faceswap.train_hooks import LossHistory, consent_callback

    _check_request(request)
    store = ConsentStore(request.workspace)
    model_dir = request.workspace.models_dir / request.name
    checkpoints = model_dir / "checkpoints"
    try:
        authorised = authorise_training(store, request.subject_a, request.subject_b, request.purpose)
    except ConsentDenied:
        discard_withdrawn_checkpoints(checkpoints, store)
        raise
    grant = authorised.grant
    last = _resume_point(checkpoints, grant, store)
    watch = ConsentWatch(ConsentGate(store), grant, request.consent_check_seconds)
    history = LossHistory()
    cli = _configure(request, authorised, model_dir, checkpoints, [consent_callback(watch), history.callback])
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    watch.interrupt = trainer.world_size == 1  # DDP ranks stop together at step boundaries instead
    if request.occlusion_model is not None:
        exclude_occluders(request.occlusion_model, store, datamodule)
    smoke = trainer.accelerator.__class__.__name__.lower().startswith("cpu")
    if smoke and trainer.is_global_zero:
        print(f"CPU smoke run of {request.name}: {trainer.max_steps} steps; real training needs a GPU", flush=True)
    note = dubbing_alignment_note(datamodule)
    if note is not None and trainer.is_global_zero:
        print(note, flush=True)
    previews = _previews(request, model_dir, store, watch)
    trainer.callbacks.extend([previews, *request.callbacks])
    resumed_from = _resume_step(last, grant) if last is not None else None
    if resumed_from is not None and trainer.is_global_zero:
        print(f"resuming {request.name} from step {resumed_from}", flush=True)
    try:
        with watch:
            _fit(trainer, module, datamodule, last)
            watch.poll()  # a refusal seen after the last step (the final preview's) stops the publish too
            run = FinishedRun(
                request, model_dir, module, datamodule, trainer, grant, resumed_from, history.summary(), smoke
            )
            if not trainer.is_global_zero:  # one model, one entry: rank zero publishes
                return run.result(None, [])
            run.mark = mark_model(run, store, watch)
            return run.result(publish_model(run, store.ledger, watch), previews.paths)
    except ConsentDenied:
        if trainer.is_global_zero:
            shutil.rmtree(checkpoints, ignore_errors=True)  # work under withdrawn consent is not resumed
        raise


def dubbing_alignment_note(datamodule: Any) -> str | None:
    """What to say when a region framing (a dubbing model's) is cut from facesets not aligned on the
    five keypoints, which pin the mouth's corners; None otherwise."""
    from faceswap.faces.align import REGION_FRAMINGS

    face_type = datamodule.hparams.face_type
    points = datamodule.facesets["a"].header.alignment.points
    if face_type not in REGION_FRAMINGS or points == "five":
        return None
    return DUBBING_ALIGNMENT_NOTE.format(face_type=face_type, points=points)


def _fit(trainer: Any, module: Any, datamodule: Any, last: Path | None) -> None:
    with warnings.catch_warnings():  # checkpoints hold the state after the step, as intended
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning on new torch
        # every step draws its faces at random, so a resume mid-"epoch" skips nothing
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last is not None else None, weights_only=True)


def _previews(request: TrainRequest, model_dir: Path, store: ConsentStore, watch: ConsentWatch) -> Any:
    from faceswap.provenance.output.sink import OutputSink
    from faceswap.train_hooks import preview_callback

    return preview_callback(request.name, model_dir, OutputSink.for_workspace(request.workspace, store.ledger), watch)


def _resume_point(checkpoints: Path, grant: ConsentGrant, store: ConsentStore) -> Path | None:
    """The checkpoint to resume from, if any. Leftovers of a killed checkpoint write are removed, and
    checkpoints made under consent that no longer holds are removed, not resumed."""
    remove_stale_temps(checkpoints)
    if discard_withdrawn_checkpoints(checkpoints, store):
        print(f"{checkpoints}: made under consent that was withdrawn; removed, training starts anew", flush=True)
    last = checkpoints / "last.ckpt"
    return last if last.exists() else None


def discard_withdrawn_checkpoints(checkpoints: Path, store: ConsentStore) -> bool:
    """Remove a run's checkpoints when a consent record they were made under is no longer active
    (revoked, expired, replaced); True when they went."""
    last = checkpoints / "last.ckpt"
    if not last.is_file():
        return False
    saved = _saved_grant(last)
    if saved is None:
        return False
    snapshot = ConsentGate(store).snapshot()
    for record_id in saved:
        record = snapshot.by_id(record_id)
        if record is not None and snapshot.status(record) != "active":
            shutil.rmtree(checkpoints, ignore_errors=True)
            return True
    return False


def _saved_grant(last: Path) -> list[str] | None:
    """The record ids a checkpoint names (None when it cannot be read as weights-only)."""
    import pickle

    import torch

    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError):
        return None
    saved = checkpoint.get("consent_grant") or {}
    return [str(r.get("record_id")) for r in saved.get("records", []) if isinstance(r, dict)]


def exclude_occluders(folder: Path, store: ConsentStore, datamodule: Any) -> None:
    """Leave what the segmenter finds in front of the faces out of the loss; the segmenter must be
    logged, under this run's consent, and made for the facesets' crops. Recorded in the model's entry."""
    from faceswap.model.occlusion import load_segmenter

    segmenter = load_segmenter(store, folder, datamodule.grant)
    made = {faceset.header.alignment for faceset in datamodule.facesets.values()}
    if made != {segmenter.alignment}:
        raise BadInput(f"{folder} segments {segmenter.alignment.name} crops; the facesets hold others")
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
    if request.checkpoint_every < 1:
        raise BadInput("--checkpoint-every must be at least 1 step")
    accelerator = _accelerator(request.config, request.overrides)
    if accelerator in ("gpu", "cuda", "auto") and not torch.cuda.is_available():
        raise BadInput(GPU_HINT.format(accelerator=accelerator))


def _configure(request: TrainRequest, authorised: Any, model_dir: Path, checkpoints: Path, callbacks: list):
    """LightningCLI over the config and the request's overrides (not run); the data module is built
    from the authorised grant, its options from the config and flags."""
    from faceswap.data.datamodule import SwapDataModule
    from faceswap.model.module import SwapModule

    job = CliJob(request.config, request.overrides, request.checkpoint_every, "train")
    return build_granted_cli(
        (SwapModule, SwapDataModule), ("authorised", authorised), job, model_dir, checkpoints, callbacks
    )


@dataclass(frozen=True)
class CliJob:
    """What a training command's LightningCLI is built from: the preset, the flags, the checkpoint
    interval and the command's name (for its error line)."""

    config: Path
    overrides: list[str]
    checkpoint_every: int
    command: str


def build_granted_cli(
    classes: tuple[type, type], given: tuple[str, Any], job: CliJob, model_dir: Path, checkpoints: Path, callbacks: list
):
    """LightningCLI over `job`'s config and flags (not run): the model from them; the data module
    built from what the caller authorised (`given`: that argument's name and value, which no config
    key or flag can set), its other options from the config and flags."""
    for logger in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(logger).setLevel(logging.WARNING)  # "Seed set to 0" and the like
    from pytorch_lightning.cli import LightningCLI

    module_class, data_class = classes
    name, value = given

    class GrantedCLI(LightningCLI):
        def add_core_arguments_to_parser(self, parser) -> None:
            """Lightning's trainer and model; the data module's options only (never who or which consent)."""
            parser.add_lightning_class_args(self.trainer_class, "trainer")
            parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"})
            parser.add_lightning_class_args(self._model_class, "model", subclass_mode=self.subclass_mode_model)
            parser.add_class_arguments(data_class, "data", skip={name}, instantiate=False)

        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model.resolution", "data.resolution")  # the data follows the model

        def instantiate_classes(self) -> None:
            super().instantiate_classes()
            self.datamodule = data_class(value, **vars(self.config_init["data"]))

    args = ["--config", str(job.config), *job.overrides]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        warnings.filterwarnings("ignore", message="(?s).*Unable to serialize instance")
        try:
            return _build_cli(GrantedCLI, module_class, args, model_dir, checkpoints, job.checkpoint_every, callbacks)
        except ArgumentError as error:
            reason = " ".join(str(error).split())
            raise BadInput(
                f"{job.config}: {reason} (see `faceswap {job.command} --help` and docs/training.md)"
            ) from None


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
    mark: dict[str, Any] | None = None  # what the marking stage did (`mark_model`), for the entry

    @property
    def hparams(self) -> dict[str, Any]:
        return _plain_values(self.module.hparams)

    @property
    def data_settings(self) -> dict[str, Any]:
        """How faces were drawn and augmented (the ledger's record of the recipe; who and where are
        recorded apart)."""
        return _plain_values(self.datamodule.hparams, skip={"num_workers"})

    def result(self, published: tuple[str, int] | None, previews: list[str]) -> TrainResult:
        from faceswap.model.weights import fingerprint

        weights_id, seq = published or (fingerprint(self.module.network.state_dict()), -1)
        losses = {k: v for k, v in self.losses.items() if k != "curve"}
        steps = int(self.trainer.global_step)
        rank = int(self.trainer.global_rank)
        return TrainResult(
            self.model_dir, steps, weights_id, self.resumed_from, losses, seq, previews, self.smoke, rank
        )


def mark_model(run: FinishedRun, store: ConsentStore, watch: ConsentWatch) -> dict[str, Any] | None:
    """The marking stage (`model.mark`): the decoder that renders A is fine-tuned on both facesets'
    faces so everything it renders carries this model's mark, keyed by the workspace's active
    watermark secret and a nonce (the unmarked weights' fingerprint), both recorded in the entry so
    verify can derive the key again. Never more steps than the run trained; consent is polled before each.
    None unless `--model.mark_decoder true`."""
    import torch

    from faceswap.faces.align import Alignment
    from faceswap.ledger import watermark_keys
    from faceswap.model.mark import CARRIERS, VERSION, MarkingSettings, ModelMark, mark_decoder
    from faceswap.model.weights import fingerprint

    module, hparams = run.module, run.module.hparams
    if not hparams.mark_decoder:
        return None
    steps = min(int(hparams.mark_steps), max(1, int(run.trainer.global_step)))
    marks = watermark_keys.for_writing(store.ledger, run.request.workspace.keys_dir)
    nonce = fingerprint(module.network.state_dict())[:32]
    faces = torch.cat([_rgb_faces(run.datamodule.samples[s].images) for s in ("a", "b")]).to(module.device)
    settings = MarkingSettings(steps=steps, seed=int(run.datamodule.hparams.seed))
    framing = Alignment.parse(hparams.alignment).face_type
    model_mark = ModelMark.derive(marks.active, nonce, framing)
    report = mark_decoder(module.network, faces, model_mark, settings, watch.poll)
    agreeing = f"{report.agreeing_after:.1f} of {CARRIERS} carriers agreeing in sign"
    print(f"marked {run.request.name}'s decoder in {steps} steps: its faces carry {agreeing}", flush=True)
    return {"version": VERSION, "key_id": marks.key_id, "nonce": nonce, "carriers": CARRIERS, **report.to_json()}


def _rgb_faces(images: Any) -> Any:
    """(N, R, R, 3) BGR uint8 -> (N, 3, R, R) RGB in [0, 1], as the network takes faces."""
    import torch

    return torch.from_numpy(images[..., ::-1].copy()).permute(0, 3, 1, 2).float().div_(255.0)


def publish_model(run: FinishedRun, ledger: Any, watch: ConsentWatch) -> tuple[str, int]:
    """The weights, staged, renamed to model.safetensors inside their `model.trained` entry's
    transaction (consent re-checked there; a refusal or a failed append leaves no weights); then
    model.json (a copy for people); (fingerprint, ledger seq)."""
    from faceswap.model.weights import WEIGHTS_FILE, fingerprint, save_weights
    from faceswap.staging import Staging

    request, module, grant = run.request, run.module, run.grant
    state = module.network.state_dict()
    weights_id, hparams = fingerprint(state), run.hparams
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
        **({"mark": run.mark} if run.mark is not None else {}),
        **(
            {"occlusion_model": run.datamodule.occlusion_model}
            if getattr(run.datamodule, "occlusion_model", None)
            else {}
        ),
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
    with Staging.open(request.workspace, "train") as staging:
        staged = save_weights(staging.folder, state, hparams)
        moves = [(staged, run.model_dir / WEIGHTS_FILE)]
        entry = staging.commit(ledger, "model.trained", data, moves, guard=watch.final)
    info = {
        "note": "informational copy; what this model is and under which consent is its model.trained ledger entry",
        "name": request.name,
        "ledger_seq": entry.seq,
        **described,
        "consent_grant": grant.to_json(),
        "losses": run.losses,
        "nan_recoveries": module.recoveries,
        "fingerprint": weights_id,
        "weights": WEIGHTS_FILE,
        "checkpoint": "checkpoints/last.ckpt",
        "smoke_run": run.smoke,
        "precision": str(run.trainer.precision),
    }
    write_atomic(run.model_dir / "model.json", json.dumps(info, indent=2, default=str))
    return weights_id, entry.seq
