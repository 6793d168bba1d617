"""The `faceswap` command. Thin: each command's parser is built by one small function, each handler
calls one library function and prints. Imports are lazy so that quick commands (verify, --version)
do not pay for torch. Exit codes come from faceswap.errors.ExitCode alone."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from faceswap import __version__
from faceswap.errors import BadInput, ExitCode, FaceswapError
from faceswap.report import Report

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")
LEDGER_URL_HELP = (
    "a shared PostgreSQL ledger, postgresql://USER@HOST/DB (default $FACESWAP_LEDGER_URL, else the workspace's "
    "ledger.sqlite); keys/ and consent/ stay in the workspace"
)


@dataclass(frozen=True)
class Parents:
    """Options many commands share, declared once."""

    workspace: argparse.ArgumentParser
    json: argparse.ArgumentParser
    backend: argparse.ArgumentParser  # face analysis, for commands with no options of faceswap/convert/options.py
    limits: argparse.ArgumentParser  # the operator's inputs (extract, convert, dub ...)
    verify_limits: argparse.ArgumentParser  # files from strangers

    @property
    def both(self) -> list[argparse.ArgumentParser]:
        return [self.workspace, self.json]


def _parents() -> Parents:
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument("--workspace", type=Path, default=argparse.SUPPRESS, help="workspace root")
    workspace.add_argument("--ledger-url", default=argparse.SUPPRESS, metavar="URL", help=LEDGER_URL_HELP)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print machine-readable JSON")
    backend = argparse.ArgumentParser(add_help=False)
    from faceswap.convert import options
    from faceswap.limits import OPERATOR, VERIFY

    options.add_flags(backend, options.ANALYSIS)

    return Parents(workspace, as_json, backend, _limits_parser(OPERATOR), _limits_parser(VERIFY))


def _limits_parser(base: Any) -> argparse.ArgumentParser:
    """The input limits (faceswap/limits.py), one flag each, with `base`'s values as the defaults shown;
    every command that reads media takes them."""
    from faceswap.limits import FLAGS, describe

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("input limits (a file beyond one is refused, exit 2; see SECURITY.md)")
    for limit in FLAGS:
        group.add_argument(
            limit.flag,
            dest=f"limit_{limit.field}",
            metavar=limit.metavar,
            default=None,
            help=f"{limit.help} (default {describe(base, limit.field)})",
        )
    return parser


def _limits(args: argparse.Namespace, base: Any):
    """`base` (limits.VERIFY or limits.OPERATOR) with the limits raised or lowered on the command line."""
    from faceswap.limits import FLAGS, with_overrides

    return with_overrides(base, {f.field: getattr(args, f"limit_{f.field}", None) for f in FLAGS})


def _print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str))


def _show(report: Report, as_json: bool) -> int:
    """Print what a command's library function returned: its JSON, or its text (and its notes on
    stderr); its exit code is the command's."""
    if as_json:
        _print_json(report.to_json())
    else:
        print(report.text(), end="")
        for note in report.notes():
            print(note, file=sys.stderr)
    return int(report.exit_code)


def _from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """A library's request or options dataclass from the flags of the same names; `given` wins, and a
    flag left unset (None) leaves the library's default."""
    names = {f.name for f in fields(cls)} - given.keys()  # type: ignore[arg-type]
    flags = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return cls(**flags, **given)


def _workspace(args: argparse.Namespace):
    from faceswap.workspace import Workspace

    return Workspace.resolve(getattr(args, "workspace", None), getattr(args, "ledger_url", None))


def _store(args: argparse.Namespace):
    from faceswap.consent.registry import ConsentStore

    return ConsentStore(_workspace(args))


def _ledger(args: argparse.Namespace, writable: bool = False):
    from faceswap.ledger import open_ledger

    return open_ledger(_workspace(args), writable=writable)


