"""edgec.verify."""
