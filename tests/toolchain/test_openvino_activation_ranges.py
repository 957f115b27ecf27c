"""NNCF's per-channel activation ranges that land on the wrong axis (edgec.backends.openvino.nncf_quantize).

NNCF quantizes a depthwise convolution's input per channel (axis 1) and moves that quantizer up
through the layout Transpose of a channels-last graph without moving its axis: the ranges then run
along the image's rows, and OpenVINO's CPU plugin fails to compile the model once it fuses the
quantizer into the convolution before it (MobileNetV3Small from tf_keras on intel-cpu, in the coverage
matrix). The graph below is that pattern, built with OpenVINO's own operations and compiled by its
real CPU plugin.
"""

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
o = pytest.importorskip("openvino.opset13")

from edgec.backends.openvino.nncf_quantize import per_tensor_misplaced  # noqa: E402

CONFIG = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}


def _fq(x, low, high):
    c = lambda v: o.constant(np.asarray(v, np.float32))  # noqa: E731
    return o.fake_quantize(x, c(low), c(high), c(low), c(high), 256)


def _weights(w):
    scale = np.abs(w).reshape(w.shape[0], -1).max(1).reshape((-1,) + (1,) * (w.ndim - 1)).astype(np.float32)
    return _fq(o.constant(w), -scale * 128 / 127, scale)


def _model(channels_last: bool, quantize_relu: bool = True):
    """conv -> bias -> ReLU -> activation quantizer -> depthwise conv, 24 channels on 12x12.

    ``channels_last``: the ReLU and its quantizer sit between Transposes to NHWC and back, and the
    quantizer's ranges have NNCF's shape [1, 12, 1, 1] (axis 1 is the rows there); otherwise the graph
    stays NCHW and the ranges are per channel, [1, 24, 1, 1], as NNCF means them. Without
    ``quantize_relu`` the ReLU's output is not quantized (the reference)."""
    rng = np.random.default_rng(0)
    x = o.parameter([1, 16, 12, 12], np.float32)
    conv = o.convolution(_fq(x, -4.0, 4.0), _weights(rng.normal(0, 0.25, (24, 16, 1, 1)).astype(np.float32)),
                         [1, 1], [0, 0], [0, 0], [1, 1])
    y = o.add(conv, o.constant(rng.normal(0, 0.5, (1, 24, 1, 1)).astype(np.float32)))
    if channels_last:
        y = o.transpose(y, o.constant(np.array([0, 2, 3, 1], np.int64)))
    high = np.linspace(2, 6, 12 if channels_last else 24, dtype=np.float32).reshape(1, -1, 1, 1)
    y = _fq(o.relu(y), np.zeros_like(high), high) if quantize_relu else o.relu(y)
    if channels_last:
        y = o.transpose(y, o.constant(np.array([0, 3, 1, 2], np.int64)))
    depthwise = rng.normal(size=(24, 1, 1, 3, 3)).astype(np.float32)
    out = o.group_convolution(y, _weights(depthwise),
                              [1, 1], [1, 1], [1, 1], [1, 1])
    model = ov.Model([out.output(0)], [x], "m")
    model.depthwise = depthwise
    return model


def _activation_ranges(model):
    return [np.asarray(op.input_value(2).get_node().get_data()) for op in model.get_ordered_ops()
            if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() == "Relu"]


def test_ranges_along_the_rows_become_one_range_and_the_cpu_plugin_compiles_the_model():
    model = _model(channels_last=True)
    assert per_tensor_misplaced(model) == 1
    (high,) = _activation_ranges(model)
    assert high.shape == () and float(high) == pytest.approx(6.0)  # the widest row's range covers them all
    core = ov.Core()
    compiled = core.compile_model(model, "CPU", CONFIG)  # OpenVINO 2026.4 fails this before the fix
    x = np.random.default_rng(1).uniform(-1, 1, (1, 16, 12, 12)).astype(np.float32)
    out = compiled(x)[0]
    assert out.shape == (1, 24, 12, 12) and np.isfinite(out).all()
    # Against the graph without the ReLU's quantizer: each activation is off by at most half a step of
    # the one range (6 / 255), so each output by at most that times its channel's absolute weights (the
    # ReLU's output stays under 6 for these inputs, else clipping would break the bound).
    exact = core.compile_model(_model(channels_last=True, quantize_relu=False), "CPU", CONFIG)(x)[0]
    bound = np.abs(model.depthwise).reshape(24, -1).sum(1).reshape(1, 24, 1, 1) * (6.0 / 255) / 2
    inside = np.abs(out - exact) <= bound + 1e-4
    assert inside.all() and np.abs(out - exact).max() > 1e-3  # quantized, and within half a step


def test_ranges_on_the_channel_axis_stay_per_channel():
    model = _model(channels_last=False)
    assert per_tensor_misplaced(model) == 0
    (high,) = _activation_ranges(model)
    assert high.shape == (1, 24, 1, 1)
    ov.Core().compile_model(model, "CPU", CONFIG)
