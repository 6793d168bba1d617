"""Output: the sink (the only code that writes generated pixels), its format writers and its
read-back of the file it has just written. Never imports verify: what is written is checked by
reading it back here, not by the verifier."""
