"""Content Credentials (C2PA) for every output: the signing identity, signing, reading and checking.

See docs/provenance.md for what a manifest says and how a third party checks one with c2pa's tools.
"""

from faceswap.provenance.credentials.common import (
    PROVENANCE_LABEL,
    SOFT_BINDING_ALG,
    embeds,
    media_type,
    sidecar_path,
)
from faceswap.provenance.credentials.identity import (
    SigningIdentity,
    load_identity,
    load_or_create_identity,
    root_fingerprint_of,
    write_trust_anchor,
)
from faceswap.provenance.credentials.manifest import (
    CredentialFacts,
    IngredientRef,
    SignedFile,
    manifest_definition,
    sign_file,
)
from faceswap.provenance.credentials.reader import (
    ABSENT,
    INVALID,
    TRUSTED,
    VALID,
    CredentialReport,
    SoftBinding,
    read_credentials,
)

__all__ = [
    "ABSENT",
    "INVALID",
    "PROVENANCE_LABEL",
    "SOFT_BINDING_ALG",
    "TRUSTED",
    "VALID",
    "CredentialFacts",
    "CredentialReport",
    "IngredientRef",
    "SignedFile",
    "SigningIdentity",
    "SoftBinding",
    "embeds",
    "load_identity",
    "load_or_create_identity",
    "manifest_definition",
    "media_type",
    "read_credentials",
    "root_fingerprint_of",
    "sidecar_path",
    "sign_file",
    "write_trust_anchor",
]
