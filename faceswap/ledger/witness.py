"""A witness outside the workspace: the highest ledger head this machine has seen, per ledger.

Someone who can write to the workspace can also read its private key, so they could re-sign a
truncated or rewritten ledger that then verifies on its own. The witness lives in the user's state
folder (`Workspace.state_dir`: $FACESWAP_STATE_DIR, else $XDG_STATE_HOME/faceswap, else
~/.local/state/faceswap) and only
ever moves forward: a ledger that no longer holds the witnessed row, or is signed by another key,
is refused. `faceswap ledger head --export` writes the same statement for people to keep elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from faceswap.atomic import write_atomic
from faceswap.hashing import canonical_json, sha256_hex
from faceswap.ledger.chain import Entry, Finding


@dataclass(frozen=True)
class Sighting:
    """A ledger row seen at some point: the ledger's location, first key, and a (seq, hash) in it."""

    location: str
    first_key_id: str
    seq: int
    entry_hash: str

    def check(self, entries: list[Entry], first_key_id: str | None) -> Finding | None:
        if first_key_id is not None and first_key_id != self.first_key_id:
            return Finding(
                1,
                f"the ledger now starts with key {first_key_id}, but it was seen with key "
                f"{self.first_key_id}: the whole ledger was replaced",
            )
        if len(entries) < self.seq:
            return Finding(
                len(entries) + 1,
                f"missing: the ledger was seen holding seq {self.seq} (hash {self.entry_hash[:16]}); "
                "rows were removed from its end",
            )
        if entries[self.seq - 1].entry_hash != self.entry_hash:
            return Finding(self.seq, f"differs from the row seen at seq {self.seq}: the ledger was rewritten")
        return None


class Witness:
    def __init__(self, state_dir: Path) -> None:
        """`state_dir`: the workspace's state folder (Workspace.state_dir), outside the workspace."""
        self.folder = Path(state_dir) / "witness"

    def _path(self, location: str) -> Path:
        return self.folder / f"{sha256_hex(location)[:32]}.json"

    def read(self, location: str) -> Sighting | None:
        try:
            data = json.loads(self._path(location).read_text(encoding="utf-8"))
            return Sighting(**{k: data[k] for k in Sighting.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # an unreadable witness is no evidence either way; the next append rewrites it
            return None

    def advance(self, sighting: Sighting) -> None:
        """Remember the row if it is further than the one already witnessed. Best effort: a
        read-only state folder must not stop the work (`ledger verify` reports a missing witness)."""
        current = self.read(sighting.location)
        if current is not None and current.first_key_id == sighting.first_key_id and current.seq >= sighting.seq:
            return
        path = self._path(sighting.location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, canonical_json(asdict(sighting)))
        except OSError:
            return
