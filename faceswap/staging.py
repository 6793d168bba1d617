"""Work that becomes a capability (a faceset's crops, a model's weights) is prepared in the
workspace's staging folder and moved where it counts only inside the ledger transaction that
records it.

A job stages into `WORKSPACE/staging/JOB.HOST.PID.RANDOM/`. `commit` appends the entry with an
`on_commit` that renames each staged path into place (a file it replaces is kept aside, as a hard
link, until the entry commits); when the guard refuses, the entry names a revoked record, the
append fails or its commit fails, every rename is undone. The folder is removed when the job ends,
however it ends; one left by a killed process is removed by the next job that stages in the
workspace and by `faceswap consent revoke`. Nothing in staging counts: training reads facesets only
from `facesets/`, conversion reads weights only from a model folder, and both only with their entry.

What no file system and database pair can make atomic: a kill between the renames and the ledger's
COMMIT (one rename per file, then one COMMIT) leaves the renamed files without their entry; readers
still refuse them (no entry holds their hash), and the next run of that job replaces them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from faceswap.atomic import process_alive
from faceswap.ledger import Entry, Ledger

NAME = re.compile(r"^(?P<job>[a-z0-9-]+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def sweep(workspace: Any) -> int:
    """Remove the staging folders of this machine's processes that no longer run; returns how many.
    (Another machine's folders stay: its process may still be working.)"""
    folder: Path = workspace.staging_dir
    if not folder.is_dir():
        return 0
    removed = 0
    for child in folder.iterdir():
        match = NAME.match(child.name)
        if match is None or match["host"] != _host() or process_alive(int(match["pid"])):
            continue
        if child.is_symlink():
            child.unlink()
        else:
            shutil.rmtree(child, ignore_errors=True)
        removed += 1
    return removed


@dataclass(frozen=True)
class Move:
    staged: Path
    final: Path
    kept: Path | None  # what `final` held before, until the entry commits


class Staging:
    """One job's staging folder. Use as a context manager: it is removed however the job ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._moved: list[Move] = []

    @classmethod
    def open(cls, workspace: Any, job: str) -> Staging:
        sweep(workspace)
        folder = workspace.staging_dir / f"{job}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}"
        folder.mkdir(parents=True)
        return cls(folder)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def commit(
        self,
        ledger: Ledger,
        kind: str,
        data: dict[str, Any],
        moves: Sequence[tuple[Path, Path]],
        guard: Callable[[list[Entry]], None] | None = None,
    ) -> Entry:
        """Append the entry; inside its transaction move each staged path to its final place."""

        def publish(_entry: Entry) -> None:
            for staged, final in moves:
                self._move(staged, final)

        try:
            return ledger.append(kind, data, on_commit=publish, guard=guard)
        except BaseException:
            self._undo()
            raise

    def _move(self, staged: Path, final: Path) -> None:
        kept = None
        if final.is_file() and not final.is_symlink():
            kept = self.folder / f".kept-{len(self._moved)}-{final.name}"
            os.link(final, kept)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)  # a file replaces a file (or a planted link) in one step
        self._moved.append(Move(staged, final, kept))

    def _undo(self) -> None:
        """The entry did not commit: every moved path goes back (a replaced file is restored)."""
        for move in reversed(self._moved):
            if move.kept is not None:
                os.replace(move.kept, move.final)
            elif move.final.exists() or move.final.is_symlink():
                os.replace(move.final, move.staged)
        self._moved.clear()
