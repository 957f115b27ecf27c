"""report.html and index.html are pure functions of report.json: what they must show, and how."""

from __future__ import annotations

import copy
import re

import numpy as np

from edgec.report.layer_table import snr_db
from edgec.report.html import render_html, render_index
from edgec.report.sections import next_step
from edgec.verify.detail import confusion, detail, error_histogram

ROWS = [
    {"index": 0, "name": "conv1", "op": "CONV_2D", "output_shape": [1, 8, 8, 32], "macs": 18432,
     "weight_bytes": 416, "sparsity": 0.0035, "unique_values_max_per_channel": 9, "int8_snr_db": 41.7,
     "time_share": None},
    {"index": 1, "name": "pool", "op": "MAX_POOL_2D", "output_shape": [1, 4, 4, 32], "macs": 0,
     "weight_bytes": 0, "sparsity": None, "unique_values_max_per_channel": None, "int8_snr_db": 150.0,
     "time_share": None},
    {"index": 2, "name": "fc1", "op": "FULLY_CONNECTED", "output_shape": [1, 10], "macs": 5120,
     "weight_bytes": 5160, "sparsity": 0.5, "unique_values_max_per_channel": 16, "int8_snr_db": 12.5,
     "time_share": None},
]
REPORT = {
    "target": "cortex-m4", "format": "tflm", "edgec_version": "0.1.0",
    "model": {"source": "digits.keras", "params": 5744, "macs": 23552},
    "stages": [{"name": "load", "seconds": 1.0}, {"name": "verify", "seconds": 2.0}],
    "size": {"float_tflite_bytes": 24000, "artifact_bytes": 7000, "flash_bytes": 7000, "gzip_bytes": 6000},
    "memory": {"arena_bytes": 4096, "arena_measured_host_bytes": 2800, "flash_budget_bytes": 917504,
               "ram_budget_bytes": 245760, "flash_reserved_bytes": 131072, "ram_reserved_bytes": 16384,
               "arena_note": "measured"},
    "compression": {"bytes": {"total_bytes": 7000, "weights_bytes": 5400, "biases_bytes": 176,
                              "quantization_bytes": 300, "lut_tables_bytes": 0, "rest_bytes": 1124}},
    "layers": {"rows": ROWS, "time_share_note": "not measured: no per-layer latency"},
    "verification": {"runtime": "tflm", "samples": 3, "top1_agreement": 2 / 3, "reference_top1": 1.0,
                     "artifact_top1": 2 / 3, "cosine": 0.99998, "passed": True, "failures": [],
                     "outputs_detail": [{"output": "probs", "kind": "classes",
                                         "confusion": [[1, 0, 0], [0, 1, 1], [0, 0, 0]]}]},
    "failures": [],
}


def _over_budget() -> dict:
    report = copy.deepcopy(REPORT)
    report["size"]["flash_bytes"] = 1_000_000
    report["failures"] = ["[budget / cortex-m0plus] flash: model needs 1000000 B, 82496 B over the 917504 B "
                          "available. Try fewer channels or smaller inputs, --prune and --clusters (LUT "
                          "compression), or a bigger target"]
    return report


def test_gauges_carry_the_measured_use_budget_and_reserve():
    page = render_html(REPORT)
    gauges = re.findall(r'<svg class="gauge"[^>]*>', page)
    assert len(gauges) == 2
    assert 'data-label="Flash" data-used="7000" data-budget="917504" data-reserved="131072"' in gauges[0]
    assert 'data-label="RAM" data-used="4096" data-budget="245760" data-reserved="16384"' in gauges[1]
    assert 'id="verdict">PASSED' in page and 'id="next-step"' not in page


def test_over_budget_report_says_failed_by_how_much_and_what_to_do():
    page = render_html(_over_budget())
    assert 'id="verdict">FAILED' in page and 'class="over"' in page
    assert "over by 80.6 KiB" in page  # 1,000,000 - 917,504 B
    assert "Try" not in next_step(_over_budget()) and "--prune" in next_step(_over_budget())
    assert 'id="next-step"' in page


def test_verification_failure_points_at_the_layers_to_keep_in_float():
    report = {"failures": ["[verify / x] top1_agreement 0.5 < 0.95",
                           "[verify / x] worst int8 layers: mixer, a; try --max-accuracy-drop or --keep-float mixer"]}
    assert next_step(report) == "Int8 hurts a few layers: try --max-accuracy-drop or --keep-float mixer"


