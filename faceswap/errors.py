"""Errors a user can cause. The CLI turns each into one line and an exit code, never a traceback."""

from __future__ import annotations


class FaceswapError(Exception):
    """Base for errors that end a command with a clear message."""

    exit_code = 2


class BadInput(FaceswapError):
    """Unreadable file, wrong type, bad argument: exit 2."""

    exit_code = 2


class CheckFailed(FaceswapError):
    """A check said no (consent refused, no watermark, tampering found): exit 1."""

    exit_code = 1


class MissingModel(BadInput):
    """A model pack or weights file is not installed where we looked."""
