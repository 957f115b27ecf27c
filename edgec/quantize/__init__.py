"""edgec.quantize."""
