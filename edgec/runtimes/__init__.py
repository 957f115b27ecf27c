"""edgec.runtimes."""
