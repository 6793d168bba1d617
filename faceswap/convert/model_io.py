"""Opening a trained model for conversion: the ledger, not the model folder, says what it is.

The weights are read as tensors only (safetensors; a legacy model.pt through torch's weights-only
unpickler), fingerprinted, and looked up among the verified ledger's `model.trained` entries. That
signed entry names the architecture, the subjects, the purpose and the consent records; the gate
checks those records now. model.json is a convenience copy for people and is never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.consent.gate import ConsentGate, ConsentGrant
from faceswap.consent.registry import ConsentStore
from faceswap.convert.render import FaceRenderer
from faceswap.errors import BadInput
from faceswap.faces.align import LEGACY_TEMPLATE, Alignment
from faceswap.ledger import Entry, watermark_keys
from faceswap.ledger.watermark_keys import WatermarkKeys


@dataclass(frozen=True)
class AuthorizedModel:
    """A network whose weights a signed `model.trained` entry names, under consent that holds now."""

    folder: Path
    weights_path: Path
    entry: Entry
    grant: ConsentGrant
    fingerprint: str
    renderer: FaceRenderer  # the network on its device; the Swapper and the Dubber mark each frame painted with it
    marks: WatermarkKeys  # the workspace's watermark secrets: what the Swapper marks this model's frames with

    @property
    def name(self) -> str:
        return str(self.entry.data.get("name", self.folder.name))

    @property
    def resolution(self) -> int:
        return int(self.entry.data["resolution"])

    @property
    def alignment(self) -> Alignment:
        """How the model's facesets were cropped (signed in its entry); older models: five points."""
        recorded = (self.entry.data.get("hparams") or {}).get("alignment")
        return Alignment.parse(recorded or LEGACY_TEMPLATE)


def load_model(store: ConsentStore, folder: Path, device: str | None = None) -> AuthorizedModel:
    """The model in `folder`, if the ledger knows its weights and its consent holds; else refused."""
    import torch

    from faceswap.model.weights import SWAP, find_trained, fingerprint, model_type, read_weights

    if not folder.is_dir():
        raise BadInput(f"{folder}: not a model folder")
    state, file_hparams, weights_path = read_weights(folder)
    weights_id = fingerprint(state)
    entries = store.ledger.entries()
    entry = find_trained(entries, weights_id, folder)
    if model_type(entry.data) != SWAP:
        raise BadInput(
            f"{folder}: an {model_type(entry.data)} segmenter, not a swap model (use it with --mask occlusion "
            "--mask-model)"
        )
    grant = ConsentGate(store).authorize_model(entry, entries)
    hparams = entry.data.get("hparams") or file_hparams  # the signed entry first; legacy entries lack it
    network = _build(hparams, state, folder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    marks = watermark_keys.for_writing(store.ledger, store.workspace.keys_dir)
    renderer = FaceRenderer(network.to(device).eval(), device, dtype)
    return AuthorizedModel(folder, weights_path, entry, grant, weights_id, renderer, marks)


def _build(hparams: dict[str, Any], state: dict[str, Any], folder: Path) -> Any:
    from faceswap.model.networks import ModelConfig, build_network

    try:
        config = ModelConfig(
            str(hparams["architecture"]),
            int(hparams["resolution"]),
            int(hparams["e_dims"]),
            int(hparams["ae_dims"]),
            int(hparams["d_dims"]),
            int(hparams["d_mask_dims"]),
        )
        network = build_network(config)
        network.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = str(error).splitlines()[0]
        raise BadInput(f"{folder}: the weights do not fit the recorded architecture ({first})") from None
    return network