def _with_progress(label: str, enabled: bool, work: Callable[[Callable[[int, int], None] | None], Any]) -> Any:
    """Run `work(progress)` under a rich progress bar on stderr (none for --json)."""
    if not enabled:
        return work(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    task = bar.add_task(label, total=None)
    with bar:
        return work(lambda done, total: bar.update(task, completed=done, total=total or None))


# faces


def cmd_faces_detect(args: argparse.Namespace) -> int:
    from faceswap.faces.detect import detect_faces
    from faceswap.limits import OPERATOR

    return _show(detect_faces(args.image, args.backend, args.model_root, _limits(args, OPERATOR)), args.json)


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from faceswap.faces.fetch import fetch_pack

    fetched = _with_progress(
        f"fetch {args.pack}",
        not args.json,
        lambda update: fetch_pack(args.pack, args.model_root, args.url, args.sha256, update),
    )
    if args.json:
        _print_json({**vars(fetched), "folder": str(fetched.folder)})
    elif fetched.already_installed:
        print(f"{fetched.pack} is already installed in {fetched.folder}")
    else:
        print(f"{fetched.pack} installed in {fetched.folder}: {', '.join(fetched.files)} (sha256 {fetched.sha256})")
    return ExitCode.OK


def _add_models(commands, p: Parents) -> None:
    from faceswap.convert import options

    models = commands.add_parser("models", help="face model packs").add_subparsers(
        dest="models_command", metavar="ACTION"
    )
    fetch = models.add_parser("fetch", parents=[p.json], help="download and install a model pack (insightface)")
    fetch.add_argument("backend", choices=["insightface"])
    fetch.add_argument("--pack", default="buffalo_l")
    options.add_flags(fetch, options.INSIGHTFACE)
    fetch.add_argument("--url", default=None, help="download from here instead of the pack's release address")
    fetch.add_argument("--sha256", default=None, help="refuse the download unless it has this sha256")
    fetch.set_defaults(handler=cmd_models_fetch)


def _add_faces(commands, p: Parents) -> None:
    faces = commands.add_parser("faces", help="face analysis").add_subparsers(dest="faces_command", metavar="ACTION")
    detect = faces.add_parser("detect", parents=[p.json, p.backend, p.limits], help="list the faces in an image")
    detect.add_argument("image", type=Path)
    detect.set_defaults(handler=cmd_faces_detect)


# consent


def cmd_consent_register(args: argparse.Namespace) -> int:
    from faceswap.consent.registry import Registration
    from faceswap.consent.reports import register_subject

    return _show(register_subject(_store(args), _from_args(Registration, args)), args.json)


def cmd_consent_list(args: argparse.Namespace) -> int:
    from faceswap.consent.reports import list_records

    return _show(list_records(_store(args)), args.json)


def cmd_consent_show(args: argparse.Namespace) -> int:
    from faceswap.consent.reports import show_record

    return _show(show_record(_store(args), args.id), args.json)


def cmd_consent_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    revocation = store.revoke(args.id, args.reason)
    seq = store.load().revoked[revocation.record_id].seq
    print(f"revoked {revocation.record_id} at {revocation.revoked_at}; ledger seq {seq}")
    return ExitCode.OK


def cmd_consent_verify(args: argparse.Namespace) -> int:
    from faceswap.consent.reports import check_store

    return _show(check_store(_store(args)), args.json)


def cmd_consent_link(args: argparse.Namespace) -> int:
    from faceswap.consent.access import access_code, ensure_secret

    store = _store(args)
    record = store.resolve(store.load(), args.id)
    code = access_code(ensure_secret(store.workspace.keys_dir), record.record_id)
    link = f"{args.url.rstrip('/')}/consent/{record.record_id}?code={code}"
    if args.json:
        _print_json({"record_id": record.record_id, "code": code, "link": link})
    else:
        print(f"{record.record_id}: access code {code}\n{link}")
    return ExitCode.OK


def _add_consent(commands, p: Parents) -> None:
    from faceswap.consent.records import PURPOSES, ROLES

    consent = commands.add_parser("consent", help="consent records").add_subparsers(
        dest="consent_command", metavar="ACTION"
    )
    register = consent.add_parser("register", parents=[*p.both, p.backend], help="register a subject's signed consent")
    register.add_argument("--subject", dest="subject_id", metavar="SUBJECT", required=True, help="subject id (a slug)")
    register.add_argument("--name", required=True)
    register.add_argument(
        "--reference",
        dest="references",
        metavar="REFERENCE",
        type=Path,
        action="append",
        required=True,
        help="photo with exactly one face",
    )
    register.add_argument("--purpose", dest="purposes", action="append", required=True, choices=PURPOSES)
    register.add_argument(
        "--role", dest="roles", action="append", choices=ROLES, help="default: both source and target"
    )
    register.add_argument(
        "--expires",
        dest="expires_at",
        metavar="EXPIRES",
        required=True,
        help="YYYY-MM-DD, in the future, at most 3 years away",
    )
    register.add_argument("--evidence", type=Path, required=True, help="the signed consent form (hashed, not copied)")
    register.add_argument("--synthetic", action="store_true", help="the subject is synthetic, not a real person")
    register.set_defaults(handler=cmd_consent_register)
    listing = consent.add_parser("list", parents=p.both, help="all records and their status")
    listing.set_defaults(handler=cmd_consent_list)
    show = consent.add_parser("show", parents=p.both, help="one record (record id or subject id)")
    show.add_argument("id")
    show.set_defaults(handler=cmd_consent_show)
    link = consent.add_parser(
        "link", parents=p.both, help="the subject's own status link for `faceswap serve` (their outputs listed)"
    )
    link.add_argument("id")
    link.add_argument("--url", default="http://127.0.0.1:8000", help="where the verification page is served")
    link.set_defaults(handler=cmd_consent_link)
    revoke = consent.add_parser("revoke", parents=[p.workspace], help="revoke a record (a signed revocation)")
    revoke.add_argument("id")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(handler=cmd_consent_revoke)
    verify = consent.add_parser("verify", parents=p.both, help="check every signature, schema and the ledger")
    verify.set_defaults(handler=cmd_consent_verify)


# ledger and keys


def cmd_ledger_show(args: argparse.Namespace) -> int:
    rows, checked = _ledger(args).inspect()
    entries = [e for e in rows if args.kind is None or e.kind == args.kind]
    finding = checked.finding
    if args.json:
        _print_json([{**e.to_json(), "body": json.loads(e.body)} for e in entries])
    else:
        for entry in entries:
            summary = ", ".join(f"{k}={v}" for k, v in sorted(entry.data.items()) if not isinstance(v, (list, dict)))
            print(f"{entry.seq:>6}  {entry.created_at}  {entry.kind:<20} {summary[:140]}")
        if finding:
            print(f"TAMPERED: {finding} (rows shown as stored)", file=sys.stderr)
    return ExitCode.REFUSED if finding else ExitCode.OK


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from faceswap.ledger.export import verify_ledger

    result = verify_ledger(_ledger(args), args.witness)
    if args.json:
        _print_json(result.to_json())
    elif result.damage:
        print(f"DAMAGED: the ledger's storage fails its integrity check ({result.damage})")
    elif result.finding:
        print(f"TAMPERED: {result.finding}")
    else:
        print(f"ok: {result.entries} entries, hash chain, signed head and signatures valid (key {result.key_id})")
    return result.exit_code


def cmd_ledger_export(args: argparse.Namespace) -> int:
    from faceswap.ledger.export import export_bundle

    exported = export_bundle(_ledger(args), _workspace(args).keys_dir, args.out, args.with_watermark_keys)
    return _show(exported, as_json=False)


def cmd_ledger_head(args: argparse.Namespace) -> int:
    from faceswap.ledger.export import head_statement, write_head_statement

    ledger = _ledger(args)
    statement = write_head_statement(ledger, args.export) if args.export else head_statement(ledger)
    if args.json:
        _print_json(statement)
    else:
        kept = f"; kept in {args.export}" if args.export else ""
        print(f"head: seq {statement['seq']} hash {statement['entry_hash']} (key {statement['key_id']}){kept}")
    return ExitCode.OK


def cmd_ledger_checkpoint(args: argparse.Namespace) -> int:
    from faceswap.ledger.tlog import make_checkpoint

    return _show(make_checkpoint(_ledger(args), args.out), args.json)


def _write_proof(args: argparse.Namespace, proof: dict[str, Any], summary: str) -> None:
    """A proof document: the JSON alone with --json; else a summary line, then the JSON or where
    --out wrote it."""
    from faceswap.atomic import write_atomic

    if args.out:
        write_atomic(args.out, json.dumps(proof, indent=2, sort_keys=True) + "\n")
    if args.json:
        _print_json(proof)
    elif args.out:
        print(f"{summary}; written to {args.out}")
    else:
        print(summary)
        _print_json(proof)


def cmd_ledger_prove(args: argparse.Namespace) -> int:
    from faceswap.ledger.note import read_note
    from faceswap.ledger.tlog import LogState, inclusion_proof

    state = LogState.of(_ledger(args))
    at = state.head_of(read_note(args.checkpoint)) if args.checkpoint else None
    proof = inclusion_proof(state, args.seq, at)
    summary = f"seq {args.seq} is leaf {proof['leaf_index']} of tree size {proof['tree_size']}"
    _write_proof(args, proof, f"{summary} ({len(proof['inclusion_path'])} hashes)")
    return ExitCode.OK


def cmd_ledger_consistency(args: argparse.Namespace) -> int:
    from faceswap.ledger.note import read_note
    from faceswap.ledger.tlog import LogState, consistency_proof

    state = LogState.of(_ledger(args))
    old = state.head_of(read_note(args.old_checkpoint))
    proof = consistency_proof(state, old)
    summary = f"consistent: the log at tree size {proof['tree_size']} extends the checkpoint of tree size {old.size}"
    _write_proof(args, proof, f"{summary} ({len(proof['consistency_path'])} hashes)")
    return ExitCode.OK


def cmd_ledger_migrate(args: argparse.Namespace) -> int:
    from faceswap.ledger.migrate import migrate_ledger

    result = migrate_ledger(_workspace(args), args.to)
    if args.json:
        _print_json(result.to_json())
        return ExitCode.OK
    print(
        f"copied {result.entries} entries and the signed head (seq {result.head_seq}, key {result.key_id}) from "
        f"{result.source} to {result.target}; the copy verifies. Use it with --ledger-url or FACESWAP_LEDGER_URL "
        "(the SQLite file stays as it was: keep it as a backup, append no more to it)"
    )
    return ExitCode.OK


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from faceswap.ledger.rotate import rotate_registrar_key, rotate_watermark_secret

    workspace = _workspace(args)
    if args.only in (None, "registrar"):
        entry, old, new = rotate_registrar_key(workspace)
        print(f"registrar key rotated: {old} -> {new}; ledger seq {entry.seq}")
    if args.only in (None, "watermark"):
        entry, old_mark, new_mark = rotate_watermark_secret(workspace)
        print(
            f"watermark secret rotated: {old_mark or 'none'} -> {new_mark}; ledger seq {entry.seq} (older secrets stay "
            "in keys/watermark/ so outputs marked with them still verify)"
        )
    return ExitCode.OK


def cmd_keys_import_watermark(args: argparse.Namespace) -> int:
    from faceswap.ledger import watermark_keys
    from faceswap.ledger.export import ExportedLedger

    bundle = ExportedLedger.load(args.bundle)
    if not bundle.watermark_secrets:
        raise BadInput(f"{args.bundle}: carries no watermark secret (export it with --with-watermark-keys)")
    ledger = _ledger(args)
    imported = watermark_keys.import_secrets(
        ledger.entries(), _workspace(args).keys_dir, list(bundle.watermark_secrets)
    )
    print(f"imported watermark secret(s) {', '.join(imported)}: pinned by this ledger, now in keys/watermark/")
    return ExitCode.OK


def _add_ledger(commands, p: Parents) -> None:
    ledger = commands.add_parser("ledger", help="the provenance ledger").add_subparsers(
        dest="ledger_command", metavar="ACTION"
    )
    show = ledger.add_parser("show", parents=p.both, help="list entries (as stored; tampering is reported)")
    show.add_argument("--kind", default=None)
    show.set_defaults(handler=cmd_ledger_show)
    verify = ledger.add_parser("verify", parents=p.both, help="check the chain, head, key, witness and storage")
    verify.add_argument("--witness", type=Path, default=None, help="a head statement kept by `ledger head --export`")
    verify.set_defaults(handler=cmd_ledger_verify)
    export = ledger.add_parser("export", parents=[p.workspace], help="write entries and the public key as JSONL")
    export.add_argument("out", type=Path)
    export.add_argument(
        "--with-watermark-keys",
        action="store_true",
        help="also the watermark secrets (a verifier bundle: its holder can read and forge this workspace's marks)",
    )
    export.set_defaults(handler=cmd_ledger_export)
    head = ledger.add_parser("head", parents=p.both, help="the signed head; --export keeps it as a witness")
    head.add_argument("--export", type=Path, default=None, metavar="FILE")
    head.set_defaults(handler=cmd_ledger_head)
    _add_transparency(ledger, p)
    migrate = ledger.add_parser(
        "migrate", parents=p.both, help="copy the workspace's SQLite ledger into an empty PostgreSQL one, verified"
    )
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST/DB")
    migrate.set_defaults(handler=cmd_ledger_migrate)


def _add_transparency(ledger, p: Parents) -> None:
    """The ledger as a transparency log: signed checkpoints, inclusion and consistency proofs."""
    checkpoint = ledger.add_parser("checkpoint", parents=p.both, help="the signed tree head (a C2SP checkpoint)")
    checkpoint.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write it to FILE")
    checkpoint.set_defaults(handler=cmd_ledger_checkpoint)
    prove = ledger.add_parser("prove", parents=p.both, help="an entry's inclusion proof (JSON)")
    prove.add_argument("seq", type=int, metavar="SEQ")
    prove.add_argument(
        "--checkpoint", type=Path, default=None, metavar="FILE", help="prove against this older head of the log"
    )
    prove.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the proof to FILE")
    prove.set_defaults(handler=cmd_ledger_prove)
    consistency = ledger.add_parser(
        "consistency", parents=p.both, help="prove today's log extends an old checkpoint (exit 1 when it does not)"
    )
    consistency.add_argument("old_checkpoint", type=Path, metavar="OLD_CHECKPOINT")
    consistency.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the proof to FILE")
    consistency.set_defaults(handler=cmd_ledger_consistency)


def cmd_keys_trust_anchor(args: argparse.Namespace) -> int:
    from faceswap.provenance.credentials import write_trust_anchor
    from faceswap.provenance.credentials.pinned import identity_for

    workspace = _workspace(args)
    identity = identity_for(_ledger(args, writable=True), workspace.keys_dir)
    write_trust_anchor(identity, args.out)
    print(f"trust anchor (Content Credentials root {identity.root_fingerprint[:16]}) written to {args.out}")
    return ExitCode.OK


def _add_keys(commands, p: Parents) -> None:
    keys = commands.add_parser("keys", help="the workspace's keys").add_subparsers(
        dest="keys_command", metavar="ACTION"
    )
    rotate = keys.add_parser(
        "rotate",
        parents=[p.workspace],
        help="replace the registrar key (signed by both) and the watermark secret, logged",
    )
    rotate.add_argument("--only", choices=["registrar", "watermark"], default=None, help="rotate just this one")
    rotate.set_defaults(handler=cmd_keys_rotate)
    imports = keys.add_parser(
        "import-watermark",
        parents=[p.workspace],
        help="install the watermark secrets a verifier bundle carries, where this workspace's ledger pins them",
    )
    imports.add_argument("bundle", type=Path, help="a `ledger export --with-watermark-keys` file")
    imports.set_defaults(handler=cmd_keys_import_watermark)
    anchor = keys.add_parser(
        "trust-anchor", parents=[p.workspace], help="export the Content Credentials root for people who verify"
    )
    anchor.add_argument("out", type=Path, help="a new .pem file")
    anchor.set_defaults(handler=cmd_keys_trust_anchor)


# extract and facesets


def cmd_extract(args: argparse.Namespace) -> int:
    from faceswap.data.extract import ExtractOptions, extract
    from faceswap.limits import OPERATOR

    options = _from_args(ExtractOptions, args, limits=_limits(args, OPERATOR))
    store = _store(args)
    report = _with_progress(
        f"extract {args.subject}",
        not args.json,
        lambda update: extract(store, args.input, args.subject, options, update),
    )
    return _show(report, args.json)


def cmd_faceset_stats(args: argparse.Namespace) -> int:
    from faceswap.data.faceset import Faceset
    from faceswap.data.faceset_tools import faceset_folder, render_stats, stats

    info = stats(Faceset.load(faceset_folder(_workspace(args), args.id)))
    if args.json:
        _print_json(info)
    else:
        print(render_stats(info))
    return ExitCode.OK


def cmd_faceset_clean(args: argparse.Namespace) -> int:
    from faceswap.data.faceset_tools import clean, faceset_folder

    result = clean(_store(args), args.id, args.min_blur, args.max_yaw, args.dedupe)
    if args.json:
        _print_json(result)
        return ExitCode.OK
    seq = f"; ledger seq {result['ledger_seq']}" if result["ledger_seq"] else ""
    folder = faceset_folder(_workspace(args), args.id)
    print(f"moved {result['moved']} face(s) to {folder / 'rejected'}; {result['kept']} kept{seq}")
    for name, reason in list(result["reasons"].items())[:20]:
        print(f"  {name}: {reason}")
    return ExitCode.OK


def cmd_faceset_label(args: argparse.Namespace) -> int:
    from faceswap.data.faceset_labels import FACE_LABELS, label_faceset

    report = label_faceset(_store(args), args.id, args.source, tuple(args.face_label or FACE_LABELS))
    return _show(report, args.json)


def cmd_faceset_export(args: argparse.Namespace) -> int:
    from faceswap.data.label_export import export_for_labelling

    report = export_for_labelling(_store(args), args.id, args.out, args.all, args.count)
    if args.json:
        _print_json(report.to_json())
        return ExitCode.OK
    print(
        f"{report.exported} crop(s) of {args.id} in {args.out} to label ({report.skipped_labelled} already labelled "
        f"{'and included' if args.all else 'left out'}); then `faceswap faceset label {args.id} --from {args.out}`"
    )
    return ExitCode.OK


def _add_faceset_labels(faceset, p: Parents) -> None:
    label = faceset.add_parser(
        "label", parents=p.both, help="attach occlusion labels (LabelMe or COCO polygons) to the faceset's crops"
    )
    label.add_argument("id")
    label.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="FILE",
        help="a LabelMe JSON, a folder of them, or a COCO JSON; images are crops (by name) or frames named "
        "SOURCE.FRAME (clip.000123.png, frames counted from 0)",
    )
    label.add_argument(
        "--face-label",
        action="append",
        default=None,
        metavar="NAME",
        help="the label of the face itself (default: face); every other label occludes it",
    )
    label.set_defaults(handler=cmd_faceset_label)
    export = faceset.add_parser("export", parents=p.both, help="copy crops that have no label yet, to label them")
    export.add_argument("id")
    export.add_argument("--out", type=Path, required=True, help="a folder outside the workspace's facesets")
    export.add_argument("--all", action="store_true", help="labelled crops too")
    export.add_argument("--count", type=int, default=None, help="only this many, spread evenly over the faceset")
    export.set_defaults(handler=cmd_faceset_export)


