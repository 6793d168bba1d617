"""Read and check a file's Content Credentials with c2pa's own Reader and validation, offline.

The state is c2pa's: `trusted` (valid, and the signer chains to the trust anchor given), `valid`
(signature, assertion hashes and the media hash all check out, but the signer is not under a given
anchor, or no anchor was given), `invalid` (anything else: c2pa's failure codes are the reasons),
`absent` (no manifest in the file and no sidecar). Nothing here parses JUMBF itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faceswap.errors import BadInput
from faceswap.limits import VERIFY
from faceswap.provenance.credentials import common

ABSENT, VALID, TRUSTED, INVALID = "absent", "valid", "trusted", "invalid"
STATES = {"Trusted": TRUSTED, "Valid": VALID, "Invalid": INVALID}
HARD_BINDINGS = ("assertion.dataHash.", "assertion.bmffHash.", "assertion.boxesHash.", "assertion.collectionHash.")
UNTRUSTED = "signingCredential.untrusted"


@dataclass(frozen=True)
class SoftBinding:
    alg: str
    value: str
    scope: dict[str, Any]


@dataclass(frozen=True)
class CredentialReport:
    path: str
    state: str  # absent | valid | trusted | invalid
    source: str | None = None  # embedded | sidecar
    trust_anchor: str | None = None  # sha256 of the anchor the trust check used, None: no anchor given
    reasons: tuple[str, ...] = ()  # c2pa failure codes with their explanations
    label: str | None = None  # the active manifest's label (urn:c2pa:...)
    title: str | None = None
    digital_source_type: str | None = None
    actions: tuple[str, ...] = ()
    soft_bindings: tuple[SoftBinding, ...] = ()
    provenance: dict[str, Any] | None = None  # our org.faceswap.provenance assertion, as signed
    transparency: dict[str, Any] | None = None  # our org.faceswap.transparency assertion: leaf, checkpoint, path
    media_hash_matched: bool | None = None  # c2pa's hard binding check: None when it did not run
    signer: dict[str, Any] = field(default_factory=dict)  # issuer, common name, alg from the signature
    ingredients: tuple[dict[str, Any], ...] = ()

    @property
    def present(self) -> bool:
        return self.state != ABSENT

    @property
    def ok(self) -> bool:
        """Valid and signed under the trust anchor: a manifest is believed from no one else (a valid
        one with no anchor to check it against is from an unknown signer)."""
        return self.state == TRUSTED

    @property
    def token(self) -> str | None:
        """The watermark token our soft binding carries (first block), if any."""
        for binding in self.soft_bindings:
            if binding.alg == common.SOFT_BINDING_ALG:
                return binding.value
        return None

    @property
    def watermarked(self) -> bool:
        return any(action in common.WATERMARK_ACTIONS for action in self.actions)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(present=self.present, ok=self.ok, token=self.token, watermarked=self.watermarked)
        data["reasons"] = list(self.reasons)
        data["actions"] = list(self.actions)
        data["soft_bindings"] = [asdict(b) for b in self.soft_bindings]
        data["ingredients"] = list(self.ingredients)
        return data


def read_credentials(
    path: str | Path, trust_anchor_pem: bytes | str | None = None, max_bytes: int = VERIFY.file_bytes
) -> CredentialReport:
    """Check the manifest of `path` (embedded, or else its `.c2pa` sidecar) against `trust_anchor_pem`.

    c2pa holds the whole file (and the sidecar) in memory to check its hashes, so a file or sidecar
    larger than `max_bytes` is LimitExceeded before c2pa sees it. Raises BadInput when the file cannot
    be read; a manifest c2pa cannot parse is `invalid`.
    """
    import c2pa

    from faceswap.provenance.credentials.identity import root_fingerprint_of

    path = Path(path)
    _check_sizes(path, max_bytes)
    anchor_id = root_fingerprint_of(trust_anchor_pem) if trust_anchor_pem is not None else None  # or BadInput
    anchor = trust_anchor_pem.decode("ascii") if isinstance(trust_anchor_pem, bytes) else trust_anchor_pem
    base = {"path": str(path), "trust_anchor": anchor_id}
    sidecar = common.sidecar_path(path)
    kind = common.media_type(path)
    source = None
    try:
        with open(path, "rb") as media, common.context(anchor) as context:
            reader = None
            if common.embeds(path):
                source = "embedded"
                reader = c2pa.Reader.try_create(kind, media, None, context)
            if reader is None and sidecar.is_file():
                source = "sidecar"
                media.seek(0)
                reader = c2pa.Reader(kind, media, sidecar.read_bytes(), context)
            if reader is None:
                return CredentialReport(state=ABSENT, **base)
            with reader:
                store = reader.json()
    except OSError as error:
        raise BadInput(f"{path}: cannot read ({error.strerror or error})") from None
    except c2pa.C2paError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        return CredentialReport(state=INVALID, source=source, reasons=(reason,), **base)
    return _report(store, source, base)


def _check_sizes(path: Path, max_bytes: int) -> None:
    limits = dataclasses.replace(VERIFY, file_bytes=max_bytes)
    for item in (path, common.sidecar_path(path)):
        try:
            size = item.stat().st_size
        except OSError:
            continue  # a missing file is reported by the read itself
        limits.check_file_size(item, size)


def _report(store_json: str, source: str | None, base: dict[str, Any]) -> CredentialReport:
    import json

    store = json.loads(store_json)
    label = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(label) if label else None
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = results.get("failure") or []
    successes = results.get("success") or []
    reasons = tuple(f"{f.get('code')}: {f.get('explanation', '')}".rstrip(": ") for f in failures)
    state = STATES.get(store.get("validation_state", ""), INVALID)
    if manifest is None:
        return CredentialReport(state=INVALID, source=source, reasons=reasons or ("no active manifest",), **base)
    assertions = manifest.get("assertions") or []
    actions = [a for item in assertions if item.get("label", "").startswith("c2pa.actions") for a in _actions(item)]
    created = next((a for a in actions if a.get("action") == "c2pa.created"), {})
    provenance = next((a.get("data") for a in assertions if a.get("label") == common.PROVENANCE_LABEL), None)
    transparency = next((a.get("data") for a in assertions if a.get("label") == common.TRANSPARENCY_LABEL), None)
    signature = manifest.get("signature_info") or {}
    return CredentialReport(
        state=state,
        source=source,
        reasons=reasons,
        label=label,
        title=manifest.get("title"),
        digital_source_type=created.get("digitalSourceType"),
        actions=tuple(str(a.get("action")) for a in actions),
        soft_bindings=tuple(_soft_bindings(assertions)),
        provenance=provenance if isinstance(provenance, dict) else None,
        transparency=transparency if isinstance(transparency, dict) else None,
        media_hash_matched=_hard_binding(successes, failures),
        signer={k: signature[k] for k in ("issuer", "common_name", "alg") if k in signature},
        ingredients=tuple(_ingredient(i) for i in manifest.get("ingredients") or []),
        **base,
    )


def _actions(assertion: dict[str, Any]) -> list[dict[str, Any]]:
    data = assertion.get("data") or {}
    return [a for a in data.get("actions") or [] if isinstance(a, dict)]


def _soft_bindings(assertions: list[dict[str, Any]]) -> list[SoftBinding]:
    found = []
    for item in assertions:
        if not item.get("label", "").startswith("c2pa.soft-binding"):
            continue
        data = item.get("data") or {}
        for block in data.get("blocks") or []:
            if isinstance(block, dict) and isinstance(block.get("value"), str):
                found.append(SoftBinding(str(data.get("alg")), block["value"], dict(block.get("scope") or {})))
    return found


def _hard_binding(successes: list[dict[str, Any]], failures: list[dict[str, Any]]) -> bool | None:
    def hits(items: list[dict[str, Any]]) -> bool:
        return any(str(i.get("code", "")).startswith(HARD_BINDINGS) for i in items)

    if hits(failures):
        return False
    return True if hits(successes) else None


def _ingredient(item: dict[str, Any]) -> dict[str, Any]:
    metadata = item.get("metadata") or {}
    return {
        "title": item.get("title"),
        "format": item.get("format"),
        "relationship": item.get("relationship"),
        "sha256": metadata.get("org.faceswap.sha256"),
    }
