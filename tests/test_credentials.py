"""Content Credentials: every written format carries a manifest that c2pa's own Reader validates and
trusts under our anchor; tampering with the media or moving a manifest is caught; failures leave nothing."""

from __future__ import annotations

import json
import os
import stat
import struct
from fractions import Fraction
from pathlib import Path

import av
import c2pa
import cv2
import numpy as np
import pytest
from media_helpers import make_clip, panning_frames

from faceswap.errors import BadInput, CheckFailed
from faceswap.provenance.credentials import (
    INVALID,
    SOFT_BINDING_ALG,
    TRUSTED,
    VALID,
    CredentialFacts,
    IngredientRef,
    load_identity,
    load_or_create_identity,
    read_credentials,
    root_fingerprint_of,
    sidecar_path,
    sign_file,
    write_trust_anchor,
)
from faceswap.provenance.credentials.common import COMPOSITE, TRAINED, settings
from faceswap.provenance.credentials.identity import CHAIN, ROOT_CERT, SIGNER_KEY

FORMATS = ["png", "jpg", "mp4", "mov", "exr"]


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return load_or_create_identity(tmp_path_factory.mktemp("ws") / "keys")


@pytest.fixture(scope="module")
def other_identity(tmp_path_factory):
    return load_or_create_identity(tmp_path_factory.mktemp("other") / "keys")


def facts(token: str = "0123456789ab", **overrides) -> CredentialFacts:
    values = dict(
        token=token,
        seq=42,
        prev_hash="ab" * 32,
        registrar_key_id="1234567890abcdef",
        producer="convert",
        model_fingerprint="ef" * 32,
        consent_record_ids=("rec-a-1", "rec-b-1"),
    )
    values.update(overrides)
    return CredentialFacts(**values)


def write_image(path: Path, shift: int = 0) -> Path:
    frame = np.roll(panning_frames(1, (320, 240))[0], shift, axis=1)
    assert cv2.imwrite(str(path), frame)
    return path


def write_exr(path: Path, shift: int = 0) -> Path:
    """A real OpenEXR file (half-float RGB) from FFmpeg's encoder: the wheel's OpenCV has no EXR writer."""
    image = np.roll(panning_frames(1, (96, 64))[0], shift, axis=1)
    codec = av.CodecContext.create("exr", "w")
    codec.width, codec.height, codec.pix_fmt, codec.time_base = 96, 64, "gbrpf32le", Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="gbrpf32le")
    path.write_bytes(b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)]))
    assert path.read_bytes()[:4] == b"\x76\x2f\x31\x01"  # OpenEXR magic
    return path


def make_media(folder: Path, kind: str, shift: int = 0, name: str = "out") -> Path:
    path = folder / f"{name}.{kind}"
    if kind in ("png", "jpg"):
        return write_image(path, shift)
    if kind == "exr":
        return write_exr(path, shift)
    return make_clip(path, count=6 + shift, size=(320, 240))


def signed(folder: Path, kind: str, identity, shift: int = 0, name: str = "out", **fact_overrides) -> Path:
    path = make_media(folder, kind, shift, name)
    sign_file(path, facts(**fact_overrides), identity).commit()
    return path


def decoded(path: Path) -> np.ndarray:
    if path.suffix in (".png", ".jpg"):
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="bgr24") for f in container.decode(video=0)])


def c2pa_state(path: Path, anchor_pem: bytes) -> str:
    """Ask c2pa directly (not our reader) what it makes of a file and its sidecar."""
    with c2pa.Context.from_dict(settings(anchor_pem.decode())) as context, open(path, "rb") as media:
        sidecar = sidecar_path(path)
        manifest = sidecar.read_bytes() if path.suffix == ".exr" else None
        kind = {".exr": "image/x-exr", ".mov": "video/quicktime"}.get(path.suffix, path.suffix[1:])
        with c2pa.Reader(kind, media, manifest, context) as reader:
            return reader.get_validation_state()


# --- identity -------------------------------------------------------------------------------------


def test_identity_files_are_private_and_a_second_call_loads_them(tmp_path):
    keys = tmp_path / "keys"
    first = load_or_create_identity(keys)
    folder = keys / "c2pa"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    before = {}
    for name in (ROOT_CERT, CHAIN, SIGNER_KEY):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
        before[name] = (folder / name).read_bytes()
    second = load_or_create_identity(keys)
    assert second.root_fingerprint == first.root_fingerprint
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert first.root_fingerprint == root_fingerprint_of(first.root_pem)
    assert "PRIVATE" not in repr(first)


def test_signing_leaf_is_an_end_entity_c2pa_accepts(identity):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    leaf, root = x509.load_pem_x509_certificates(identity.chain_pem)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def _fingerprint_in(keys: str) -> str:
    return load_or_create_identity(Path(keys)).root_fingerprint


