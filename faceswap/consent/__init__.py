"""Consent: signed records, revocations, and the gate every training and conversion run passes."""
