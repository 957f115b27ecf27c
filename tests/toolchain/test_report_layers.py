"""The per-layer table of an ONNX artifact: one row per compute node, weights as stored."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.report.layer_table import section
from edgec.report.layer_table_onnx import rows

pytestmark = pytest.mark.toolchain


def _qdq_conv(path):
    """x -> Conv(DequantizeLinear(int8 weights, per-channel)) -> Relu, weights half zeros, 3 values each."""
    w = np.zeros((4, 2, 3, 3), np.int8)
    w[:, :, :, 0] = np.array([-3, 5, 7], np.int8)[None, None, :]  # per channel: {0, -3, 5, 7} -> 4 unique
    inits = [numpy_helper.from_array(w, "w_q"), numpy_helper.from_array(np.full(4, 0.1, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(4, np.int8), "w_z")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
             helper.make_node("Conv", ["x", "w"], ["model/conv/BiasAdd:0"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["model/conv/BiasAdd:0"], ["model/conv/Relu:0"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("model/conv/Relu:0", TensorProto.FLOAT, [1, 4, 5, 5])],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_rows_fold_dequantize_into_the_layer_and_count_stored_bytes(tmp_path):
    conv, relu = rows(_qdq_conv(tmp_path / "m.onnx"))
    assert conv["op"] == "Conv" and conv["name"] == "conv" and conv["output_shape"] == [1, 4, 5, 5]
    assert conv["macs"] == (4 * 5 * 5) * (2 * 3 * 3)
    assert conv["weight_bytes"] == 72 + 16 + 4  # int8 weights, float scales, int8 zero points
    assert conv["sparsity"] == pytest.approx(2 / 3, abs=1e-6) and conv["unique_values_max_per_channel"] == 4
    assert relu["op"] == "Relu" and relu["macs"] == 0 and relu["weight_bytes"] == 0


def test_section_joins_the_onnx_int8_error_by_tensor_and_says_what_was_not_measured(tmp_path):
    path = _qdq_conv(tmp_path / "m.onnx")
    error = {"tool": "onnxruntime.quantization.qdq_loss_debug",
             "layers": [{"layer": "model/conv/Relu:0", "noise_to_signal": 0.01}]}
    table = section(None, error, "onnx", path)
    assert [r["int8_snr_db"] for r in table["rows"]] == [None, 40.0]
    assert table["int8_snr_tool"] == error["tool"] and "time_share_note" in table
    timed = section(None, None, "onnx", path, {"x": np.ones((1, 2, 5, 5), np.float32)})
    assert "int8_snr_note" in timed and "time_share_note" not in timed
    assert timed["time_share_tool"].startswith("onnxruntime profiler")
    assert sum(r["time_share"] for r in timed["rows"]) + timed["time_unattributed_share"] == pytest.approx(1, abs=1e-3)
    assert section(None, None, "openvino")["rows"] == [] and "not measured" in section(None, None, "x")["note"]


def test_openvino_rows_fold_int8_weight_decompression_into_the_convolution(tmp_path):
    import openvino as ov
    import openvino.opset13 as ops

    from edgec.report.layer_table_openvino import rows as openvino_rows

    x = ops.parameter([1, 2, 5, 5], np.float32, name="x")
    q = np.zeros((4, 2, 3, 3), np.int8)
    q[:, :, 0, :] = np.array([-3, 5, 7], np.int8)
    w = ops.multiply(ops.convert(ops.constant(q), np.float32), ops.constant(np.full((4, 1, 1, 1), 0.1, np.float32)))
    conv = ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1], name="model/conv/Conv")
    relu = ops.relu(conv, name="model/conv/Relu")
    ov.save_model(ov.Model([relu], [x]), tmp_path / "m.xml", compress_to_fp16=False)
    conv_row, relu_row = openvino_rows(tmp_path / "m.xml")
    assert conv_row["op"] == "Convolution" and conv_row["name"] == "conv/Conv"
    assert conv_row["output_shape"] == [1, 4, 5, 5] and conv_row["macs"] == (4 * 5 * 5) * (2 * 3 * 3)
    assert conv_row["weight_bytes"] == 72 + 16  # int8 weights and float scales, as stored
    assert conv_row["sparsity"] == pytest.approx(2 / 3, abs=1e-6) and conv_row["unique_values_max_per_channel"] == 4
    assert relu_row["op"] == "Relu" and relu_row["macs"] == 0 and relu_row["weight_bytes"] == 0