def test_processes_creating_the_identity_at_once_agree_on_one(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        fingerprints = set(pool.map(_fingerprint_in, [str(tmp_path / "keys")] * 8))
    assert len(fingerprints) == 1
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["c2pa"]  # no staging folder left


@pytest.mark.parametrize("damage", ["missing key", "garbage chain", "foreign key", "foreign root", "ed25519 key"])
def test_a_damaged_identity_is_refused_and_never_replaced(tmp_path, damage):
    keys = tmp_path / "keys"
    load_or_create_identity(keys)
    folder = keys / "c2pa"
    load_or_create_identity(tmp_path / "other")
    other = tmp_path / "other" / "c2pa"
    if damage == "missing key":
        (folder / SIGNER_KEY).unlink()
    elif damage == "garbage chain":
        (folder / CHAIN).write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    elif damage == "foreign key":
        (folder / SIGNER_KEY).write_bytes((other / SIGNER_KEY).read_bytes())
    elif damage == "ed25519 key":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (folder / SIGNER_KEY).write_bytes(pem)
    else:
        (folder / ROOT_CERT).write_bytes((other / ROOT_CERT).read_bytes())
    left = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(CheckFailed) as caught:
        load_or_create_identity(keys)
    assert "\n" not in str(caught.value) and str(folder) in str(caught.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == left


def test_a_pinned_root_is_enforced(tmp_path, identity):
    keys = tmp_path / "keys"
    with pytest.raises(CheckFailed, match="missing"):
        load_or_create_identity(keys, expected_root_fingerprint=identity.root_fingerprint)
    assert not (keys / "c2pa").exists()
    made = load_or_create_identity(keys)
    with pytest.raises(CheckFailed, match="pinned"):
        load_identity(keys, expected_root_fingerprint=identity.root_fingerprint)
    assert load_identity(keys, made.root_fingerprint).root_fingerprint == made.root_fingerprint


def test_trust_anchor_export_writes_the_root_and_never_overwrites(tmp_path, identity):
    out = write_trust_anchor(identity, tmp_path / "anchor.pem")
    assert out.read_bytes() == identity.root_pem
    assert root_fingerprint_of(out.read_bytes()) == identity.root_fingerprint
    with pytest.raises(BadInput, match="already exists"):
        write_trust_anchor(identity, out)


# --- signing and reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_carries_a_manifest_c2pa_trusts_under_our_anchor_only(tmp_path, kind, identity, other_identity):
    path = make_media(tmp_path, kind)
    partial = path.with_name(f".{path.name}.faceswap-partial-1{path.suffix}")
    path.rename(partial)
    pixels = None if kind == "exr" else decoded(partial)
    result = sign_file(partial, facts(duration_ms=240 if kind in ("mp4", "mov") else None), identity, final=path)
    assert result.embedded == (kind != "exr")
    assert not path.exists() and not sidecar_path(path).exists()  # nothing published before commit
    result.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name] + (["out.c2pa"] if kind == "exr" else []))
    if kind == "exr":
        assert path.read_bytes() == write_exr(tmp_path / "again.exr").read_bytes()  # bytes untouched
    else:
        assert np.array_equal(decoded(path), pixels)  # the manifest sits beside the pixels, not in them

    assert c2pa_state(path, identity.root_pem) == "Trusted"
    assert c2pa_state(path, other_identity.root_pem) == "Valid"

    report = read_credentials(path, identity.root_pem)
    assert report.state == TRUSTED and report.ok and report.media_hash_matched is True
    assert report.source == ("sidecar" if kind == "exr" else "embedded")
    assert report.label == result.manifest_label and report.title == path.name
    assert report.token == "0123456789ab" and report.watermarked
    assert report.soft_bindings[0].alg == SOFT_BINDING_ALG
    assert report.soft_bindings[0].scope == ({"timespan": {"start": 0, "end": 240}} if kind in ("mp4", "mov") else {})
    assert report.digital_source_type == TRAINED
    assert report.provenance["seq"] == 42 and report.provenance["prev_hash"] == "ab" * 32
    assert report.provenance["consent_record_ids"] == ["rec-a-1", "rec-b-1"]
    json.dumps(report.to_json())

    elsewhere = read_credentials(path, other_identity.root_pem)
    assert elsewhere.state == VALID and not elsewhere.ok
    assert any(r.startswith("signingCredential.untrusted") for r in elsewhere.reasons)
    assert read_credentials(path).state == VALID  # no anchor: signature and hashes checked, trust not


