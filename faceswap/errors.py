"""Errors a user can cause, and the one exit-code policy. The CLI turns each error into one line and
its exit code, never a traceback; nothing else in the package spells an exit number."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1  # a check said no: consent refused, no watermark, tampering found
    BAD_INPUT = 2  # unreadable file, wrong type, bad argument
    UNTRACED = 3  # verify: marked, but no valid ledger entry or Content Credentials disagree
    INTERRUPTED = 130


def worst(codes: list[ExitCode] | set[ExitCode]) -> ExitCode:
    """The exit code of several results: unreadable input first, then untraced, then refused."""
    for code in (ExitCode.BAD_INPUT, ExitCode.UNTRACED, ExitCode.REFUSED):
        if code in codes:
            return code
    return ExitCode.OK


class FaceswapError(Exception):
    """Base for errors that end a command with a clear message."""

    exit_code = ExitCode.BAD_INPUT


class BadInput(FaceswapError):
    """Unreadable file, wrong type, bad argument: exit 2."""

    exit_code = ExitCode.BAD_INPUT


class CheckFailed(FaceswapError):
    """A check said no (consent refused, no watermark, tampering found): exit 1."""

    exit_code = ExitCode.REFUSED


class ConsentDenied(CheckFailed):
    """Consent does not, or no longer, allow this work (the gate refused, or a record was revoked):
    exit 1. A job that sees it discards its unfinished work."""


class MissingModel(BadInput):
    """A model pack or weights file is not installed where we looked."""