def _add_extract(commands, p: Parents) -> None:
    from faceswap.faces.align import ALIGN_POINTS, FACE_TYPES

    extract = commands.add_parser(
        "extract", parents=[*p.both, p.backend, p.limits], help="extract a consenting subject's faces into a faceset"
    )
    extract.add_argument("input", type=Path, help="a video, an image, or a folder of them")
    extract.add_argument("--subject", required=True)
    extract.add_argument("--every", type=int, default=1, help="every Nth video frame")
    extract.add_argument("--size", type=int, default=256, help="aligned crop size in pixels (64-1024)")
    extract.add_argument("--min-face", type=int, default=80, help="smallest face kept, in pixels")
    extract.add_argument(
        "--face-type",
        choices=sorted(FACE_TYPES),
        default=None,
        help="the crop's framing: whole (forehead to chin) or full (SAEHD's: the inner face 1.5x larger); "
        "default: the faceset's own, else whole",
    )
    extract.add_argument(
        "--align-on",
        choices=ALIGN_POINTS,
        default=None,
        help="the points crops are fitted on: eyes-nose (the mouth moves freely inside the crop) or five "
        "(the five keypoints, mouth corners included); default: the faceset's own, else eyes-nose",
    )
    extract.set_defaults(handler=cmd_extract)
    faceset = commands.add_parser("faceset", help="faceset tools").add_subparsers(
        dest="faceset_command", metavar="ACTION"
    )
    stats = faceset.add_parser("stats", parents=p.both, help="counts, blur/yaw histograms, identity range")
    stats.add_argument("id")
    stats.set_defaults(handler=cmd_faceset_stats)
    clean = faceset.add_parser("clean", parents=p.both, help="move weak faces to rejected/ (never deletes)")
    clean.add_argument("id")
    clean.add_argument("--min-blur", type=float, default=None)
    clean.add_argument("--max-yaw", type=float, default=None)
    clean.add_argument("--dedupe", action="store_true")
    clean.set_defaults(handler=cmd_faceset_clean)
    _add_faceset_labels(faceset, p)