def test_manifest_holds_ids_and_hashes_of_the_ledger_and_the_input(tmp_path, identity):
    plate = IngredientRef("plate.mp4", "cd" * 32, "video/mp4")
    path = signed(tmp_path, "png", identity, source="composite", ingredients=(plate,))
    report = read_credentials(path, identity.root_pem)
    assert report.state == TRUSTED
    assert report.digital_source_type == COMPOSITE
    assert report.actions == ("c2pa.created", "c2pa.placed", "c2pa.watermarked.bound")
    assert report.ingredients == (
        {"title": "plate.mp4", "format": "video/mp4", "relationship": "componentOf", "sha256": "cd" * 32},
    )
    assert set(report.provenance) == {
        "schema",
        "seq",
        "prev_hash",
        "registrar_key_id",
        "model_fingerprint",
        "consent_record_ids",
        "producer",
    }


def test_manifest_hash_is_the_hash_of_the_store_c2pa_embedded(tmp_path, identity):
    import hashlib

    path = make_media(tmp_path, "png")
    result = sign_file(path, facts(), identity)
    chunk = next(body for kind, body, _ in png_chunks(path.read_bytes()) if kind == b"caBX")
    assert hashlib.sha256(chunk).hexdigest() == result.manifest_sha256


def test_a_file_without_credentials_is_absent(tmp_path, identity):
    for kind in FORMATS:
        report = read_credentials(make_media(tmp_path, kind), identity.root_pem)
        assert report.state == "absent" and not report.present and report.token is None


# --- tampering -------------------------------------------------------------------------------------


