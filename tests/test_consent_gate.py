"""The gate: refused for missing, expired, revoked, wrong purpose or role; granted otherwise."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from consent_helpers import in_days, registration, store_at

from faceswap.consent.gate import ConsentGate, ConsentGrant, ConsentRefused
from faceswap.consent.registry import utc_today


def test_grant_names_both_records_and_their_hashes(workspace_root):
    store = store_at(workspace_root)
    grant = ConsentGate(store).authorize("astro", "hanks", "evaluation")
    snapshot = store.load()
    astro, hanks = snapshot.for_subject("astro")[0], snapshot.for_subject("hanks")[0]
    assert grant.record_ids == [astro.record_id, hanks.record_id]
    assert [r.record_sha256 for r in grant.records] == [astro.sha256, hanks.sha256]
    assert [r.role for r in grant.records] == ["source", "target"]
    assert ConsentGrant.from_json(grant.to_json()) == grant


def test_missing_subject_is_refused(workspace_root):
    with pytest.raises(ConsentRefused, match="no consent record for subject 'stranger'"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "stranger", "evaluation")


def test_expired_record_is_refused(workspace_root):
    later = date.today() + timedelta(days=400)
    with pytest.raises(ConsentRefused, match=r"subject 'astro': consent record astro-\S+ expired on"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation", today=later)


def test_a_record_valid_only_from_tomorrow_is_refused_today(workspace_root, reference_photos, monkeypatch):
    store = store_at(workspace_root)
    today = utc_today()
    tomorrow = today + timedelta(days=1)
    store.revoke("hanks", "re-registered to start tomorrow")
    monkeypatch.setattr("faceswap.consent.registry.utc_today", lambda: tomorrow)  # registered as of tomorrow
    record = store.register(registration("hanks", reference_photos["hanks"], reference_photos["evidence"]))
    monkeypatch.undo()
    assert record.valid_from == tomorrow
    reason = rf"subject 'hanks': consent record {record.record_id} is valid only from {tomorrow.isoformat()}$"
    with pytest.raises(ConsentRefused, match=reason):
        ConsentGate(store).authorize("astro", "hanks", "evaluation", today=today)
    with pytest.raises(ConsentRefused, match=reason):
        ConsentGate(store).authorize("astro", "hanks", "evaluation")  # the gate's own clock: today
    granted = ConsentGate(store).authorize("astro", "hanks", "evaluation", today=tomorrow)
    assert granted.record_ids[1] == record.record_id


def test_wrong_purpose_is_refused(workspace_root):
    with pytest.raises(ConsentRefused, match="does not allow purpose 'dubbing-research'"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "dubbing-research")


def test_unknown_purpose_is_refused(workspace_root):
    with pytest.raises(ConsentRefused, match="unknown purpose"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "advertising")


def test_missing_role_is_refused(workspace_root, reference_photos):
    store = store_at(workspace_root)
    store.revoke("hanks", "re-registering as source only")
    store.register(registration("hanks", reference_photos["hanks"], reference_photos["evidence"], roles=["source"]))
    with pytest.raises(ConsentRefused, match="does not grant the target role"):
        ConsentGate(store).authorize("astro", "hanks", "evaluation")
    assert ConsentGate(store).authorize("hanks", "astro", "evaluation").subject_a == "hanks"


def test_a_replacement_registered_in_the_same_second_is_the_current_record(
    workspace_root, reference_photos, monkeypatch
):
    store = store_at(workspace_root)
    old = store.load().for_subject("hanks")[0]
    monkeypatch.setattr("faceswap.consent.registry.utc_timestamp", lambda: old.document["created_at"])
    store.revoke("hanks", "re-registering as source only")
    new = store.register(
        registration("hanks", reference_photos["hanks"], reference_photos["evidence"], roles=["source"])
    )
    records = store.load().for_subject("hanks")
    assert [r.record_id for r in records] == [new.record_id, old.record_id]
    with pytest.raises(ConsentRefused, match="does not grant the target role"):
        ConsentGate(store).authorize("astro", "hanks", "evaluation")


def test_revocation_takes_effect_on_the_next_authorize(workspace_root):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    grant = gate.authorize("astro", "hanks", "vfx-prototyping")
    store.revoke("astro", "subject withdrew")
    with pytest.raises(ConsentRefused, match="was revoked at .* \\(subject withdrew\\)"):
        gate.authorize("astro", "hanks", "vfx-prototyping")
    with pytest.raises(ConsentRefused, match="revoked"):
        gate.recheck(grant)


def test_recheck_refuses_a_grant_whose_record_was_replaced(workspace_root, reference_photos):
    store = store_at(workspace_root)
    gate = ConsentGate(store)
    grant = gate.authorize("astro", "hanks", "evaluation")
    store.revoke("astro", "renewal")
    store.register(
        registration("astro", reference_photos["astronaut"], reference_photos["evidence"], expires_at=in_days(300))
    )
    assert gate.authorize("astro", "hanks", "evaluation").record_ids != grant.record_ids
    with pytest.raises(ConsentRefused, match="no longer the subject's active record"):
        gate.recheck(grant)


def test_same_subject_twice_is_refused(workspace_root):
    with pytest.raises(ConsentRefused, match="must be different"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "astro", "evaluation")
