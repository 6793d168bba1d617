"""Consent-gated face swapping: every output is watermarked and logged in a signed ledger."""

__version__ = "0.1.0"
