"""edgec.backends.litert."""
