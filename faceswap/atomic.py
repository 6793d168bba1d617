"""Writing files so that a crash or a kill never leaves half of one, and never follows a planted link.

A file is written under a hidden temporary name beside its destination, created exclusively and
without following symlinks, flushed, and then renamed into place (rename replaces a link, it does
not write through it)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def temp_path(final: Path, tag: str = "tmp") -> Path:
    """A hidden, unique name beside `final`: `.NAME.TAG-PID-RANDOM.SUFFIX` (suffix kept for encoders)."""
    return final.with_name(f".{final.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}{final.suffix}")


@contextlib.contextmanager
def exclusive_file(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Create `path` (which must not exist, not even as a link) and yield it open for writing."""
    fd = os.open(path, EXCLUSIVE, mode)
    with os.fdopen(fd, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_temp(final: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write `data` to a fresh temporary beside `final` and return it; the caller renames it."""
    tmp = temp_path(final)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with exclusive_file(tmp, mode) as handle:
            handle.write(payload)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(final: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write `final` in one rename."""
    tmp = write_temp(final, data, mode)
    try:
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def process_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (a leftover of a live writer is not removed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path, tag: str = "tmp") -> int:
    """Temporary files of `temp_path` in `folder` whose writer was killed (links unlinked, never
    followed); those of live writers stay. Returns how many were removed."""
    import re

    pattern = re.compile(rf"^\..+\.{re.escape(tag)}-(\d+)-[0-9a-f]+")
    removed = 0
    if not folder.is_dir():
        return 0
    for candidate in folder.iterdir():
        match = pattern.match(candidate.name)
        if match is None or process_alive(int(match.group(1))) or candidate.is_dir():
            continue
        candidate.unlink(missing_ok=True)
        removed += 1
    return removed
