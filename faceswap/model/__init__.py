"""The swap model: shared encoder and inter, one decoder per subject (DFL "df"), or "liae"."""