# train


def cmd_train(args: argparse.Namespace) -> int:
    from faceswap.train import TrainRequest, run_training

    return _show(run_training(_from_args(TrainRequest, args, workspace=_workspace(args))), args.json)


def _add_train(commands, p: Parents) -> None:
    from faceswap.consent.records import PURPOSES

    train = commands.add_parser(
        "train",
        parents=p.both,
        help="train a swap model (consent-gated); extra --trainer.*/--model.*/--data.* flags go to LightningCLI",
    )
    train.add_argument("--config", type=Path, required=True, help="a YAML in configs/train/")
    train.add_argument("--subject-a", required=True, help="the face to put on (source)")
    train.add_argument("--subject-b", required=True, help="the footage's subject (target)")
    train.add_argument("--purpose", required=True, choices=PURPOSES)
    train.add_argument("--name", required=True, help="model folder under WORKSPACE/models/")
    train.add_argument(
        "--occlusion-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="an occlusion segmenter (`faceswap train-mask`, same subjects and purpose): what it finds in front "
        "of the faces is left out of the loss",
    )
    train.add_argument(
        "--checkpoint-every", type=int, default=100, metavar="N", help="steps between checkpoints (resume points)"
    )
    train.set_defaults(handler=cmd_train, passes_unknown=True)


