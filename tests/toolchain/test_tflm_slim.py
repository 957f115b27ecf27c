"""TFLite Micro slimming (edgec/backends/tflm/slim.py): conv bias quantization and long names dropped, bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def digits_int8():
    from edgec.quantize import converter as quantize
    from edgec.core.tf import keras

    model = keras().models.load_model(DIGITS_MODEL, compile=False)
    calib = {model.inputs[0].name.split(":")[0]: np.load(DIGITS_CALIBRATION)["image"][:64]}
    return quantize.int8_tflite(model, calib)


@pytest.fixture(scope="module")
def samples(digits_int8):
    from edgec.runtimes.base import quantize_samples

    return quantize_samples(digits_int8, [np.load(DIGITS_EVAL)["image"][:40]])


def _bias_tensors(model, ops):
    return [model.tensors[op.inputs[2]] for op in model.operators if op.name in ops and len(op.inputs) > 2]


def test_slim_drops_conv_bias_parameters_and_long_names_only(digits_int8):
    from edgec.core.tflite_model import parse
    from edgec.backends.tflm.slim import slim

    slimmed, report = slim(digits_int8)
    before, after = parse(digits_int8), parse(slimmed)
    conv_biases = _bias_tensors(after, ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert conv_biases and all(t.scales is None for t in conv_biases)
    assert all(t.scales is not None for t in _bias_tensors(after, ("FULLY_CONNECTED",)))  # its kernel checks them
    assert report["bias_quantization_bytes"] == 12 * sum(len(t.scales) for t in
                                                          _bias_tensors(before, ("CONV_2D", "DEPTHWISE_CONV_2D")))
    # Constants, operators and the interface are untouched; inner names become layer names.
    assert [t.data.tobytes() if t.is_constant else None for t in before.tensors] == \
        [t.data.tobytes() if t.is_constant else None for t in after.tensors]
    assert before.op_counts() == after.op_counts()
    io = before.inputs + before.outputs
    assert [after.tensors[i].name for i in io] == [before.tensors[i].name for i in io]
    assert all("/" not in t.name and ";" not in t.name for i, t in enumerate(after.tensors) if i not in io)
    assert report["bytes_after"] == len(slimmed) < len(digits_int8) - report["bias_quantization_bytes"]


def test_slimmed_model_is_bit_exact_in_tflite_micro_and_shipped(digits_int8, samples):
    from edgec.runtimes.tflm import first_difference
    from edgec.backends.tflm.slim import slim_checked

    shipped, report = slim_checked(digits_int8, samples)
    assert report["applied"] and report["bit_exact_samples"] == len(samples) == 40
    assert len(shipped) == report["bytes_after"] < len(digits_int8)
    assert first_difference(digits_int8, shipped, samples) is None


def test_first_difference_finds_a_changed_output(digits_int8, samples):
    from edgec.quantize.converter import int8_tflite
    from edgec.core.tf import keras
    from edgec.runtimes.tflm import first_difference

    model = keras().models.load_model(DIGITS_MODEL, compile=False)
    other = int8_tflite(model, {model.inputs[0].name.split(":")[0]: np.load(DIGITS_CALIBRATION)["image"][64:72]})
    where = first_difference(digits_int8, other, samples)  # other calibration: other scales, other outputs
    assert where is not None and where.startswith("sample ") and "LSB" in where


def test_slim_shares_one_zero_point_per_weight_tensor_and_drops_signatures(digits_int8):
    from edgec.core.tflite_model import parse
    from edgec.backends.tflm.slim import slim
    from edgec.runtimes.litert import litert_readable

    slimmed, report = slim(digits_int8)
    before, after = parse(digits_int8), parse(slimmed)
    per_channel = [i for i, t in enumerate(before.tensors) if t.zero_points is not None and len(t.zero_points) > 1]
    assert per_channel  # the digits CNN's conv and dense weights are per-channel int8
    kept = [i for i in per_channel if after.tensors[i].scales is not None]  # conv biases lose theirs whole
    assert kept and all(len(after.tensors[i].zero_points) == 1 and after.tensors[i].zero_points[0] == 0 and
                        len(after.tensors[i].scales) == len(before.tensors[i].scales) for i in kept)
    assert report["zero_point_bytes"] == 8 * sum(len(before.tensors[i].zero_points) - 1 for i in kept)
    assert report["signature_defs_removed"] == 1
    # Activations keep their own (non-zero) zero points.
    assert [t.zero_points.tolist() for i, t in enumerate(after.tensors) if i not in per_channel
            and t.zero_points is not None and t.scales is not None and len(t.scales) == 1] == \
        [t.zero_points.tolist() for i, t in enumerate(before.tensors) if i not in per_channel
         and t.zero_points is not None and t.scales is not None and len(t.scales) == 1]
    # LiteRT wants a zero point per scale: the slimmed model is for TFLite Micro only, and says so.
    assert litert_readable(digits_int8) is None
    assert "one zero point shared by all channels" in litert_readable(slimmed)
    from ai_edge_litert.interpreter import Interpreter

    with pytest.raises(ValueError, match=r"QuantizationParam has 1 zero_point values and \d+ scale values"):
        Interpreter(model_content=slimmed).allocate_tensors()
