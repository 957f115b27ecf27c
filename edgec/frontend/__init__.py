"""edgec.frontend."""
