"""Per-layer int8 error for ONNX QDQ models (ONNX Runtime's qdq_loss_debug) names the outlier layer."""

import numpy as np
import pytest

pytestmark = pytest.mark.toolchain


def test_onnx_qdq_analysis_names_the_outlier_tensor_worst(tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edge_models_support import onnx_outlier
    from edgec.quantize import layer_error_onnx
    from edgec.quantize.layer_error_onnx import _Reader

    float_path = onnx_outlier(tmp_path / "float.onnx")
    samples = {"x": np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)}
    quantize_static(str(float_path), str(tmp_path / "qdq.onnx"), _Reader(samples), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    layers = layer_error_onnx.analyze(float_path, tmp_path / "qdq.onnx", samples)
    worst = layers[0]
    assert worst["tensor"] == "mixer_out" and worst["added_noise_to_signal"] > 0.5
    # A tensor-wide SQNR, dominated by the outlier channel, would not have flagged it.
    assert worst["float_sqnr_db"] > 20
    others = {x["tensor"]: x for x in layers[1:]}
    assert others["pre_out"]["added_noise_to_signal"] < 0.05
    # Downstream tensors inherit the error but add little of their own.
    assert others["head_out"]["noise_to_signal"] > 0.5 > others["head_out"]["added_noise_to_signal"]
