"""edgec.backends."""
