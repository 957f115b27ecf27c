"""edgec.sweep."""
