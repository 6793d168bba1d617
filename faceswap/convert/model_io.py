"""Loading a trained model directory (model.json + model.pt) for conversion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.errors import BadInput, CheckFailed


@dataclass
class LoadedModel:
    folder: Path
    info: dict[str, Any]
    network: Any  # SwapNetwork, eval mode, on `device`
    device: str
    dtype: Any

    @property
    def resolution(self) -> int:
        return int(self.info["resolution"])

    @property
    def fingerprint(self) -> str:
        return self.info["fingerprint"]


def load_model(folder: Path, device: str | None = None) -> LoadedModel:
    import torch

    from faceswap.model.module import weights_fingerprint
    from faceswap.model.networks import ModelConfig, SwapNetwork

    info_path = folder / "model.json"
    if not info_path.is_file():
        raise BadInput(f"{folder}: not a model folder (no model.json); train one with `faceswap train`")
    try:
        info = json.loads(info_path.read_text())
        saved = torch.load(folder / info["weights"], map_location="cpu", weights_only=False)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise BadInput(f"{folder}: model files are unreadable ({error})") from None
    hp = saved["hparams"]
    config = ModelConfig(
        hp["architecture"], hp["resolution"], hp["e_dims"], hp["ae_dims"], hp["d_dims"], hp["d_mask_dims"]
    )
    network = SwapNetwork(config)
    network.load_state_dict(saved["state_dict"])
    if weights_fingerprint(network) != info["fingerprint"]:
        raise CheckFailed(f"{folder}: weights do not match the fingerprint in model.json (the model was altered)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    network = network.to(device).eval()
    return LoadedModel(folder, info, network, device, dtype)
