"""Verification metrics that fit the output (edgec/core/metrics.py, edgec/verify/host.py's compare and gate)."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.compress import recipe
from edgec.core.errors import InputError
from edgec.core.metrics import infer_kind, range_relative_error, snr_db
from edgec.verify.host import compare, gate

THRESHOLDS = {"min_top1_agreement": 0.95, "min_cosine": 0.98, "min_snr_db": 20.0, "max_top1_drop": 0.02}


def _probabilities(n: int, classes: int, seed: int = 0) -> np.ndarray:
    logits = np.random.RandomState(seed).normal(0, 3, (n, classes))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def test_softmax_rows_are_a_classifier_and_a_reconstruction_is_not():
    assert infer_kind(_probabilities(20, 10))[0] == "classifier"
    recon = np.random.RandomState(1).normal(0, 1, (20, 640)).astype(np.float32)
    assert infer_kind(recon) == ("regression", "not probabilities over a class axis")
    assert infer_kind(np.random.RandomState(2).rand(20, 1).astype(np.float32))[0] == "regression"  # a score
    assert infer_kind(recon[:, :10], has_labels=True)[0] == "classifier"  # logits with class labels
    # probabilities on the channel axis of an N x C x 1 x 1 map (a 1x1 conv head, e.g. SqueezeNet in ONNX)
    assert infer_kind(_probabilities(20, 10).reshape(20, 10, 1, 1))[0] == "classifier"
    assert infer_kind(recon.reshape(20, -1, 1, 1))[0] == "regression"


def test_snr_is_signal_over_error_power_in_db():
    ref = np.ones((4, 100), np.float32)
    assert snr_db(ref, ref * 1.1) == pytest.approx(20.0)  # error power 1% of the signal's
    assert snr_db(ref, ref) is None  # no error at all


def test_reconstruction_is_judged_by_snr_not_top1():
    rng = np.random.RandomState(0)
    ref = rng.normal(0, 1, (50, 640)).astype(np.float32)
    close = ref + rng.normal(0, 0.03, ref.shape).astype(np.float32)  # ~30 dB: argmax of 640 values still flips
    metrics = compare([ref], [close], None, names=["recon"])
    assert metrics["output_kind"] == "regression" and metrics["top1_agreement"] is None
    assert 29 < metrics["snr_db"] < 31 and metrics["outputs"][0]["snr_db"] == metrics["snr_db"]
    assert "not a classifier" in metrics["top1_note"]
    assert gate(metrics, THRESHOLDS) == []
    noisy = ref + rng.normal(0, 0.3, ref.shape).astype(np.float32)  # ~10 dB, cosine 0.96
    failures = gate(compare([ref], [noisy], None, names=["recon"]), {**THRESHOLDS, "min_cosine": 0.9})
    assert len(failures) == 1 and failures[0].startswith("SNR 10.") and "< 20.0 dB" in failures[0]


def test_classifier_keeps_its_keys_and_top1_gate():
    ref = _probabilities(40, 10)
    art = ref[:, ::-1].copy()  # another class every time
    labels = ref.argmax(axis=1)
    metrics = compare([ref], [art], labels)
    assert metrics["output_kind"] == "classifier" and metrics["reference_top1"] == 1.0
    assert metrics["top1_agreement"] < 0.2 and metrics["artifact_top1"] < 0.2
    failures = gate(metrics, THRESHOLDS)
    assert any(f.startswith("top1_agreement") for f in failures) and any(f.startswith("top-1 drop") for f in failures)
    assert not any("SNR" in f for f in failures)


def test_every_output_of_a_multi_output_model_is_verified_and_named():
    rng = np.random.RandomState(3)
    probs, box = _probabilities(30, 5), rng.normal(0, 1, (30, 4)).astype(np.float32)
    bad_box = box + rng.normal(0, 1, box.shape).astype(np.float32)
    metrics = compare([probs, box], [probs, bad_box], None, names=["label", "box"])
    assert [(o["name"], o["kind"]) for o in metrics["outputs"]] == [("label", "classifier"), ("box", "regression")]
    failures = gate(metrics, THRESHOLDS)
    assert failures and all(f.startswith("output 'box' ") for f in failures)


def test_recipe_sets_the_kind_for_every_output_or_by_name():
    probs = _probabilities(10, 4)
    every = compare([probs], [probs], None, names=["p"], settings={"output_kind": "regression"})
    assert every["output_kind"] == "regression" and "output_kind" in every["outputs"][0]["kind_reason"]
    by_name = compare([probs, probs], [probs, probs], None, names=["a", "b"],
                      settings={"output_kind": "regression", "output_kinds": {"b": "classifier"}})
    assert [o["kind"] for o in by_name["outputs"]] == ["regression", "classifier"]
    with pytest.raises(InputError, match="output_kinds names c"):
        compare([probs], [probs], None, names=["a"], settings={"output_kinds": {"c": "regression"}})


def test_recipe_output_kind_is_checked():
    r = recipe.from_dict({"output_kind": "regression", "output_kinds": {"recon": "classifier"}})
    assert r.output_kind == "regression" and "output_kinds = {\"recon\" = \"classifier\"}" in r.to_toml()
    with pytest.raises(InputError, match="output_kind"):
        recipe.from_dict({"output_kind": "embedding"})
    with pytest.raises(InputError, match="output_kinds"):
        recipe.from_dict({"output_kinds": {"recon": 3}})


def test_input_dependent_snr_counts_only_what_varies_with_the_input():
    from edgec.core.metrics import input_dependent_snr_db

    rng = np.random.RandomState(0)
    varying = rng.normal(0, 0.1, (50, 10))
    ref = (5.0 + varying).astype(np.float32)  # a large constant part, a small input-dependent one
    art = ref + rng.normal(0, 0.1, ref.shape).astype(np.float32)  # error as large as the variation
    assert snr_db(ref, art) > 30.0  # the plain SNR counts the constant part as signal
    assert abs(input_dependent_snr_db(ref, art)) < 1.0  # 0 dB: the error is as large as the signal
    assert input_dependent_snr_db(ref[:1], art[:1]) is None  # one sample has no variation to measure


def test_an_output_that_ignores_the_input_is_flagged_whatever_the_agreement():
    from edgec.core.metrics import output_warnings

    ref = np.tile(_probabilities(1, 10), (32, 1))  # the same probabilities for every sample
    metrics = compare([ref], [ref.copy()], None)
    first = metrics["outputs"][0]
    assert first["reference_constant"] and metrics["top1_agreement"] == 1.0
    assert "same output for every held-out sample" in output_warnings(first, "")[0]
    varied = _probabilities(32, 10)
    assert not compare([varied], [varied.copy()], None)["outputs"][0]["reference_constant"]
    assert not output_warnings(compare([varied], [varied.copy()], None)["outputs"][0], "")


def test_an_all_zero_artifact_has_cosine_zero_not_one():
    ref = np.full((4, 1000), 1e-3, np.float32)  # a flat softmax over 1000 classes
    metrics = compare([ref], [np.zeros_like(ref)], None)
    assert metrics["cosine"] == 0.0 and any("cosine" in f for f in gate(metrics, THRESHOLDS))
    assert compare([np.zeros_like(ref)], [np.zeros_like(ref)], None)["cosine"] == 1.0


def test_a_rewritten_model_is_judged_by_the_range_floored_for_a_near_constant_output():
    rng = np.random.RandomState(3)
    varying = rng.normal(0, 1, (4, 10))
    assert range_relative_error(varying, varying) == 0.0
    err = range_relative_error(varying, varying + 1e-3)
    assert err == pytest.approx(1e-3 / np.ptp(varying))  # a varying output: its range is the scale
    # The light-zoo DenseNet-121's logits: one value everywhere, float32 reordering noise of 3e-8 spread.
    constant = np.full((4, 1000), 0.46095502) + rng.uniform(0, 2e-8, (4, 1000))
    noisy = constant + 3e-8
    assert 3e-8 / np.ptp(constant) > 1.0  # against its own spread, noise looks like a 150% error
    assert range_relative_error(constant, noisy) == pytest.approx(3e-8 / (1e-2 * np.abs(constant).max()))
    assert range_relative_error(constant, constant * 1.01) > 1e-4  # a 1% error still fails the lowering check
    assert range_relative_error(np.zeros(5), np.full(5, 1e-6)) == pytest.approx(1e-6)  # all zero: scale 1
    assert range_relative_error(np.zeros(5), np.zeros(6)) == float("inf")
