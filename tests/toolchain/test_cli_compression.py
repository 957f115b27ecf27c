"""`edgec compile` with compression flags and a recipe file: what was asked is what ships."""

from __future__ import annotations

import json

import pytest

from edgec.core.tflite_model import parse
from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    from edgec.cli import main

    out = tmp_path_factory.mktemp("compressed")
    recipe = out / "edgec.toml"
    recipe.write_text("prune = 0.5\nclusters = 16\ncluster_counts = {fc1 = 4}\n")
    code = main(["compile", str(DIGITS_MODEL), "-t", "cortex-m4", "--recipe", str(recipe), "--calibration",
                 str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL), "-o", str(out)])
    assert code == 0
    return out / "cortex-m4"


def test_sparsity_and_clusters_are_measured_in_the_shipped_artifact(compressed):
    report = json.loads((compressed / "report.json").read_text())
    layers = {x["name"]: x for x in report["compression"]["layers"]}
    # First and last prunable layers stay dense by default; the middle ones carry the asked sparsity.
    assert layers["conv2"]["sparsity"] == pytest.approx(0.5, abs=0.03)
    assert layers["fc1"]["sparsity"] == pytest.approx(0.5, abs=0.03)
    assert 4 < layers["conv2"]["unique_values_max_per_channel"] <= 16
    assert layers["fc1"]["unique_values_max_per_channel"] <= 4  # cluster_counts in the recipe
    assert report["stages"][3]["counts"] == {"fc1": 4}
    assert [s["name"] for s in report["stages"]][:4] == ["load", "fuse", "prune", "cluster"]
    assert report["stages"][1]["fusions"]  # batch norms folded before compression


def test_lut_compression_is_bit_exact_and_shrinks_flash(compressed):
    report = json.loads((compressed / "report.json").read_text())
    lut = report["compression"]["lut"]
    assert lut["bit_exact_samples"] > 0
    # Slimming (edgec/backends/tflm/slim.py) comes after LUT compression and shrinks the file further, bit-exact.
    slim = report["compression"]["slim"]
    assert slim["applied"] and slim["bit_exact_samples"] > 0 and slim["bytes_before"] == lut["bytes_after"]
    assert report["size"]["flash_bytes"] < lut["bytes_after"] < lut["bytes_before"]
    assert "TFLM_DECODE" in parse((compressed / "model.tflite").read_bytes()).op_names()
    assert "resolver.AddDecode()" in (compressed / "op_resolver.h").read_text()
    ver = report["verification"]
    # LiteRT cannot read DECODE: its cross-check runs the uncompressed int8 model the LUT gate compared with.
    litert = ver["cross_check"]["litert"]
    assert ver["passed"] and litert["model"] == "intermediate/model_int8.tflite" and "TFLM_DECODE" in litert["why"]
    assert litert["top1_agreement"] > 0.9


def test_print_recipe_shows_flags_over_the_file(run_cli, tmp_path):
    recipe = tmp_path / "edgec.toml"
    recipe.write_text("prune = 0.5\nclusters = 16\ncluster_counts = {fc1 = 4}\n")
    code, out, _ = run_cli("compile", DIGITS_MODEL, "-t", "cortex-m4", "--recipe", recipe, "--clusters", "8",
                           "--print-recipe")
    assert code == 0 and "prune = 0.5" in out and "clusters = 8" in out


def test_unknown_recipe_key_is_refused(run_cli, tmp_path):
    recipe = tmp_path / "edgec.toml"
    recipe.write_text("prunning = 0.5\n")
    code, _, err = run_cli("compile", DIGITS_MODEL, "-t", "cortex-m4", "--recipe", recipe, "--calibration",
                           DIGITS_CALIBRATION)
    assert code == 2 and "prunning" in err


def test_cluster_bits_chooses_counts_per_layer_within_the_budget(tmp_path):
    from edgec.cli import main

    recipe = tmp_path / "edgec.toml"
    recipe.write_text("cluster_bits = 2.5\ncluster_per_channel = true\n")
    code = main(["compile", str(DIGITS_MODEL), "-t", "cortex-m4", "--recipe", str(recipe), "--calibration",
                 str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL), "-o", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "cortex-m4" / "report.json").read_text())
    stage = next(s for s in report["stages"] if s["name"] == "cluster")
    alloc = stage["allocation"]
    assert alloc["estimated_bytes"] <= alloc["budget_bytes"]
    assert set(alloc["sensitivity"]) == set(stage["counts"]) | set(alloc["int8"])  # every candidate measured
    for errors in alloc["sensitivity"].values():  # more clusters, less output error
        assert errors["1"] > errors["6"]
    layers = {x["name"]: x for x in report["compression"]["layers"]}
    assert stage["counts"] and all(layers[n]["unique_values_max_per_channel"] <= k for n, k in stage["counts"].items())
    # The digits CNN keeps its accuracy at 2.5 bits without fine-tuning (98.8% vs 99.0% float when written).
    assert code == 0 and report["verification"]["passed"]
