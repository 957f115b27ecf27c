"""edgec.frontend.keras."""