def cmd_train_mask(args: argparse.Namespace) -> int:
    from faceswap.train_mask import MaskTrainRequest, run_mask_training

    return _show(run_mask_training(_from_args(MaskTrainRequest, args, workspace=_workspace(args))), args.json)


def _add_train_mask(commands, p: Parents) -> None:
    from faceswap.consent.records import PURPOSES

    train = commands.add_parser(
        "train-mask",
        parents=p.both,
        help="train an occlusion segmenter on labelled crops (consent-gated); --trainer.*/--model.*/--data.* "
        "flags go to LightningCLI",
    )
    train.add_argument("--config", type=Path, required=True, help="a YAML in configs/mask/")
    train.add_argument("--subject-a", required=True, help="the swap's source subject")
    train.add_argument("--subject-b", required=True, help="the swap's target subject (whose footage has occluders)")
    train.add_argument("--purpose", required=True, choices=PURPOSES)
    train.add_argument("--name", required=True, help="model folder under WORKSPACE/models/")
    train.set_defaults(handler=cmd_train_mask, passes_unknown=True)


# convert and eval


def cmd_convert(args: argparse.Namespace) -> int:
    from faceswap.convert import options as declared
    from faceswap.convert.pipeline import convert
    from faceswap.convert.settings import ConvertOptions
    from faceswap.limits import OPERATOR

    options = declared.from_namespace(ConvertOptions, args, declared.CONVERT, limits=_limits(args, OPERATOR))
    store = _store(args)
    report = _with_progress(
        "convert", not args.json, lambda update: convert(store, args.model, args.input, args.output, options, update)
    )
    return _show(report, args.json)


