"""Transparency-log benchmark: what each output's proof costs (time, bytes) as the ledger grows, and
what `ledger prove` / `ledger consistency` cost.

    nice -n 5 .venv/bin/python scripts/bench_tlog.py [--sizes 10 1000 10000 100000] [--out bench-results]

For each size a fresh SQLite ledger is filled with that many signed entries (one in ten an
`output.written` with a claim, the rest notes) by bulk insert, then measured through the library:
- cold tree: building the Merkle tree over every row (what the first output of a fresh process pays
  once; later outputs extend the tree incrementally);
- proof per output: the sink's step inside the append (leaf, path, root, signed checkpoint, the
  assertion's JSON) on the synced tree, median of many; its bytes in the manifest;
- a whole append of an output entry (warm process), which includes the ledger's own verification of
  every row (hash chain, head, key, witness), for scale;
- `prove` (inclusion proof of an entry in the middle) and `consistency` (from half the size): time
  on the synced tree and the JSON's bytes.
Wall and CPU (process) seconds are both reported: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceswap.hashing import canonical_json
from faceswap.ledger import Position, open_ledger
from faceswap.ledger.chain import Entry, entry_hash_of, head_message, utc_now
from faceswap.ledger.merkle import root_from_inclusion
from faceswap.ledger.note import Checkpoint
from faceswap.ledger.tlog import (
    LogKey,
    LogState,
    OutputProof,
    claim_leaf,
    consistency_proof,
    inclusion_proof,
    leaf_hash_of,
    origin_of,
    output_claim,
    precommit_output,
)
from faceswap.workspace import Workspace

CLAIM = output_claim("0a1b2c3d4e5f", "convert", "ab" * 32, ["rec-a", "rec-b"], "0123456789abcdef", "cd" * 32)


def timed(work: Callable[[], Any], repeats: int = 1) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of `work` over `repeats` runs, and its last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def fill(workspace: Workspace, size: int) -> None:
    """`size` entries in all (the genesis included), signed and chained, inserted in one go."""
    ledger = open_ledger(workspace)
    key, last = ledger.key, ledger.entries()[-1]
    rows = []
    for seq in range(last.seq + 1, size + 1):
        kind = "output.written" if seq % 10 == 0 else "ledger.note"
        data = (
            {"claim": {**CLAIM, "token": f"{seq:012x}"}, "sha256": "ef" * 32, "frames": 250}
            if seq % 10 == 0
            else {"i": seq}
        )
        created = utc_now()
        body = canonical_json({"kind": kind, "created_at": created, "data": data})
        entry_hash = entry_hash_of(last.entry_hash, body)
        last = Entry(seq, created, kind, body, last.entry_hash, entry_hash, key.sign(entry_hash))
        rows.append(tuple(last.to_json().values()))
    conn = sqlite3.connect(workspace.ledger_path)
    with conn:
        conn.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    head = {"seq": last.seq, "entry_hash": last.entry_hash, "key_id": key.key_id}
    head["signature"] = key.sign(head_message(last.seq, last.entry_hash))
    (workspace.root / "ledger.head.json").write_text(canonical_json(head))


def proof_step(state: LogState, position: Position) -> OutputProof:
    """The sink's transparency step as `precommit_output` runs it, on an already synced tree."""
    leaf = claim_leaf(position.seq, position.prev_hash, CLAIM)
    path = state.tree.next_path()
    root = root_from_inclusion(state.tree.size, state.tree.size + 1, leaf_hash_of(leaf), path)
    signer = LogKey(state.origin, state.signer.key)
    note = signer.sign(Checkpoint(signer.origin, state.tree.size + 1, root))
    proof = OutputProof(leaf, state.tree.size, state.tree.size + 1, tuple(path), note, signer.verifier.vkey)
    json.dumps(proof.assertion())
    return proof


