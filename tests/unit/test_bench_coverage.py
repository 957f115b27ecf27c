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


def test_weak_verified_cells_are_marked_and_counted():
    constant = {"status": "verified", "reason": "", "metrics": {"cosine": 1.0}, "warnings": ["same output"]}
    low = {"status": "verified", "reason": "", "metrics": {"snr_db": 30.0, "input_dependent_snr_db": 4.2}}
    strong = {"status": "verified", "reason": "", "metrics": {"snr_db": 30.0, "input_dependent_snr_db": 24.0}}
    failed = {"status": "failed", "reason": "SNR 3 dB < 20 dB", "metrics": {"input_dependent_snr_db": 1.0}}
    assert bench_coverage.short(constant).startswith("verified, weak: float output constant over the samples")
    assert bench_coverage.short(low).startswith("verified, weak: input-dependent SNR 4 dB < 10 dB (SNR 30 dB")
    assert bench_coverage.short(strong) == "verified (SNR 30 dB, input-dependent SNR 24 dB)"
    assert bench_coverage.weak(failed) is None
    assert bench_coverage.weak({**low, "metrics": {"input_dependent_snr_db": 9.6}}) == "input-dependent SNR 9.6 dB < 10 dB"
    results = {name: {"family": "f", "cells": {"onnx-cpu": cell}}
               for name, cell in (("a", constant), ("b", low), ("c", strong), ("d", failed))}
    table = bench_coverage.markdown(results, ["onnx-cpu"])
    assert "Of the verified cells, 2 are weak: 1 have a float output" in table and "and 1 an input-dependent" in table
    assert table.splitlines()[-1] == "Code the cells ran on: unrecorded (4 cells)."


def test_each_cell_records_the_code_it_ran_on_and_the_table_counts_them():
    version = bench_coverage.code_version()
    assert version == "unknown" or len(version.removesuffix("-dirty")) == 7
    cells = {"a": {"status": "verified", "reason": "", "code": "1234567"},
             "b": {"status": "refused", "reason": "over budget: x", "code": "89abcde"},
             "c": {"status": "failed", "reason": "y", "code": "1234567"}}
    results = {name: {"family": "f", "cells": {"onnx-cpu": cell}} for name, cell in cells.items()}
    table = bench_coverage.markdown(results, ["onnx-cpu"])
    assert table.splitlines()[-1] == "Code the cells ran on: 1234567 (2 cells), 89abcde (1 cell)."


def test_random_weight_rows_are_judged_as_regression_with_a_recipe(tmp_path):
    """keras.applications (random weights) and the anomaly-detection autoencoder: SNR/cosine, not top-1."""
    rows = {case.name: case for case in bench_coverage.cases(tmp_path)}
    built = [case for case in rows.values() if case.make]
    apps = {case.make[1] for case in built}
    assert set(bench_coverage.KERAS_APPS) | {"ad"} == apps
    assert {case.make[0] for case in built} == {"tf_keras", "keras3"}
    assert all(case.kind == "regression" and not case.cifar for case in built)
    ad = rows["MLPerf anomaly detection (seeded weights)"]
    assert ad.input_shape == (640,) and ad.scale == "noise"
