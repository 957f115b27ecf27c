"""report.json and report.html: sections, SVG charts, per-layer tables, artifact statistics."""