def file_growth(proof: OutputProof, folder: Path) -> int:
    """Bytes the proof adds to a real signed PNG: the same file signed with and without it."""
    from dataclasses import replace

    import cv2
    import numpy as np

    from faceswap.provenance.credentials import CredentialFacts, load_or_create_identity, sign_file

    identity = load_or_create_identity(folder / "keys")
    facts = CredentialFacts("0a1b2c3d4e5f", 2, "ab" * 32, "0123456789abcdef", "convert", "ab" * 32, ("rec-a",))
    sizes = []
    for name, with_proof in (("plain.png", facts), ("proof.png", replace(facts, transparency=proof.assertion()))):
        image = np.random.default_rng(0).integers(0, 255, (256, 320, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / name), image)
        sign_file(folder / name, with_proof, identity)
        sizes.append((folder / name).stat().st_size)
    return sizes[1] - sizes[0]


def measure(size: int, folder: Path) -> dict[str, Any]:
    workspace = Workspace(folder / f"ws-{size}")
    fill(workspace, size)
    ledger = open_ledger(workspace)
    verify_wall, verify_cpu, rows = timed(ledger.entries)
    cold_wall, cold_cpu, _ = timed(lambda: type(ledger.tree)().sync(rows), 3)
    state = LogState.of(ledger)
    position = Position(size + 1, rows[-1].entry_hash)
    step_wall, step_cpu, proof = timed(lambda: proof_step(state, position), 200)
    assertion = json.dumps(proof.assertion())

    def append_output() -> Entry:
        return ledger.append(
            "output.written", lambda p: {"claim": CLAIM, "proof": precommit_output(ledger, p, CLAIM).assertion()}
        )

    append_wall, append_cpu, _ = timed(append_output, 3)
    state = LogState.of(ledger)
    middle = len(state.rows) // 2
    prove_wall, prove_cpu, prove = timed(lambda: inclusion_proof(state, middle), 20)
    old = Checkpoint(state.origin, middle, state.tree.root(middle))
    cons_wall, cons_cpu, cons = timed(lambda: consistency_proof(state, old), 20)
    return {
        "entries": size,
        "path_hashes": len(proof.inclusion_path),
        "assertion_bytes": len(assertion.encode()),
        "checkpoint_bytes": len(proof.checkpoint.encode()),
        "png_growth_bytes": file_growth(proof, folder),
        "proof_ms": round(step_wall * 1e3, 3),
        "proof_cpu_ms": round(step_cpu * 1e3, 3),
        "cold_tree_ms": round(cold_wall * 1e3, 1),
        "cold_tree_cpu_ms": round(cold_cpu * 1e3, 1),
        "first_verification_s": round(verify_wall, 2),
        "first_verification_cpu_s": round(verify_cpu, 2),
        "append_output_ms": round(append_wall * 1e3, 1),
        "append_output_cpu_ms": round(append_cpu * 1e3, 1),
        "prove_ms": round(prove_wall * 1e3, 2),
        "prove_hashes": len(prove["inclusion_path"]),
        "prove_json_bytes": len(json.dumps(prove, indent=2, sort_keys=True).encode()),
        "consistency_ms": round(cons_wall * 1e3, 2),
        "consistency_hashes": len(cons["consistency_path"]),
        "consistency_json_bytes": len(json.dumps(cons, indent=2, sort_keys=True).encode()),
        "origin": origin_of(rows[0]),
    }


COLUMNS = [
    ("entries", "entries"),
    ("path_hashes", "path hashes"),
    ("assertion_bytes", "assertion JSON B"),
    ("png_growth_bytes", "PNG grows B"),
    ("proof_ms", "proof ms"),
    ("proof_cpu_ms", "proof CPU ms"),
    ("cold_tree_ms", "cold tree ms"),
    ("append_output_ms", "whole append ms"),
    ("first_verification_s", "first verify s"),
    ("prove_hashes", "prove hashes"),
    ("prove_json_bytes", "prove JSON B"),
    ("prove_ms", "prove ms"),
    ("consistency_hashes", "consistency hashes"),
    ("consistency_json_bytes", "consistency JSON B"),
    ("consistency_ms", "consistency ms"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000, 100000])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["FACESWAP_STATE_DIR"] = str(Path(tmp) / "state")
        results = [measure(size, Path(tmp)) for size in args.sizes]
    print("| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in results:
        print("| " + " | ".join(str(row[key]) for key, _ in COLUMNS) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "python": platform.python_version(), "results": results}
    (args.out / "tlog.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out / 'tlog.json'}")


if __name__ == "__main__":
    main()
