"""Tiny models for the harness/bench/device-output tests, built in code with fixed seeds."""

from pathlib import Path

import numpy as np


def keras_cnn():
    """A small Conv-ReLU-Dense-softmax classifier on (8, 8, 1) images, seeded."""
    from edgec.core.tf import keras, seed_everything

    K = keras()
    seed_everything(0)
    x = K.Input((8, 8, 1), name="image")
    h = K.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    h = K.layers.Flatten(name="flatten")(h)
    y = K.layers.Dense(10, activation="softmax", name="probs")(h)
    return K.Model(x, y)


def samples(n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded images in 0..1."""
    return np.random.default_rng(seed).random((n, 8, 8, 1), dtype=np.float32)


def tflite(model, *, int8: bool, io_int8: bool = True, calibration: np.ndarray | None = None) -> bytes:
    """The real TFLite converter: full-integer int8 (Optimize.DEFAULT + representative data) or float."""
    from edgec.core.tf import tensorflow

    tf = tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        data = samples(32, seed=1) if calibration is None else calibration
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([data[i:i + 1]] for i in range(len(data)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_int8:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


def onnx_mlp(path: Path, seed: int = 0) -> Path:
    """A float ONNX MLP (input "x" [1, 16] -> Gemm -> Relu -> Gemm -> Softmax [1, 4])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(size=(16, 64)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(size=(64,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(size=(64, 4)).astype(np.float32) * 0.1, "w2")
    b2 = numpy_helper.from_array(np.zeros(4, np.float32), "b2")
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])],
                              [w1, b1, w2, b2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_qdq(float_path: Path, path: Path) -> Path:
    """ONNX Runtime's quantize_static (QDQ, int8) of ``float_path``, calibrated on seeded samples."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            data = np.random.default_rng(3).normal(size=(16, 1, 16)).astype(np.float32)
            self.it = iter({"x": d} for d in data)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return path


def openvino_from_onnx(onnx_path: Path, xml: Path) -> Path:
    """OpenVINO IR (model.xml/.bin) converted from an ONNX file."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml))
    return xml


def onnx_outlier(path: Path) -> Path:
    """ONNX x[1,8] -> pre (Gemm+Relu) -> mixer (Gemm; output channel 0 scaled 2000x) -> head -> Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w_pre = rng.normal(size=(8, 16)).astype(np.float32) * 0.5
    w_mix = rng.normal(size=(16, 16)).astype(np.float32) * 0.3
    w_mix[:, 0] *= 2000.0
    w_head = rng.normal(size=(16, 4)).astype(np.float32)
    w_head[0, :] = 0.0
    inits = [numpy_helper.from_array(a, n) for a, n in ((w_pre, "w_pre"), (w_mix, "w_mix"), (w_head, "w_head"))]
    nodes = [helper.make_node("MatMul", ["x", "w_pre"], ["pre_mm"], name="pre"),
             helper.make_node("Relu", ["pre_mm"], ["pre_out"], name="pre_relu"),
             helper.make_node("MatMul", ["pre_out", "w_mix"], ["mixer_out"], name="mixer"),
             helper.make_node("MatMul", ["mixer_out", "w_head"], ["head_out"], name="head"),
             helper.make_node("Softmax", ["head_out"], ["probs"], axis=1, name="softmax")]
    graph = helper.make_graph(nodes, "outlier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
