"""What a command shows. A library function returns one of these, and the CLI only prints it, so a
result's wording lives beside the result and every caller (CLI, tests, scripts) gets the same words."""

from __future__ import annotations

from typing import Any

from faceswap.errors import ExitCode


class Report:
    """Lines for a person, JSON for a script, and how the command ends (OK unless said otherwise)."""

    def to_json(self) -> Any:
        raise NotImplementedError

    def lines(self) -> list[str]:
        raise NotImplementedError

    def text(self) -> str:
        """stdout as printed: the lines, each ended; a report that prints a document whole overrides it."""
        return "".join(f"{line}\n" for line in self.lines())

    def notes(self) -> list[str]:
        """Said on stderr beside the result (warnings, damage found on the way), never part of it."""
        return []

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK
