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

A job in the middle of a long step (a training step on a busy machine, a large frame) would reach
its next boundary late, so a job that has not stopped `GRACE_SECONDS` after the refusal was seen is
interrupted where it is: the refusal is raised in the job's thread at its next Python instruction
(CPython's asynchronous exception). Every write path undoes its work on any exception (staging,
the sink, the ledger's transaction). Not under DDP: a rank interrupted outside a collective would
leave the others waiting in it, so ranks stop together at step boundaries instead.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from types import TracebackType

from faceswap.consent.gate import ConsentGate, ConsentGrant, GrantedRecord
from faceswap.errors import CheckFailed, ConsentDenied, FaceswapError
from faceswap.ledger import Entry

CHECK_EVERY_SECONDS = 2.0
GRACE_SECONDS = 1.0  # after a refusal, how long a job may run on to its next boundary before it is interrupted

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
        self.interrupt = True  # off under DDP (train_hooks)
        self._refusal: FaceswapError | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a refusal or the end of the job
        self._done = threading.Event()  # the end of the job
        self._thread: threading.Thread | None = None
        self._job: int | None = None  # the job's thread, while the job runs
        self._interrupted = False
        self.checked_at = time.monotonic()  # when the last check that passed finished

    @property
    def record_ids(self) -> list[str]:
        return [self.grant.record_id] if isinstance(self.grant, GrantedRecord) else self.grant.record_ids

    def start(self) -> ConsentWatch:
        if self._thread is None:
            self._job = threading.get_ident()
            self._thread = threading.Thread(target=self._run, name="consent-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._interrupted and self._job == threading.get_ident():
                _raise_in(self._job, None)  # an interruption not yet delivered is withdrawn
            self._job = None
        self._done.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None

    def __enter__(self) -> ConsentWatch:
        return self.start()

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        gate = self._own_gate()
        while gate is not None and self._refusal is None and not self._wake.wait(self.interval):
            try:
                gate.recheck(self.grant)
            except FaceswapError as refused:
                self.refuse(refused)
            except Exception as error:  # noqa: BLE001 - fail closed: an unreadable ledger stops the job
                self.refuse(CheckFailed(f"consent could not be re-checked ({type(error).__name__}: {error})"))
            else:
                self.checked_at = time.monotonic()
        if self._refusal is not None and self.interrupt and not self._done.wait(GRACE_SECONDS):
            self._interrupt_job()

    def _interrupt_job(self) -> None:
        """The job did not reach a boundary in time: raise the refusal in its thread."""
        with self._lock:
            if self._job is None or self._refusal is None:
                return
            _raise_in(self._job, _raised_as(self._refusal))
            self._interrupted = True

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
        self._wake.set()

    @property
    def refusal(self) -> FaceswapError | None:
        return self._refusal

    def poll(self) -> None:
        """At a boundary of the job: raise the refusal the watch saw, if any (costs nothing otherwise).
        A watch used without starting its thread re-checks here instead, every `interval` seconds."""
        if self._refusal is not None:
            raise self._refusal
        if self._thread is None and time.monotonic() - self.checked_at >= self.interval:
            self.check_now()
            self.checked_at = time.monotonic()

    def check_now(self, entries: list[Entry] | None = None) -> None:
        """Re-check at once with the job's own gate (before a checkpoint is written)."""
        if self._refusal is not None:
            raise self._refusal
        try:
            self.gate.recheck(self.grant, entries)
        except ConsentDenied as refused:
            self.refuse(refused)
            raise

    def final(self, entries: list[Entry]) -> None:
        """Inside the ledger transaction that records the work, with the rows it verified."""
        if self._refusal is not None:
            raise self._refusal
        if self.require is not None:
            self.require()
        self.check_now(entries)


def _raised_as(refusal: FaceswapError) -> type[FaceswapError]:
    """A class whose instances carry the refusal's message (an asynchronous exception is raised
    from its class, not from an instance)."""
    base, message = type(refusal), str(refusal)

    def init(self: FaceswapError) -> None:
        base.__init__(self, message)

    return type(base.__name__, (base,), {"__init__": init, "__module__": base.__module__})


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise `exception` in another thread at its next Python instruction (None: withdraw one not
    yet raised)."""
    target = ctypes.py_object(exception) if exception is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)
