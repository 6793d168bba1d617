"""`faceswap ledger migrate --to postgresql://...`: a workspace's SQLite ledger, verified, copied into
an empty PostgreSQL ledger with its signed head, and the copy verified before and after it commits.

Nothing is re-signed: the copy holds the very rows and head, so it verifies with the same genesis
key, and the witness learns the new location at the copied head."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from faceswap.errors import BadInput, CheckFailed
from faceswap.ledger import Ledger, LedgerMissing, LedgerTampered, ledger_backend, open_ledger
from faceswap.ledger.chain import check_chain
from faceswap.ledger.witness import Sighting, Witness


@dataclass(frozen=True)
class Migration:
    source: str
    target: str
    entries: int
    head_seq: int
    key_id: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def migrate_ledger(workspace, target_url: str) -> Migration:
    """Copy the workspace's own SQLite ledger into the (empty) PostgreSQL ledger at `target_url`.

    The source is held (no appends) while it is read, verified and copied; a source that fails
    verification or a target that already holds entries is refused and nothing is written."""
    local = dataclasses.replace(workspace, ledger_url=None)
    target_backend = ledger_backend(dataclasses.replace(workspace, ledger_url=target_url))
    if not target_backend.shared:
        raise BadInput("--to must be a postgresql:// URL")
    source = open_ledger(local, writable=False)
    with source.backend.guard():
        rows, head = source.backend.snapshot()
        checked = source.check(rows, head)
        if checked.finding is not None:
            raise LedgerTampered(
                f"ledger {source.location} fails verification at {checked.finding}; nothing was copied"
            )
        if not rows or head is None or checked.history is None:
            raise LedgerMissing(f"the ledger {source.location} is empty: nothing to migrate")
        with target_backend.writer() as txn:
            present = txn.rows()
            if present or target_backend.head() is not None:
                raise BadInput(
                    f"the ledger {target_backend.location} already holds {len(present)} entries: migrate only into "
                    "an empty one"
                )
            for entry in rows:
                txn.insert(entry)
            txn.write_head(head)
            if txn.rows() != rows or check_chain(txn.rows(), target_backend.head(), source.legacy_key).finding:
                raise CheckFailed(f"the copy in {target_backend.location} does not read back as written; not committed")
    witness = Witness(workspace.state_dir)
    copy = Ledger(target_backend, None, witness, legacy_key=source.legacy_key)
    copied, result = copy.inspect()
    if result.finding is not None or copied != rows or copy.head() != head:
        raise CheckFailed(f"the copy in {target_backend.location} does not verify: {result.finding or 'rows differ'}")
    last = rows[-1]
    witness.advance(Sighting(target_backend.location, checked.history.first.key_id, last.seq, last.entry_hash))
    key_id = checked.history.current.key_id
    return Migration(source.location, target_backend.location, len(rows), int(head["seq"]), key_id)
