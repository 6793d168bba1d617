"""The built-in demo: synthetic subjects (morphs of package-shipped photos) and the end-to-end run."""
