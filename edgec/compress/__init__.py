"""edgec.compress."""
