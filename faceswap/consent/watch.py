"""Consent that is checked while the work goes on, not only when it starts.

Every job that turns a face into something (a faceset, a model and its checkpoints, a preview, a
converted or dubbed output) runs inside one `ConsentWatch`:
- a background thread re-checks the grant every `interval` seconds over its own ledger connection,
  so the job never waits on the ledger;
- the job calls `poll()` at each boundary (a frame, a training step) and stops with the refusal the
  thread saw;
- `check_now()` re-checks at once (before a checkpoint is saved);
- `final(entries)` runs inside the ledger transaction that records the job's work, with the rows
  that transaction verified, so a revocation appended before it always wins: the work is refused
  and no entry names the record after its revocation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from faceswap.consent.gate import ConsentGate, ConsentGrant, GrantedRecord
from faceswap.errors import CheckFailed, ConsentDenied, FaceswapError
from faceswap.ledger import Entry

CHECK_EVERY_SECONDS = 2.0

Requirement = Callable[[], None]  # raises when the job's work may not be recorded (e.g. nothing was swapped)


class ConsentWatch:
    """The consent of one running job: a grant of two subjects, or one subject's record."""

    def __init__(
        self,
        gate: ConsentGate,
        grant: ConsentGrant | GrantedRecord,
        interval: float = CHECK_EVERY_SECONDS,
        require: Requirement | None = None,
    ) -> None:
        """`gate` is the job's own (its ledger records the work); the thread opens another over the
        same workspace. `require`: what else must hold when the work is recorded."""
        if interval <= 0:
            raise ValueError("the consent check interval must be positive")
        self.gate, self.grant, self.interval, self.require = gate, grant, interval, require
        self._refusal: FaceswapError | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checked_at = time.monotonic()  # when the last check that passed finished

    @property
    def record_ids(self) -> list[str]:
        return [self.grant.record_id] if isinstance(self.grant, GrantedRecord) else self.grant.record_ids

    def start(self) -> ConsentWatch:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="consent-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5.0)
        self._thread = None

    def __enter__(self) -> ConsentWatch:
        return self.start()

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        gate = self._own_gate()
        while gate is not None and not self._stop.wait(self.interval) and self._refusal is None:
            try:
                gate.recheck(self.grant)
            except FaceswapError as refused:
                self.refuse(refused)
            except Exception as error:  # noqa: BLE001 - fail closed: an unreadable ledger stops the job
                self.refuse(CheckFailed(f"consent could not be re-checked ({type(error).__name__}: {error})"))
            else:
                self.checked_at = time.monotonic()

    def _own_gate(self) -> ConsentGate | None:
        """A gate over its own ledger connection: the job's ledger is used by the job's thread."""
        from faceswap.consent.registry import ConsentStore

        try:
            return ConsentGate(ConsentStore(self.gate.store.workspace))
        except FaceswapError as refused:
            self.refuse(refused)
        except Exception as error:  # noqa: BLE001
            self.refuse(CheckFailed(f"consent could not be re-checked ({type(error).__name__}: {error})"))
        return None

    def refuse(self, refusal: FaceswapError) -> None:
        """Remember the first refusal; the job raises it at its next boundary."""
        with self._lock:
            if self._refusal is None:
                self._refusal = refusal

    @property
    def refusal(self) -> FaceswapError | None:
        return self._refusal

    def poll(self) -> None:
        """At a boundary of the job: raise the refusal the watch saw, if any (costs nothing otherwise)."""
        if self._refusal is not None:
            raise self._refusal

    def check_now(self, entries: list[Entry] | None = None) -> None:
        """Re-check at once with the job's own gate (before a checkpoint is written)."""
        self.poll()
        try:
            self.gate.recheck(self.grant, entries)
        except ConsentDenied as refused:
            self.refuse(refused)
            raise

    def final(self, entries: list[Entry]) -> None:
        """Inside the ledger transaction that records the work, with the rows it verified."""
        self.poll()
        if self.require is not None:
            self.require()
        self.check_now(entries)
