"""One folder per output format, each with its exporter; they do not import each other (registry.py lists them)."""