def _add_convert(commands, p: Parents) -> None:
    from faceswap.convert import options

    conv = commands.add_parser(
        "convert",
        parents=[*p.both, p.limits],
        help="swap subject A onto subject B's footage (consent re-checked)",
    )
    conv.add_argument("--model", type=Path, required=True, help="a model folder (WORKSPACE/models/NAME)")
    conv.add_argument(
        "--input",
        type=Path,
        required=True,
        help="a video, an image, or a numbered image sequence (plate.%%04d.exr|png|tif, or its folder) of subject B",
    )
    conv.add_argument("--output", type=Path, required=True, help="output video/image, or a folder with --sequence")
    options.add_flags(conv, options.CONVERT)
    conv.set_defaults(handler=cmd_convert)


def cmd_convert_batch(args: argparse.Namespace) -> int:
    import contextlib

    from faceswap.convert.batch import run_batch
    from faceswap.limits import OPERATOR

    workspace = _workspace(args)
    limits = _limits(args, OPERATOR)
    with contextlib.redirect_stdout(sys.stderr):  # Ray's own notices (a worker died, a retry): stdout is the result's
        report = _with_batch_progress(
            not args.json, lambda update: run_batch(workspace, args.shots, args.ray, args.workers, update, limits)
        )
    return _show(report, args.json)


