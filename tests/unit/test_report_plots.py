"""report.html plots: drawn from report.json's numbers, byte-identical when drawn twice."""

import pytest

from edgec import report_plots

REPORT = {
    "format": "litert",
    "stages": [{"name": "float", "seconds": 0.1, "bytes": 348000, "top1": 0.99},
               {"name": "prune", "seconds": 1.0, "bytes": 200000, "top1": 0.985},
               {"name": "int8", "seconds": 2.0, "bytes": 96192, "top1": 0.984}],
    "layer_error": {"layers": [{"layer": "mixer", "noise_to_signal": 12.8},
                               {"layer": "pre", "noise_to_signal": 0.017}]},
}
BENCH = {"runtime": "litert", "artifact": {"p50_ms": 0.05}, "reference": {"p50_ms": 0.11}}


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_plots_are_byte_identical_when_drawn_twice(tmp_path, suffix):
    first = report_plots.plots_from_report(REPORT, tmp_path / "a", bench=BENCH, suffix=suffix)
    second = report_plots.plots_from_report(REPORT, tmp_path / "b", bench=BENCH, suffix=suffix)
    assert sorted(first) == ["accuracy", "latency", "layer_error", "size"]
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_svg_has_no_date_and_shows_the_numbers(tmp_path):
    import re

    paths = report_plots.plots_from_report(REPORT, tmp_path, bench=BENCH)
    svg = paths["latency"].read_text()
    assert "<dc:date>" not in svg
    texts = re.findall(r"<!-- (.*?) -->", svg)  # matplotlib labels each text path with a comment
    assert "2.20x" in texts and "float" in texts and "optimized" in texts
    labels = re.findall(r"<!-- (.*?) -->", paths["layer_error"].read_text())
    assert labels.index("mixer") > labels.index("pre")  # worst drawn last, i.e. on top


def test_report_without_stage_numbers_falls_back_to_float_and_artifact(tmp_path):
    report = {"format": "tflm", "size": {"float_tflite_bytes": 300000, "artifact_bytes": 90000},
              "verification": {"reference_top1": 0.99, "artifact_top1": 0.98}}
    paths = report_plots.plots_from_report(report, tmp_path)
    assert sorted(paths) == ["accuracy", "size"]
