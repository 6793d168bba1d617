"""Metrics of a conversion: identity, expression preservation, jitter, watermark survival."""
