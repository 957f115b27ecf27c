"""edgec.device."""
