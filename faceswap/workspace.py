"""Where things live: one workspace root holding keys, consent records, the ledger, facesets, models.
The ledger may live elsewhere: a PostgreSQL URL shared by many machines (keys and consent stay here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "FACESWAP_WORKSPACE"
LEDGER_URL_ENV = "FACESWAP_LEDGER_URL"
DEFAULT_ROOT = Path("workspace")


@dataclass(frozen=True)
class Workspace:
    root: Path
    ledger_url: str | None = None  # a postgresql:// ledger instead of ROOT/ledger.sqlite

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def resolve(cls, override: Path | str | None = None, ledger_url: str | None = None) -> Workspace:
        """--workspace wins, then $FACESWAP_WORKSPACE, then ./workspace; --ledger-url wins, then
        $FACESWAP_LEDGER_URL, then the workspace's own SQLite file."""
        chosen = override or os.environ.get(ENV_VAR) or DEFAULT_ROOT
        url = ledger_url or os.environ.get(LEDGER_URL_ENV) or None
        return cls(Path(chosen).expanduser().absolute(), url)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def consent_dir(self) -> Path:
        return self.root / "consent"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def facesets_dir(self) -> Path:
        return self.root / "facesets"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def demo_dir(self) -> Path:
        return self.root / "demo"

    def protected_paths(self) -> tuple[Path, ...]:
        """Folders and files no output may be written into or onto: consent, keys, the ledger."""
        from faceswap.ledger.sqlite import ledger_files

        return (self.consent_dir, self.keys_dir, *ledger_files(self.ledger_path))

    def ensure(self) -> Workspace:
        for folder in (self.root, self.consent_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self
