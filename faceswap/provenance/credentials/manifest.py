"""Sign a finished media file with a C2PA manifest (c2pa-python, offline, no time-stamp authority).

JPEG, PNG, MP4 and MOV carry the manifest inside the file; any other format gets a sidecar
(`frame.exr` -> `frame.c2pa`) whose hard binding is a sha256 over the whole file. The file is
replaced through a hidden temporary and a rename, so a failure leaves the input as it was and no
temporary behind. The sink calls `sign_file` inside its ledger transaction and `commit` in the
commit hook; the manifest holds the ledger head at that moment (seq + prev_hash), and the ledger
entry holds the manifest's hash (the other way round would be circular).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faceswap import __version__
from faceswap.errors import BadInput
from faceswap.provenance.credentials import common
from faceswap.provenance.credentials.identity import SigningIdentity

HEX = re.compile(r"[0-9a-f]+")


def _hex(value: str, digits: int, name: str) -> None:
    if not (isinstance(value, str) and len(value) == digits and HEX.fullmatch(value)):
        raise ValueError(f"{name} must be {digits} lowercase hex digits, got {value!r}")


@dataclass(frozen=True)
class IngredientRef:
    """A file an output was made from (the input video of a conversion), named by its hash only."""

    title: str
    sha256: str
    media_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        _hex(self.sha256, 64, "ingredient sha256")


@dataclass(frozen=True)
class CredentialFacts:
    """What one output's manifest says. Ids and hashes only: no names, embeddings or other personal data."""

    token: str  # the watermark token, 12 hex digits
    seq: int  # seq of the ledger entry that will record this output
    prev_hash: str  # entry_hash of the ledger head when the manifest is signed
    registrar_key_id: str
    producer: str  # "convert", "demo", "train.preview", ...
    model_fingerprint: str | None = None
    consent_record_ids: tuple[str, ...] = ()
    source: str = "trained"  # trained | composite (a swap into real footage) | algorithmic (no model)
    duration_ms: int | None = None  # video: the soft binding's timespan; None: the whole file
    ingredients: tuple[IngredientRef, ...] = ()
    title: str | None = None  # the name the file is published under; default: the final path's name
    transparency: dict[str, Any] | None = None  # ledger/tlog.OutputProof.assertion(): leaf, checkpoint, path

    def __post_init__(self) -> None:
        _hex(self.token, 12, "token")
        _hex(self.prev_hash, 64, "prev_hash")
        if not isinstance(self.seq, int) or self.seq < 1:
            raise ValueError(f"seq must be a positive integer, got {self.seq!r}")
        if self.source not in common.SOURCE_TYPES:
            raise ValueError(f"source must be one of {', '.join(common.SOURCE_TYPES)}, got {self.source!r}")
        if self.duration_ms is not None and self.duration_ms < 0:
            raise ValueError("duration_ms must not be negative")
        object.__setattr__(self, "consent_record_ids", tuple(str(i) for i in self.consent_record_ids))
        object.__setattr__(self, "ingredients", tuple(self.ingredients))

    @property
    def digital_source_type(self) -> str:
        return common.SOURCE_TYPES[self.source]


@dataclass(frozen=True)
class SignedFile:
    """A signed file still under its temporary name; `commit` publishes it, `discard` removes it."""

    media: Path  # the signed media file (the path given to sign_file, replaced in place)
    final: Path  # where commit() puts it
    sidecar: Path | None  # the hidden temporary sidecar, for formats that cannot embed a manifest
    manifest_sha256: str  # sha256 of the manifest store bytes (embedded JUMBF, or the sidecar's content)
    manifest_label: str  # urn:c2pa:...; Reader reports it as the active manifest
    embedded: bool
    media_type: str

    @property
    def final_sidecar(self) -> Path | None:
        return common.sidecar_path(self.final) if self.sidecar is not None else None

    def commit(self) -> Path:
        """Rename into place: the sidecar first, so the media never appears without it."""
        published = None
        if self.sidecar is not None:
            published = common.sidecar_path(self.final)
            os.replace(self.sidecar, published)
        if self.media != self.final:
            try:
                os.replace(self.media, self.final)
            except OSError:
                if published is not None:
                    published.unlink(missing_ok=True)
                raise
        return self.final

    def discard(self) -> None:
        """Remove what sign_file wrote (the signed media under its temporary name and the sidecar)."""
        if self.sidecar is not None:
            self.sidecar.unlink(missing_ok=True)
        if self.media != self.final:
            self.media.unlink(missing_ok=True)