def _with_batch_progress(enabled: bool, work: Callable[[Callable[[int, int, int, float], None] | None], Any]) -> Any:
    """A whole-batch progress bar on stderr: shots finished and frames/s so far (none for --json)."""
    if not enabled:
        return work(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task("convert-batch (starting Ray)", total=None)

    def update(finished: int, shots: int, frames: int, seconds: float) -> None:
        rate = frames / max(seconds, 1e-9)
        bar.update(task, completed=finished, total=shots, description=f"convert-batch {rate:.1f} frames/s")

    with bar:
        return work(update)


def _add_convert_batch(commands, p: Parents) -> None:
    batch = commands.add_parser(
        "convert-batch",
        parents=[*p.both, p.limits],
        help="convert many shots from a CSV as Ray tasks (a re-run skips shots already in the ledger)",
    )
    batch.add_argument(
        "shots",
        type=Path,
        metavar="SHOTS.csv",
        help="header model,input,output[,option...]: one row per shot; options by flag name (mask, color, ...); "
        "relative paths are against the CSV's folder",
    )
    batch.add_argument(
        "--ray",
        default=None,
        metavar="auto|ADDRESS",
        help="join a Ray cluster (auto: the one running here); default: start a local one",
    )
    batch.add_argument(
        "--workers", type=int, default=None, help="shots at once (local cluster: its CPUs; default: all CPUs)"
    )
    batch.set_defaults(handler=cmd_convert_batch)


def cmd_dub(args: argparse.Namespace) -> int:
    from faceswap.convert import options as declared
    from faceswap.convert.dub import DubOptions, dub
    from faceswap.limits import OPERATOR

    options = declared.from_namespace(DubOptions, args, declared.DUB, limits=_limits(args, OPERATOR))
    store = _store(args)
    report = _with_progress(
        "dub",
        not args.json,
        lambda update: dub(store, args.model, args.plate, args.performance, args.output, options, update),
    )
    return _show(report, args.json)


def _add_dub(commands, p: Parents) -> None:
    from faceswap.convert import options

    dub = commands.add_parser(
        "dub",
        parents=[*p.both, p.limits],
        help="re-voice a shot of subject A with the mouth of subject B's performance (consent re-checked)",
    )
    dub.add_argument("--model", type=Path, required=True, help="a model trained for dubbing-research (A: the actor)")
    dub.add_argument("--plate", type=Path, required=True, help="the shot of subject A to re-voice (a video)")
    dub.add_argument("--performance", type=Path, required=True, help="subject B performing the line (a video)")
    dub.add_argument("--output", type=Path, required=True, help="output video, or a folder with --sequence")
    options.add_flags(dub, options.DUB)
    dub.set_defaults(handler=cmd_dub)


def cmd_eval(args: argparse.Namespace) -> int:
    from faceswap.eval.run import EvalRequest, measure

    return _show(measure(_store(args), _from_args(EvalRequest, args)), args.json)


def _add_eval(commands, p: Parents) -> None:
    from faceswap.convert import options

    ev = commands.add_parser(
        "eval", parents=p.both, help="identity, expression, jitter and watermark metrics of a conversion"
    )
    ev.add_argument("--model", type=Path, required=True)
    ev.add_argument("--input", type=Path, default=None, help="subject B's video")
    ev.add_argument("--output", type=Path, default=None, help="an existing conversion (default: convert now)")
    ev.add_argument("--truth", type=Path, default=None, help="truth.json of a demo clip")
    options.add_flags(ev, options.EVAL)  # the conversion eval makes when given no --output
    ev.add_argument("--every", type=int, default=2)
    ev.add_argument(
        "--compare-smoothing",
        type=int,
        default=40,
        metavar="FRAMES",
        help="also measure jitter without smoothing over this many frames (0: skip)",
    )
    dub = ev.add_argument_group("dubbing (--dub)")
    dub.add_argument("--dub", action="store_true", help="measure a `faceswap dub` output instead of a conversion")
    dub.add_argument("--plate", type=Path, default=None)
    dub.add_argument("--performance", type=Path, default=None, help="measured when no --performance-truth")
    dub.add_argument("--plate-truth", type=Path, default=None)
    dub.add_argument("--performance-truth", type=Path, default=None)
    options.add_flags(dub, options.EVAL_DUB)
    ev.set_defaults(handler=cmd_eval)


# verify and doctor


def cmd_verify(args: argparse.Namespace) -> int:
    from faceswap.limits import VERIFY
    from faceswap.provenance.verify.files import VerifyRequest, verify_files

    request = _from_args(VerifyRequest, args, limits=_limits(args, VERIFY))
    return _show(verify_files(_workspace(args), request), args.json)


def _add_verify(commands, p: Parents) -> None:
    verify = commands.add_parser(
        "verify", parents=[*p.both, p.verify_limits], help="is this file from faceswap? which consent, which model?"
    )
    verify.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="images, videos or folders (recursive)")
    verify.add_argument("--ledger", type=Path, default=None, help="a `ledger export` JSONL instead of the workspace")
    verify.add_argument(
        "--trust-anchor",
        type=Path,
        default=None,
        metavar="PEM",
        help="the root Content Credentials must chain to (default: the one the ledger pins)",
    )
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a log checkpoint (`faceswap ledger checkpoint`) the files must trace into; repeatable",
    )
    verify.add_argument(
        "--proof",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a proof from the log (`faceswap ledger prove SEQ` or `ledger consistency`) linking heads; repeatable",
    )
    verify.set_defaults(handler=cmd_verify)


def cmd_serve(args: argparse.Namespace) -> int:
    from faceswap.serve.app import run
    from faceswap.serve.config import ServeConfig

    flags = (args.host, args.port, args.max_upload_mb, args.workers, args.queue, args.access_log)
    run(ServeConfig.checked(_workspace(args), *flags))
    return ExitCode.OK


