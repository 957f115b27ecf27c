"""edgec.report."""
