"""Where things live: one workspace root holding keys, consent records, the ledger, facesets, models.
The ledger may live elsewhere: a PostgreSQL URL shared by many machines (keys and consent stay here).
The witness of the ledger lives outside the workspace, in the user's state folder.

A `Workspace` is resolved once, from flags and the environment, and the same object reaches every
gate, ledger and job (Ray tasks and DDP ranks included): nothing below the CLI reads the
environment or rebuilds a workspace from its root again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_VAR = "FACESWAP_WORKSPACE"
LEDGER_URL_ENV = "FACESWAP_LEDGER_URL"
STATE_ENV = "FACESWAP_STATE_DIR"
DEFAULT_ROOT = Path("workspace")


def default_state_dir() -> Path:
    """$FACESWAP_STATE_DIR, else $XDG_STATE_HOME/faceswap, else ~/.local/state/faceswap."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser().absolute()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(base).expanduser() / "faceswap").absolute()


@dataclass(frozen=True)
class Workspace:
    root: Path
    ledger_url: str | None = None  # a postgresql:// ledger instead of ROOT/ledger.sqlite
    state_dir: Path = field(default_factory=default_state_dir)  # the witness's folder, outside the workspace

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "state_dir", Path(self.state_dir))

    @classmethod
    def resolve(
        cls, override: Path | str | None = None, ledger_url: str | None = None, state_dir: Path | str | None = None
    ) -> Workspace:
        """--workspace wins, then $FACESWAP_WORKSPACE, then ./workspace; --ledger-url wins, then
        $FACESWAP_LEDGER_URL, then the workspace's own SQLite file; the state folder as given, else
        `default_state_dir()`."""
        chosen = override or os.environ.get(ENV_VAR) or DEFAULT_ROOT
        url = ledger_url or os.environ.get(LEDGER_URL_ENV) or None
        state = Path(state_dir).expanduser().absolute() if state_dir else default_state_dir()
        return cls(Path(chosen).expanduser().absolute(), url, state)

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

    @property
    def staging_dir(self) -> Path:
        """Work in progress (crops, weights) until the ledger entry that records it commits."""
        return self.root / "staging"

    def protected_paths(self) -> tuple[Path, ...]:
        """Folders and files no output may be written into or onto: consent, keys, the ledger, staging."""
        from faceswap.ledger.sqlite import ledger_files

        return (self.consent_dir, self.keys_dir, self.staging_dir, *ledger_files(self.ledger_path))

    def ensure(self) -> Workspace:
        for folder in (self.root, self.consent_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self
