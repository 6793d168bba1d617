"""Verification: the verdict on one file (verifier.py), a whole `faceswap verify` run (files.py),
the transparency proof a file's credentials carry, and what was done to a file since it was written.
Never imports output: a stranger's file is judged without the code that writes ours."""
