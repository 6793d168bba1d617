"""The workspace's Content Credentials signing identity: a local root CA and one signing leaf.

Made with `cryptography` on first use in `keys/c2pa/` (dir 0700, files 0600), beside the registrar
key. The root's private key is not kept: the root vouches for exactly one signing key, and the
root certificate is the trust anchor that people who verify our files are given. An identity that
exists is only ever loaded: a missing or damaged part is an error, never a reason to make a new one.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faceswap.errors import BadInput, CheckFailed

IDENTITY_DIR = "c2pa"
ROOT_CERT = "root.pem"
CHAIN = "signer-chain.pem"
SIGNER_KEY = "signer.key"
PARTS = (ROOT_CERT, CHAIN, SIGNER_KEY)
ALG = "es256"  # ECDSA P-256 / SHA-256: c2pa signs it offline and every C2PA validator reads it
ROOT_YEARS = 20
LEAF_YEARS = 10
CLOCK_SKEW = datetime.timedelta(minutes=5)

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class SigningIdentity:
    """PEM text as c2pa takes it, and the root's fingerprint (sha256 of its DER) for the ledger."""

    chain_pem: bytes = field(repr=False)  # signing leaf, then the root
    key_pem: bytes = field(repr=False)  # the leaf's private key, PKCS#8
    root_pem: bytes = field(repr=False)
    root_fingerprint: str
    folder: Path
    alg: str = ALG


def identity_dir(keys_dir: Path) -> Path:
    return Path(keys_dir) / IDENTITY_DIR


def load_or_create_identity(keys_dir: Path, expected_root_fingerprint: str | None = None) -> SigningIdentity:
    """The workspace identity; created only when none of its files exist and no root is expected.

    `expected_root_fingerprint` is the pinned root (from the ledger): a different root, or none at
    all where one is pinned, is refused rather than replaced.
    """
    folder = identity_dir(keys_dir)
    if not _any_part(folder):
        if expected_root_fingerprint is not None:
            raise CheckFailed(
                f"the Content Credentials identity (root {expected_root_fingerprint[:16]}) is missing from {folder}"
            )
        _create(folder)
    return load_identity(keys_dir, expected_root_fingerprint)


def load_identity(keys_dir: Path, expected_root_fingerprint: str | None = None) -> SigningIdentity:
    """Load and check an existing identity: every part present, the leaf issued by the root and
    matching its key, inside its validity period, and (when given) the pinned root."""
    folder = identity_dir(keys_dir)
    missing = [name for name in PARTS if not (folder / name).is_file()]
    if len(missing) == len(PARTS):
        raise CheckFailed(f"no Content Credentials identity in {folder}")
    if missing:
        raise CheckFailed(f"the Content Credentials identity in {folder} is damaged: {', '.join(missing)} missing")
    try:
        root_pem, chain_pem, key_pem = ((folder / name).read_bytes() for name in PARTS)
    except OSError as error:
        raise CheckFailed(f"the Content Credentials identity in {folder} is unreadable: {error.strerror}") from None
    root, leaf, key = _parse(folder, root_pem, chain_pem, key_pem)
    _check(folder, root, leaf, key)
    fingerprint = _fingerprint(root)
    if expected_root_fingerprint is not None and fingerprint != expected_root_fingerprint:
        raise CheckFailed(
            f"the Content Credentials root in {folder} is {fingerprint[:16]}, "
            f"but this workspace pinned {expected_root_fingerprint[:16]}"
        )
    return SigningIdentity(chain_pem, key_pem, root_pem, fingerprint, folder)


def write_trust_anchor(identity: SigningIdentity, out: Path) -> Path:
    """Write the root certificate (PEM) for people who verify our files; never overwrites `out`."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise BadInput(f"{out} already exists; choose a new file for the trust anchor")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        _write_new(tmp, identity.root_pem, 0o644)
        os.link(tmp, out)  # no-replace: a file that appeared meanwhile is kept
    except FileExistsError:
        raise BadInput(f"{out} already exists; choose a new file for the trust anchor") from None
    except OSError as error:
        raise BadInput(f"cannot write the trust anchor to {out}: {error.strerror or error}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def root_fingerprint_of(pem: bytes | str) -> str:
    """sha256 (hex) of the first certificate's DER in `pem`: how a trust anchor is named."""
    from cryptography import x509

    try:
        text = pem.decode("ascii") if isinstance(pem, bytes) else pem
        return _fingerprint(x509.load_pem_x509_certificate(text.encode("ascii")))
    except ValueError:  # UnicodeError is one
        raise BadInput("the trust anchor is not a PEM certificate") from None


def _any_part(folder: Path) -> bool:
    return any((folder / name).exists() or (folder / name).is_symlink() for name in PARTS)


def _fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _parse(folder: Path, root_pem: bytes, chain_pem: bytes, key_pem: bytes):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        root = x509.load_pem_x509_certificate(root_pem)
        chain = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckFailed(f"the Content Credentials identity in {folder} is damaged: {reason}") from None
    if len(chain) != 2 or chain[1] != root:
        raise CheckFailed(f"the Content Credentials identity in {folder} is damaged: {CHAIN} is not leaf + root")
    return root, chain[0], key


def _check(folder: Path, root: x509.Certificate, leaf: x509.Certificate, key: object) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def raw(public) -> bytes:
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    try:
        root.verify_directly_issued_by(root)
        leaf.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise CheckFailed(
            f"the Content Credentials identity in {folder} is damaged: the chain does not verify"
        ) from None
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)):
        raise CheckFailed(f"the Content Credentials identity in {folder} is damaged: the key is not EC P-256")
    if raw(key.public_key()) != raw(leaf.public_key()):
        raise CheckFailed(f"the Content Credentials identity in {folder} is damaged: key and certificate differ")
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert, name in ((leaf, "signing certificate"), (root, "root certificate")):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CheckFailed(
                f"the Content Credentials {name} in {folder} is valid only "
                f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}"
            )


def _create(keys_folder: Path) -> None:
    """Write the three files into a hidden folder and rename it into place: all or nothing."""
    parent = keys_folder.parent
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = parent / f".{IDENTITY_DIR}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    staging.mkdir(mode=0o700)
    try:
        for name, data in _issue().items():
            _write_new(staging / name, data, 0o600)
        _fsync_dir(staging)
        try:
            os.rename(staging, keys_folder)  # fails when another process made one meanwhile: keep theirs
        except OSError:
            if not _any_part(keys_folder):
                raise
        _fsync_dir(parent)
    except OSError as error:
        raise BadInput(f"cannot create the Content Credentials identity in {keys_folder}: {error}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _name(common: str, short: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "faceswap workspace"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common} {short}"),
        ]
    )


def _usage(*, signer: bool):
    """A signer signs content; the root signs only certificates."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def _issue() -> dict[str, bytes]:
    """A root CA and the end-entity signing leaf c2pa accepts (EC P-256, emailProtection EKU, SKI/AKI)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    short = root_ski.digest.hex()[:8]
    root_name = _name("faceswap Content Credentials root", short)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signer=False), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("faceswap Content Credentials signer", short))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=365 * LEAF_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        ROOT_CERT: root.public_bytes(pem),
        CHAIN: leaf.public_bytes(pem) + root.public_bytes(pem),
        SIGNER_KEY: leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)  # the process umask must not widen or narrow it


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
