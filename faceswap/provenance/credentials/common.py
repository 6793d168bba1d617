"""What signing and reading share: names in the manifest, which formats embed, c2pa's offline settings."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

SOFT_BINDING_ALG = "org.faceswap.watermark.v1"  # our watermark (docs/watermark.md): 48-bit token, 12 hex digits
PROVENANCE_LABEL = "org.faceswap.provenance"
PROVENANCE_SCHEMA = 1
TRANSPARENCY_LABEL = "org.faceswap.transparency"  # the output's transparency-log leaf, checkpoint and proof
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"
ALGORITHMIC = IPTC + "algorithmicMedia"  # made by an algorithm with no training data (the doctor's test card)
SOURCE_TYPES = {"trained": TRAINED, "composite": COMPOSITE, "algorithmic": ALGORITHMIC}
WATERMARK_ACTION = "c2pa.watermarked.bound"  # C2PA 2.3+: a watermark that is this manifest's soft binding
WATERMARK_ACTIONS = frozenset({WATERMARK_ACTION, "c2pa.watermarked"})  # the latter: C2PA <= 2.2 spelling
SIDECAR_SUFFIX = ".c2pa"

# Formats whose manifest lives inside the file. c2pa-python can embed into more (WebP, TIFF, ...);
# these are the ones the sink writes and the tests prove. Anything else gets a sidecar.
EMBEDDED = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
}
OTHER_TYPES = {".exr": "image/x-exr", ".mkv": "video/x-matroska", ".tif": "image/tiff", ".tiff": "image/tiff"}


def embeds(path: Path) -> bool:
    return Path(path).suffix.lower() in EMBEDDED


def media_type(path: Path) -> str:
    """The MIME type c2pa is told and the manifest's `format` says."""
    suffix = Path(path).suffix.lower()
    return (
        EMBEDDED.get(suffix)
        or OTHER_TYPES.get(suffix)
        or mimetypes.guess_type(f"x{suffix}")[0]
        or ("application/octet-stream")
    )


def sidecar_path(path: Path) -> Path:
    """`frame.exr` -> `frame.c2pa`: the name c2pa-rs and c2patool look for beside an asset."""
    return Path(path).with_suffix(SIDECAR_SUFFIX)


def settings(trust_anchor_pem: str | None = None) -> dict[str, Any]:
    """Offline: no remote manifests, no OCSP, no network hosts; trust only the anchor given."""
    config: dict[str, Any] = {
        "verify": {
            "verify_after_sign": True,
            "verify_after_reading": True,
            "verify_trust": True,
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
        },
        "core": {"allowed_network_hosts": []},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust_anchor_pem is not None:
        config["trust"] = {"trust_anchors": trust_anchor_pem}  # replaces c2pa's built-in anchors
    return config


def context(trust_anchor_pem: str | None = None):
    import c2pa

    return c2pa.Context.from_dict(settings(trust_anchor_pem))
