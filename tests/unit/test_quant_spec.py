"""QuantSpec (edgec/quantize/spec.py): one target's quantization settings, resolved once and frozen."""

from __future__ import annotations

import dataclasses

import pytest

from edgec import pipeline
from edgec.core import targets
from edgec.core.errors import InputError
from edgec.quantize.spec import QuantSpec


def test_defaults_are_plain_int8_with_the_documented_sample_caps():
    spec = QuantSpec()
    assert (spec.scheme, spec.calibration_method, spec.per_channel, spec.io_dtype, spec.stem) == \
        ("int8", "minmax", True, "int8", "int8")
    assert spec.keep_float == () and spec.max_accuracy_drop is None and not spec.mixed
    assert not spec.int16x8 and not spec.layer_error
    # The caps the quantizers used as bare numbers before; changing one changes the artifacts.
    assert (spec.onnx_calibration_samples, spec.nncf_calibration_samples, spec.debug_samples,
            spec.qdq_debug_samples) == (256, 300, 64, 32)


def test_spec_is_frozen_and_hashable():
    spec = QuantSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stem = "float"  # type: ignore[misc]
    assert hash(spec) == hash(QuantSpec())


def test_built_from_the_target_profile_alone():
    spec = QuantSpec.from_settings({}, targets.resolve("onnx-cpu"))
    assert (spec.stem, spec.io_dtype, spec.calibration_method, spec.activation_dtype) == \
        ("auto", "float32", "minmax", "uint8")
    mcu = QuantSpec.from_settings({}, targets.resolve("cortex-m4"))
    assert mcu.int16x8 and mcu.io_dtype == "int8" and mcu.stem == "int8"
    assert QuantSpec.from_settings({}, targets.resolve("jetson-orin-onnx")).activation_dtype == "int8"


def test_command_line_settings_override_the_target_and_other_keys_are_ignored():
    settings = {"model": "m.keras", "prune": 0.5, "calibration_method": "percentile", "stem": "int8",
                "keep_float": ["conv2d", "dense"], "max_accuracy_drop": 0.01, "layer_error": True}
    spec = QuantSpec.from_settings(settings, targets.resolve("onnx-cpu"))
    assert (spec.calibration_method, spec.stem, spec.keep_float, spec.max_accuracy_drop, spec.layer_error) == \
        ("percentile", "int8", ("conv2d", "dense"), 0.01, True)
    assert spec.mixed


@pytest.mark.parametrize("settings, message", [
    ({"max_accuracy_drop": 1.5}, "--max-accuracy-drop 1.5: give a top-1 drop between 0 and 1"),
    ({"max_accuracy_drop": float("nan")}, "--max-accuracy-drop nan"),
    ({"max_accuracy_drop": "0.1"}, "--max-accuracy-drop 0.1"),
    ({"calibration_method": "median"}, r"\[quantize / onnx-cpu\] calibration method 'median' is unknown"),
    ({"stem": "fp16"}, r"\[quantize / onnx-cpu\] stem 'fp16' is unknown"),
    ({"keep_float": "conv2d"}, "--keep-float 'conv2d': give layer names"),
    ({"keep_float": [3]}, "--keep-float"),
])
def test_a_bad_value_is_an_input_error(settings, message):
    with pytest.raises(InputError, match=message):
        QuantSpec.from_settings(settings, targets.resolve("onnx-cpu"))


def test_a_bad_value_in_the_target_file_is_refused_even_when_the_flag_overrides_it():
    target = targets.resolve("onnx-cpu")
    target["quantization"]["stem"] = "fast"
    with pytest.raises(InputError, match=r"\[quantize / onnx-cpu\] stem 'fast' is unknown"):
        QuantSpec.from_settings({"stem": "float"}, target)


@pytest.mark.parametrize("cap", ["onnx_calibration_samples", "nncf_calibration_samples", "debug_samples",
                                 "qdq_debug_samples"])
def test_a_sample_cap_below_one_is_refused(cap):
    with pytest.raises(InputError, match=f"{cap} = 0"):
        QuantSpec(**{cap: 0})


def test_pipeline_refuses_before_any_work(tmp_path):
    # The specs are built with the targets, before the model is loaded: a missing model is not reached.
    with pytest.raises(InputError, match="--max-accuracy-drop 2"):
        pipeline.compile(tmp_path / "missing.keras", ["onnx-cpu"], calibration="random", out=tmp_path / "out",
                         recipe={"max_accuracy_drop": 2})
    assert not (tmp_path / "out").exists()