def _actions(facts: CredentialFacts, agent: dict[str, str], ingredient_labels: list[str]) -> list[dict[str, Any]]:
    """created (with its digital source type), placed (when there are ingredients), watermarked."""
    actions: list[dict[str, Any]] = [
        {
            "action": "c2pa.created",
            "digitalSourceType": facts.digital_source_type,
            "softwareAgent": agent,
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]
    if ingredient_labels:
        actions.append({"action": "c2pa.placed", "parameters": {"ingredientIds": ingredient_labels}})
    actions.append(
        {
            "action": common.WATERMARK_ACTION,
            "parameters": {"description": f"invisible watermark {common.SOFT_BINDING_ALG} in every frame"},
        }
    )
    return actions


def manifest_definition(facts: CredentialFacts, title: str, media_type: str, label: str) -> dict[str, Any]:
    """The c2pa-python manifest definition (docs/provenance.md explains each assertion)."""
    agent = {"name": "faceswap", "version": __version__}
    scope: dict[str, Any] = {}
    if facts.duration_ms is not None:
        scope = {"timespan": {"start": 0, "end": int(facts.duration_ms)}}
    ingredients = [
        {
            "title": item.title,
            "format": item.media_type,
            "relationship": "componentOf",
            "label": f"ingredient-{index}",
            "metadata": {"org.faceswap.sha256": item.sha256},
        }
        for index, item in enumerate(facts.ingredients)
    ]
    provenance = {
        "schema": common.PROVENANCE_SCHEMA,
        "seq": facts.seq,
        "prev_hash": facts.prev_hash,
        "registrar_key_id": facts.registrar_key_id,
        "model_fingerprint": facts.model_fingerprint,
        "consent_record_ids": list(facts.consent_record_ids),
        "producer": facts.producer,
    }
    binding = {"alg": common.SOFT_BINDING_ALG, "blocks": [{"scope": scope, "value": facts.token}], "pad": []}
    transparency = [{"label": common.TRANSPARENCY_LABEL, "data": facts.transparency}] if facts.transparency else []
    return {
        "label": label,
        "title": title,
        "format": media_type,
        "claim_generator_info": [agent],
        "ingredients": ingredients,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": _actions(facts, agent, [i["label"] for i in ingredients])}},
            {"label": "c2pa.soft-binding", "data": binding},
            {"label": common.PROVENANCE_LABEL, "data": provenance},
            *transparency,
        ],
    }


def sign_file(
    path: str | Path, facts: CredentialFacts, identity: SigningIdentity, final: str | Path | None = None
) -> SignedFile:
    """Sign the finished file at `path` (usually the sink's hidden partial file).

    `final` is the name it will be published under (default: `path`): it gives the manifest's
    title and the sidecar's name. Embedding formats are rewritten in place through a temporary;
    others keep their bytes and get a hidden temporary sidecar that `commit` renames. Raises
    BadInput (one line) when signing fails; nothing new is left on disk then.
    """
    import c2pa

    path = Path(path)
    final = Path(final) if final is not None else path
    kind = common.media_type(final)
    embedded = common.embeds(final)
    label = f"urn:c2pa:{uuid.uuid4()}"
    definition = manifest_definition(facts, facts.title or final.name, kind, label)
    if not path.is_file():
        raise BadInput(f"{path}: no file to sign")
    target = path if embedded else common.sidecar_path(final)
    temporary = target.with_name(f".{target.name}.c2pa-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    handle = _open_new(temporary)
    try:
        manifest = _sign(handle, path, kind, embedded, definition, identity)
        if embedded:
            os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, c2pa.C2paError | OSError):
            raise BadInput(f"{final.name}: Content Credentials signing failed: {_one_line(error)}") from None
        raise
    return SignedFile(
        media=path,
        final=final,
        sidecar=None if embedded else temporary,
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        manifest_label=label,
        embedded=embedded,
        media_type=kind,
    )


def _sign(
    handle: int, source_path: Path, kind: str, embedded: bool, definition: dict[str, Any], identity: SigningIdentity
) -> bytes:
    """Write the signed asset (embedded) or the manifest store (sidecar) to `handle`; return the store."""
    import c2pa

    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity.chain_pem, identity.key_pem, None)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(os.fdopen(handle, "w+b"))
        source = stack.enter_context(open(source_path, "rb"))
        context = stack.enter_context(common.context())
        signer = stack.enter_context(c2pa.Signer.from_info(info))
        builder = stack.enter_context(c2pa.Builder(definition, context=context))
        if embedded:
            manifest = builder.sign(signer, kind, source, out)
        else:
            builder.set_no_embed()
            manifest = builder.sign(signer, kind, source, _Discard())
            out.write(manifest)
        if not manifest:
            raise c2pa.C2paError("c2pa returned no manifest")
        out.flush()
        os.fsync(out.fileno())
    return manifest


def _open_new(path: Path) -> int:
    """A fresh file: never follows or reuses what is already at that name."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise BadInput(f"{path} already exists; refusing to write through it") from None
    except OSError as error:
        raise BadInput(f"cannot write {path}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


class _Discard:
    """A write-only sink for c2pa's copy of the asset when the manifest goes to a sidecar."""

    def __init__(self) -> None:
        self._size = 0
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._pos += len(data)
        self._size = max(self._size, self._pos)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        return None
