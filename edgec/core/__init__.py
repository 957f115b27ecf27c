"""edgec.core."""