def test_layer_table_has_one_row_per_layer_and_marks_the_worst():
    page = render_html(REPORT)
    table = re.search(r'<table id="layer-table".*?</table>', page, re.S).group(0)
    assert len(re.findall(r"<tr[ >]", table)) == 1 + len(ROWS)
    assert 'data-col="time_share"' not in table  # no value in any row: left out, its note shown instead
    assert "not measured: no per-layer latency" in page
    assert '<td data-col="macs" data-v="18432" class="hot">18,432</td>' in table
    worst = re.findall(r'<tr class="worst">.*?</tr>', table)
    assert [re.search(r'data-col="name" data-v="(\w+)"', w).group(1) for w in worst] == ["fc1"]
    assert '<td data-col="int8_snr_db" data-v="12.5" class="hot">12.5 dB</td>' in table


def test_unknown_verification_keys_are_shown_with_a_fallback_label():
    report = copy.deepcopy(REPORT)
    report["verification"]["output_metrics"] = [{"name": "boxes", "snr_db": 31.25, "cosine": 0.9991}]
    page = render_html(report)
    assert "output metrics" in page and "boxes" in page and "31.2 dB" in page and "0.999100" in page


def test_confusion_matrix_and_error_histogram_are_drawn_from_the_detail():
    page = render_html(REPORT)
    assert re.search(r'<svg class="confusion"[^>]*data-classes="3" data-disagreements="1"', page)
    report = copy.deepcopy(REPORT)
    report["verification"]["outputs_detail"] = [{"output": "depth", "kind": "values", "error_histogram":
                                                 {"edges": [0.0, 0.5, 1.0], "counts": [7, 2], "nonfinite": 0}}]
    assert re.search(r'<svg class="histogram"[^>]*data-total="9"', render_html(report))


def test_page_is_self_contained_and_deterministic():
    page = render_html(REPORT)
    assert page == render_html(copy.deepcopy(REPORT))
    assert not re.search(r'(src|href)="(https?:)?//', page) and "@import" not in page
    assert "@media print" in page


def test_waterfall_only_where_compression_ran():
    assert 'class="waterfall"' not in render_html(REPORT)
    report = copy.deepcopy(REPORT)
    report["stages"].insert(1, {"name": "prune", "seconds": 3.0})
    report["verification"]["optimized_float"] = {"top1": 0.98}
    report["compression"]["lut"] = {"bytes_before": 9000, "bytes_after": 7400}
    report["compression"]["slim"] = {"applied": True, "bytes_before": 7400, "bytes_after": 7000}
    page = render_html(report)
    assert 'class="waterfall"' in page and 'data-steps="6"' in page  # float, prune, int8, LUT, slim, shipped


def test_index_has_one_linked_row_per_target_with_its_verdict():
    page = render_index({"cortex-m4": REPORT, "cortex-m0plus": _over_budget()})
    rows = re.findall(r"<tr><td>.*?</tr>", page)
    assert len(rows) == 2
    assert '<a href="cortex-m4/report.html">' in rows[0] and "PASSED" in rows[0]
    assert '<a href="cortex-m0plus/report.html">' in rows[1] and "FAILED" in rows[1]
    assert "976.6 KiB / 896.0 KiB" in rows[1]


def test_index_links_the_sweep_page_only_when_a_sweep_ran_in_out():
    assert "sweep.html" not in render_index({"cortex-m4": REPORT})
    sweep = {"trials": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "pareto": ["a", "c"], "best": {"id": "c"}}
    page = render_index({"cortex-m4": REPORT}, sweep=sweep)
    assert '<a href="sweep.html">Recipe sweep</a>: 3 trials, 2 on the Pareto front, best c' in page
    assert "no best trial" in render_index({"cortex-m4": REPORT}, sweep={**sweep, "best": None})


def test_confusion_counts_float_rows_against_artifact_columns():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]], np.float32)
    art = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]], np.float32)
    assert confusion(ref, art) == [[1, 0], [1, 1]]
    [item] = detail([ref], [art], ["probs"])
    assert item["kind"] == "classes" and item["output"] == "probs"


def test_error_histogram_counts_every_value_and_the_nonfinite_apart():
    ref = np.zeros((2, 3), np.float32)
    art = np.array([[0.0, 0.5, 1.0], [np.nan, 0.25, 0.0]], np.float32)
    h = error_histogram(ref, art, bins=4)
    assert h["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0] and h["counts"] == [2, 1, 1, 1] and h["nonfinite"] == 1
    assert detail([ref[:, :1]], [art[:, :1]])[0]["kind"] == "values"


def test_snr_from_noise_to_signal():
    assert snr_db(0.01) == 40.0 and snr_db(1.0) == 0.0
    assert snr_db(None) is None and snr_db(float("nan")) is None and snr_db(0.0) is None