def png_chunks(data: bytes):
    """(type, body, offset of the chunk) for each PNG chunk: an attacker's view of the file."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        yield data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length], pos
        pos += 12 + length


def mp4_boxes(data: bytes):
    """(type, offset, size) of each top-level ISO BMFF box."""
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        yield kind, pos, size
        pos += size


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["png", "mp4"])
def test_flipped_media_bytes_make_the_manifest_invalid(tmp_path, kind, identity):
    path = signed(tmp_path, kind, identity)
    data = path.read_bytes()
    if kind == "png":
        _, body, offset = next(c for c in png_chunks(data) if c[0] == b"IDAT")
        flip(path, offset + 8 + len(body) // 2)
        code = "assertion.dataHash.mismatch"
    else:
        _, offset, size = next(b for b in mp4_boxes(data) if b[0] == b"mdat")
        flip(path, offset + size // 2)
        code = "assertion.bmffHash.mismatch"
    report = read_credentials(path, identity.root_pem)
    assert report.state == INVALID and not report.ok
    assert report.media_hash_matched is False
    assert any(r.startswith(code) for r in report.reasons), report.reasons
    assert report.token == "0123456789ab"  # still readable: verify can say which output it claims to be


def test_flipped_bytes_in_an_exr_break_its_sidecar(tmp_path, identity):
    path = signed(tmp_path, "exr", identity)
    flip(path, path.stat().st_size - 40)
    report = read_credentials(path, identity.root_pem)
    assert report.state == INVALID and report.media_hash_matched is False


def test_a_png_manifest_pasted_onto_other_pixels_is_invalid(tmp_path, identity):
    first = signed(tmp_path, "png", identity, name="a", token="aaaaaaaaaaaa")
    second = signed(tmp_path, "png", identity, shift=40, name="b", token="bbbbbbbbbbbb")
    a, b = first.read_bytes(), second.read_bytes()
    manifest_a = next(c for c in png_chunks(a) if c[0] == b"caBX")
    manifest_b = next(c for c in png_chunks(b) if c[0] == b"caBX")
    start_a, end_a = manifest_a[2], manifest_a[2] + 12 + len(manifest_a[1])
    start_b, end_b = manifest_b[2], manifest_b[2] + 12 + len(manifest_b[1])
    second.write_bytes(b[:start_b] + a[start_a:end_a] + b[end_b:])
    report = read_credentials(second, identity.root_pem)
    assert report.token == "aaaaaaaaaaaa"
    assert report.state == INVALID and report.media_hash_matched is False


def test_an_mp4_manifest_pasted_onto_another_video_is_invalid(tmp_path, identity):
    first = signed(tmp_path, "mp4", identity, name="a", token="aaaaaaaaaaaa")
    second = signed(tmp_path, "mp4", identity, shift=2, name="b", token="bbbbbbbbbbbb")
    a, b = first.read_bytes(), second.read_bytes()

    def store(data: bytes) -> tuple[int, int]:
        return next((o, o + s) for kind, o, s in mp4_boxes(data) if kind == b"uuid" and b"c2pa" in data[o : o + s])

    (start_a, end_a), (start_b, end_b) = store(a), store(b)
    second.write_bytes(b[:start_b] + a[start_a:end_a] + b[end_b:])
    report = read_credentials(second, identity.root_pem)
    assert report.token == "aaaaaaaaaaaa"
    assert report.state == INVALID and report.media_hash_matched is False


def test_a_sidecar_copied_next_to_another_file_is_invalid(tmp_path, identity):
    first = signed(tmp_path, "exr", identity, name="a", token="aaaaaaaaaaaa")
    second = write_exr(tmp_path / "b.exr", shift=7)
    sidecar_path(second).write_bytes(sidecar_path(first).read_bytes())
    report = read_credentials(second, identity.root_pem)
    assert report.source == "sidecar" and report.token == "aaaaaaaaaaaa"
    assert report.state == INVALID and report.media_hash_matched is False


@pytest.mark.parametrize("kind", ["png", "mp4"])
def test_a_token_edited_inside_the_manifest_is_invalid(tmp_path, kind, identity):
    path = signed(tmp_path, kind, identity)
    data = path.read_bytes()
    assert data.count(b"0123456789ab") == 1
    path.write_bytes(data.replace(b"0123456789ab", b"0123456789ac"))
    report = read_credentials(path, identity.root_pem)
    assert report.state == INVALID and report.token == "0123456789ac"
    assert any(r.startswith("assertion.hashedURI.mismatch") for r in report.reasons), report.reasons


def test_a_truncated_manifest_reads_as_invalid_not_a_crash(tmp_path, identity):
    path = signed(tmp_path, "exr", identity)
    sidecar = sidecar_path(path)
    sidecar.write_bytes(sidecar.read_bytes()[:-300])
    report = read_credentials(path, identity.root_pem)
    assert report.state == INVALID and report.reasons and "\n" not in report.reasons[0]


def test_a_stripped_manifest_leaves_the_watermark_that_names_the_same_token(tmp_path, identity):
    from faceswap.provenance.watermark.marker import Watermarker, format_token

    watermarker = Watermarker()
    token = 0x5EED0F00D123
    frame = watermarker.embed([panning_frames(1, (512, 288))[0]], token)[0]
    path = tmp_path / "out.png"
    cv2.imwrite(str(path), frame)
    sign_file(path, facts(token=format_token(token)), identity)
    assert read_credentials(path, identity.root_pem).token == format_token(token)

    shared = tmp_path / "shared.png"  # what a platform does: decode, re-encode, metadata gone
    cv2.imwrite(str(shared), cv2.imread(str(path)))
    assert read_credentials(shared, identity.root_pem).state == "absent"
    assert watermarker.detect([cv2.imread(str(shared))]).token == format_token(token)


# --- failures leave nothing behind -----------------------------------------------------------------


def test_c2pa_cannot_embed_into_exr_which_is_why_it_gets_a_sidecar(tmp_path, identity):
    exr = write_exr(tmp_path / "f.exr")
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity.chain_pem, identity.key_pem, None)
    definition = {"assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created"}]}}]}
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition) as builder, open(exr, "rb") as source:
        with pytest.raises(c2pa.C2paError.NotSupported):
            builder.sign(signer, "image/x-exr", source, open(os.devnull, "w+b"))


@pytest.mark.parametrize("kind", ["png", "mp4"])
def test_a_signing_failure_leaves_no_file_and_the_input_as_it_was(tmp_path, kind, identity):
    path = tmp_path / f"broken.{kind}"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000) if kind == "png" else os.urandom(4000))
    before = path.read_bytes()
    with pytest.raises(BadInput) as caught:
        sign_file(path, facts(), identity)
    assert "\n" not in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.read_bytes() == before


def test_an_unwritable_sidecar_destination_leaves_nothing(tmp_path, identity):
    exr = write_exr(tmp_path / "f.exr")
    final = tmp_path / "missing-folder" / "f.exr"
    with pytest.raises(BadInput):
        sign_file(exr, facts(), identity, final=final)
    assert [p.name for p in tmp_path.iterdir()] == ["f.exr"]


def test_discard_removes_what_signing_wrote(tmp_path, identity):
    exr = write_exr(tmp_path / ".f.exr.partial")
    result = sign_file(exr, facts(), identity, final=tmp_path / "f.exr")
    assert result.sidecar is not None and result.sidecar.exists()
    result.discard()
    assert list(tmp_path.iterdir()) == []


def test_facts_refuse_what_is_not_an_id_or_a_hash():
    with pytest.raises(ValueError, match="token"):
        facts(token="xyz")
    with pytest.raises(ValueError, match="prev_hash"):
        facts(prev_hash="00")
    with pytest.raises(ValueError, match="seq"):
        facts(seq=0)


def test_a_trust_anchor_that_is_not_a_certificate_is_bad_input(tmp_path, identity):
    path = signed(tmp_path, "png", identity)
    for anchor in (b"\xff\xfe", "not a certificate", identity.key_pem):
        with pytest.raises(BadInput, match="not a PEM certificate"):
            read_credentials(path, anchor)
