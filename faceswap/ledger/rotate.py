"""`faceswap keys rotate`: the one way the registrar key and the watermark secret change, logged in
the ledger (the registrar key's rotation signed by both keys)."""

from __future__ import annotations

import os

from faceswap.ledger import Entry, open_ledger
from faceswap.ledger.keys import PRIVATE_KEY_FILE, RegistrarKey


def rotate_registrar_key(workspace) -> tuple[Entry, str, str]:
    """Append a `key.rotated` entry (signed by the old key, with the new key's proof of possession)
    and install the new key inside the same transaction; records signed before stay valid under the
    key that was active when they were registered. Returns (entry, old key id, new key id)."""
    ledger = open_ledger(workspace)
    ledger.entries()  # refuse to rotate over a ledger that fails verification
    old = ledger.key
    assert old is not None
    new = RegistrarKey.generate()
    keys_dir = workspace.keys_dir
    retired = keys_dir / f"{PRIVATE_KEY_FILE}.{old.key_id}.retired"

    def install() -> None:
        os.link(keys_dir / PRIVATE_KEY_FILE, retired)  # kept, not reused: it can no longer sign rows
        new.install(keys_dir, replace=True)

    try:
        entry = ledger.rotate(new, install)
    except BaseException:
        if retired.exists():  # installed, but the entry did not commit: the old key stays in charge
            os.replace(retired, keys_dir / PRIVATE_KEY_FILE)
        raise
    return entry, old.key_id, new.key_id


def rotate_watermark_secret(workspace) -> tuple[Entry, str | None, str]:
    """A new active watermark secret, pinned by a `watermark.key` entry signed with the registrar
    key; older secrets stay in keys/watermark/ so outputs marked with them still read. Returns
    (entry, old key id or None, new key id)."""
    from faceswap.ledger import watermark_keys

    ledger = open_ledger(workspace)
    ledger.entries()  # refuse to rotate over a ledger that fails verification
    return watermark_keys.rotate(ledger, workspace.keys_dir)
