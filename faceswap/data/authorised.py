"""What one training run may read, decided once, before any Lightning object exists.

The caller (`faceswap train`, or a library user) authorises: the consent gate grants both subjects
for the purpose, and each subject's faceset must have been extracted under the granted record and
match its `faceset.built` entry. The result travels whole, with the workspace it was decided in, to
the data module (which only loads it) and to the training callbacks (which watch the grant).
"""

from __future__ import annotations

from dataclasses import dataclass

from faceswap.consent.gate import ConsentGate, ConsentGrant, ConsentRefused
from faceswap.consent.registry import ConsentStore
from faceswap.data.faceset import INDEX, Faceset
from faceswap.ledger import Entry
from faceswap.workspace import Workspace


@dataclass(frozen=True)
class AuthorisedData:
    workspace: Workspace
    grant: ConsentGrant
    facesets: dict[str, Faceset]  # "a" (the source), "b" (the target)


def authorise_training(store: ConsentStore, subject_a: str, subject_b: str, purpose: str) -> AuthorisedData:
    """The grant and both facesets, or ConsentRefused naming the subject and the reason."""
    grant = ConsentGate(store).authorize(subject_a, subject_b, purpose)
    built = store.ledger.entries("faceset.built")
    facesets = {
        key: _checked_faceset(store, grant, subject, built) for key, subject in (("a", subject_a), ("b", subject_b))
    }
    return AuthorisedData(store.workspace, grant, facesets)


def _checked_faceset(store: ConsentStore, grant: ConsentGrant, subject: str, built: list[Entry]) -> Faceset:
    folder = store.workspace.facesets_dir / subject
    if not (folder / INDEX).exists():
        raise ConsentRefused(f"no faceset for subject '{subject}': run `faceswap extract ... --subject {subject}`")
    faceset = Faceset.load(folder)
    granted = grant.record_for(subject)
    if faceset.header.subject_id != subject:
        raise ConsentRefused(f"faceset {folder} belongs to subject '{faceset.header.subject_id}', not '{subject}'")
    if faceset.header.record_id != granted.record_id:
        raise ConsentRefused(
            f"faceset {folder} was extracted under consent record {faceset.header.record_id}, "
            f"but the grant for '{subject}' is record {granted.record_id}"
        )
    if not faceset.faces:
        raise ConsentRefused(f"faceset {folder} is empty")
    faceset.recorded_in(built)
    return faceset