def _add_serve(commands, p: Parents) -> None:
    from faceswap.serve.config import default_workers

    serve = commands.add_parser(
        "serve", parents=[p.workspace], help="the verification page and its JSON API (POST /api/verify)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-upload-mb", type=float, default=256, help="largest upload accepted (default 256)")
    serve.add_argument(
        "--workers", type=int, default=default_workers(), help="files checked at once (default: cores, at most 4)"
    )
    serve.add_argument("--queue", type=int, default=32, help="uploads that may wait for a worker (default 32)")
    serve.add_argument("--access-log", action="store_true", help="log each request (off: nothing is kept)")
    serve.set_defaults(handler=cmd_serve)


def cmd_doctor(args: argparse.Namespace) -> int:
    from faceswap.doctor import run_doctor

    workspace = _workspace(args)
    report = run_doctor(workspace, args.out or workspace.root / "doctor", args.model_root)
    if args.json:
        _print_json(report.to_json())
    else:
        for line in report.lines():
            print(line)
    return ExitCode.OK if report.ok else ExitCode.REFUSED


def _add_doctor(commands, p: Parents) -> None:
    from faceswap.convert import options

    doctor = commands.add_parser(
        "doctor", parents=p.both, help="check the install; write and verify two marked samples"
    )
    doctor.add_argument("--out", type=Path, default=None, help="where the samples go (default WORKSPACE/doctor)")
    options.add_flags(doctor, options.INSIGHTFACE)
    doctor.set_defaults(handler=cmd_doctor)


# demo


def cmd_demo(args: argparse.Namespace) -> int:
    from faceswap.demo.workflows import DemoRequest, demo_report

    request = _from_args(DemoRequest, args, reuse=args.json and not args.rerun)
    say = (lambda _msg: None) if args.json else (lambda msg: print(msg, flush=True))
    return _show(demo_report(_workspace(args), request, say), args.json)


def cmd_demo_subjects(args: argparse.Namespace) -> int:
    from faceswap.demo.subjects import demo_subjects

    return _show(demo_subjects(args.out, args.seconds, tuple(args.occluder or ())), args.json)


def _add_demo(commands, p: Parents) -> None:
    from faceswap.demo.occluders import OCCLUDERS

    demo = commands.add_parser(
        "demo", parents=[p.workspace], help="the end-to-end demo on synthetic subjects (< 10 min)"
    )
    demo.add_argument("--json", action="store_true", help="print workspace/demo/report.json (runs the demo if missing)")
    demo.add_argument("--rerun", action="store_true", help="with --json: run again even if a report exists")
    demo.add_argument("--seconds", type=float, default=10.0, help="length of the demo clips")
    demo.add_argument(
        "--steps", type=int, default=None, help="training steps of the smoke model (default 300; with --dub 600)"
    )
    demo.add_argument(
        "--dub",
        action="store_true",
        help="the dubbing workflow instead: re-voice demo-a's plate with demo-b's performance (dub-report.json)",
    )
    demo.add_argument(
        "--occlusion",
        action="store_true",
        help="the occlusion workflow instead: label, train a segmenter, convert with --mask occlusion "
        "(occlusion-report.json)",
    )
    demo.add_argument(
        "--occluder", choices=OCCLUDERS, default=None, help="with --occlusion: what passes in front (hand)"
    )
    demo.set_defaults(handler=cmd_demo)
    actions = demo.add_subparsers(dest="demo_command", metavar="ACTION")
    subjects = actions.add_parser("subjects", parents=[p.json], help="make the two synthetic demo subjects")
    subjects.add_argument("--out", type=Path, required=True)
    subjects.add_argument("--seconds", type=float, default=10.0)
    subjects.add_argument(
        "--occluder",
        action="append",
        choices=OCCLUDERS,
        default=None,
        help="also make demo-b's clip with this in front of the face (its outline in the truth); repeatable",
    )
    subjects.set_defaults(handler=cmd_demo_subjects)


COMMANDS = (
    _add_faces,
    _add_models,
    _add_consent,
    _add_ledger,
    _add_keys,
    _add_extract,
    _add_train,
    _add_train_mask,
    _add_convert,
    _add_convert_batch,
    _add_dub,
    _add_eval,
    _add_verify,
    _add_serve,
    _add_doctor,
    _add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceswap", description="Consent-gated face swapping with watermarked, logged outputs."
    )
    parser.add_argument("--version", action="version", version=f"faceswap {__version__}")
    parser.add_argument(
        "--workspace", type=Path, default=None, help="workspace root (default $FACESWAP_WORKSPACE or ./workspace)"
    )
    parser.add_argument("--ledger-url", default=None, metavar="URL", help=LEDGER_URL_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = _parents()
    for add in COMMANDS:
        add(commands, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_unknown", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return int(ExitCode.BAD_INPUT)
    try:
        return int(handler(args))
    except FaceswapError as error:
        print(f"faceswap: error: {error}", file=sys.stderr)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("faceswap: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return _reader_left()


def _reader_left() -> int:
    """stdout's reader went away (`faceswap ledger prove 7 | head`): what is left unprinted goes
    nowhere, without a traceback, and the exit status is a shell's for SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13


if __name__ == "__main__":
    raise SystemExit(main())
