"""tools/bench_coverage.py: merging slices alone writes the merged coverage.json; cells are classified."""

from __future__ import annotations

import json
import sys

from tools import bench_coverage


def test_a_merge_that_runs_no_cell_still_writes_the_merged_json(tmp_path, monkeypatch):
    other = tmp_path / "slice"
    other.mkdir()
    cell = {"status": "refused", "reason": "over budget: flash", "exit": 1, "seconds": 1.0}
    (other / "coverage.json").write_text(json.dumps({"m (x)": {"family": "f", "cells": {"cortex-m7": cell}}}))
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["bench_coverage", "--out", str(out), "--merge", str(other), "--models", "^$"])
    assert bench_coverage.main() == 0
    merged = json.loads((out / "coverage.json").read_text())
    assert merged["m (x)"]["cells"]["cortex-m7"]["status"] == "refused"
    assert "| m (x) | f | refused: over budget: flash |" in (out / "coverage.md").read_text()


def test_verified_classifier_cells_show_agreement_and_top1():
    metrics = {"top1_agreement": 0.97, "reference_top1": 0.25, "artifact_top1": 0.23, "cosine": 0.995}
    cell = {"status": "verified", "reason": "", "metrics": metrics}
    assert bench_coverage.short(cell) == "verified (agreement 0.970, top-1 0.250 -> 0.230, cos 0.995)"
