"""Model weights on disk: safetensors (tensors and a JSON string of hyperparameters, nothing that runs
on load) and the fingerprint that names the weights in the ledger. No Lightning import here:
conversion needs neither a Trainer nor pickle."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from faceswap.atomic import temp_path
from faceswap.errors import BadInput

WEIGHTS_FILE = "model.safetensors"
SWAP, OCCLUSION = "swap", "occlusion"  # what a `model.trained` entry's weights are (model_type)
LEGACY_WEIGHTS_FILE = "model.pt"  # written before safetensors; read with weights_only=True only
FORMAT = "faceswap.model.v1"


def fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every parameter and buffer, in name order: the model's identity in the ledger."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def model_type(data: Mapping[str, Any]) -> str:
    """What a `model.trained` entry describes: a swap model (entries before segmenters say nothing)
    or an occlusion segmenter."""
    return str(data.get("model_type", SWAP))


def find_trained(entries: list[Any], weights_id: str, folder: Path) -> Any:
    """The newest verified `model.trained` entry naming these weights; refused when none does."""
    from faceswap.consent.gate import ConsentRefused

    trained = [e for e in entries if e.kind == "model.trained" and e.data.get("fingerprint") == weights_id]
    if not trained:
        raise ConsentRefused(
            f"{folder}: no model.trained ledger entry names these weights (fingerprint {weights_id[:16]}): only models "
            "trained in this workspace are used, unaltered"
        )
    return trained[-1]


def save_weights(folder: Path, state: Mapping[str, torch.Tensor], hparams: dict[str, Any]) -> Path:
    """Write model.safetensors atomically; returns its path."""
    from safetensors.torch import save_file

    final = folder / WEIGHTS_FILE
    tmp = temp_path(final)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    try:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "hparams": json.dumps(hparams, sort_keys=True)})
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """(state dict, hyperparameters, file) from a model folder, as tensors and plain data only."""
    safe = folder / WEIGHTS_FILE
    legacy = folder / LEGACY_WEIGHTS_FILE
    if safe.is_file():
        return _read_safetensors(safe) + (safe,)
    if legacy.is_file():
        return _read_legacy(legacy) + (legacy,)
    raise BadInput(f"{folder}: not a model folder (no {WEIGHTS_FILE}); train one with `faceswap train`")


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
        hparams = json.loads(metadata.get("hparams", "{}"))
    except (SafetensorError, OSError, ValueError) as error:
        raise BadInput(f"{path}: not a readable safetensors weights file ({error})") from None
    if not isinstance(hparams, dict):
        raise BadInput(f"{path}: its hyperparameters are not a JSON object")
    return state, hparams


def _read_legacy(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """model.pt from before safetensors: the restricted unpickler (tensors, dicts, numbers, strings)."""
    import pickle

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state, hparams = saved["state_dict"], saved["hparams"]
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, TypeError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadInput(f"{path}: not a weights-only model file ({first}); nothing in it was run") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise BadInput(f"{path}: does not hold a state dict of tensors")
    return dict(state), dict(hparams)
