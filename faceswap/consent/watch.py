"""Consent that is checked while the work goes on, not only when it starts."""

from __future__ import annotations

import time

from faceswap.consent.gate import ConsentGate, ConsentGrant
from faceswap.ledger import Entry

CHECK_EVERY_SECONDS = 2.0


class ConsentWatch:
    """Re-checks a grant during a long job (a conversion, a dub): between frames every `interval`
    seconds of wall time, and once more inside the ledger transaction that records the output, so a
    revocation appended before that transaction always stops the output."""

    def __init__(self, gate: ConsentGate, grant: ConsentGrant, interval: float = CHECK_EVERY_SECONDS) -> None:
        self.gate, self.grant, self.interval = gate, grant, interval
        self._checked_at = time.monotonic()

    def poll(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= self.interval:
            self.gate.recheck(self.grant)
            self._checked_at = now

    def final(self, entries: list[Entry]) -> None:
        self.gate.recheck(self.grant, entries)
