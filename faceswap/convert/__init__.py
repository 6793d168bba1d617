"""Conversion: consent re-check, decode, analyse, swap, mask, colour, blend, and the output sink."""
