"""What runs inside the Trainer besides the model: Lightning Callbacks for the consent watch, the
preview grids and the loss history, and the checkpoint writer.

Under DDP every rank runs the same callbacks. A decision that stops training is taken by all ranks
together (one all-reduce of a flag at each step boundary and at each checkpoint), so a rank that saw
a revocation never leaves the others waiting in a collective; previews are written on rank zero, and
a preview refused inside its ledger transaction stops every rank at the next step boundary.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.consent.gate import ConsentRefused
from faceswap.consent.watch import ConsentWatch
from faceswap.errors import CheckFailed, ConsentDenied


def consent_callback(watch: ConsentWatch) -> Any:
    """Binds every rank to the run's grant: the same records as rank zero's grant at setup, a
    revocation seen by the watch stops every rank before its next step, and a checkpoint is written
    only when consent holds as it is saved (the module puts the grant in it)."""
    import pytorch_lightning as pl
    import torch

    def together(trainer: Any, pl_module: Any, refused: bool, why: str) -> None:
        if trainer.world_size > 1:
            flag = torch.tensor([1.0 if refused else 0.0], device=pl_module.device)
            refused = bool(trainer.strategy.reduce(flag, reduce_op="max").item() > 0)
        if refused:
            watch.poll()  # this rank's own refusal, naming the record
            watch.check_now()  # another rank's: this rank re-checks and finds it too
            raise ConsentRefused(why)

    class ConsentCallback(pl.Callback):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if trainer.world_size > 1:
                ours = sorted((r.record_id, r.record_sha256) for r in watch.grant.records)
                theirs = trainer.strategy.broadcast(ours, src=0)
                together(trainer, pl_module, theirs != ours, "this rank's consent grant differs from rank zero's")

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            together(trainer, pl_module, watch.refusal is not None, "consent was refused on another rank")

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            try:
                watch.check_now()
                refused = False
            except ConsentDenied:
                refused = True
            together(trainer, pl_module, refused, "consent was refused on another rank; no checkpoint written")

    return ConsentCallback()


def atomic_checkpoints() -> Any:
    """Lightning's checkpoint writer, writing beside the checkpoint and renaming it into place
    (Lightning's own goes through the system's temporary folder, which may be another file system,
    so a kill during its copy would leave half a checkpoint that resume cannot read)."""
    import torch
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)  # weights and optimiser state, no pixels; renamed into place below
            final = Path(path)
            final.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(final, buffer.getvalue())

    return AtomicCheckpointIO()


class LossHistory:
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


def preview_callback(name: str, model_dir: Path, sink: Any, watch: ConsentWatch) -> Any:
    """A Lightning Callback that writes preview grids every `model.preview_every` steps and at the
    end, through the output sink (marked, logged under the run's consent, re-checked inside the
    entry's transaction), on rank zero only, and shows the marked grid to the loggers. A preview
    that consent refuses is not written and stops the run at the next step boundary."""
    import pytorch_lightning as pl

    from faceswap.media import read_image
    from faceswap.model.module import weights_fingerprint
    from faceswap.provenance.output.sink import OutputContext

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
            if not trainer.is_global_zero or self.last_step == step or watch.refusal is not None:
                return
            self.last_step = step
            context = OutputContext(
                producer="train.preview",
                model_fingerprint=weights_fingerprint(pl_module.network),
                consent_record_ids=tuple(watch.grant.record_ids),
                settings={"model": name, "step": step, "columns": "A, A->A, A->B, B, B->B, B->A"},
                guard=watch,
            )
            try:
                written = sink.write_image(
                    model_dir / "previews" / f"step-{step:07d}.png", pl_module.preview_grid(), context
                )
            except ConsentDenied as refused:
                watch.refuse(refused)  # every rank stops together, at the next step boundary
                return
            except CheckFailed as unreadable:  # the grid's mark did not read back: no preview, not no model
                print(f"faceswap: preview at step {step} not written: {unreadable}", file=sys.stderr, flush=True)
                return
            self.paths.append(str(written.path))
            marked = read_image(written.path)
            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "add_image"):
                    experiment.add_image("preview", marked[:, :, ::-1].copy(), step, dataformats="HWC")

    return Previews()
