"""ONNX -> tf_keras lowering: every documented operator matches ONNX Runtime, NCHW becomes NHWC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.frontend.onnx import read as load_onnx
from edgec.frontend.onnx import lower as onnx_lower
from edgec.core.errors import ToolchainError

pytestmark = pytest.mark.toolchain

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed_per_test():
    """Restart RNG before each test, so that its weights and inputs do not depend on which tests ran first."""
    RNG.bit_generator.state = np.random.default_rng(0).bit_generator.state


def _w(name: str, *shape: int, scale: float = 0.3, rng: np.random.Generator = RNG) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _positive(name: str, *shape: int, rng: np.random.Generator = RNG) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.uniform(0.5, 1.5, shape).astype(np.float32), name)


def _ints(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def _read(tmp_path, nodes, inputs, outputs, initializers, name="m"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return load_onnx.read(path)


def _value(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _cnn_nodes():
    """A CNN in NCHW: conv/bn/activations/pools/depthwise/dense."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv_same", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        n("BatchNormalization", ["c1", "s", "sh", "mu", "var"], ["bn"], name="bn", epsilon=1e-3),
        n("Relu", ["bn"], ["r1"], name="relu"),
        n("MaxPool", ["r1"], ["p1"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["p1", "wd"], ["c2"], name="depthwise", group=8, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Clip", ["c2", "zero", "six"], ["r6"], name="relu6"),
        n("Conv", ["r6", "w3", "b3"], ["c3"], name="conv_asym", pads=[0, 1, 1, 0], strides=[2, 2],
          kernel_shape=[2, 2]),
        n("HardSwish", ["c3"], ["hs"], name="hswish"),
        n("AveragePool", ["hs"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[1, 1],
          pads=[0, 0, 1, 1]),
        n("LeakyRelu", ["ap"], ["lr"], name="leaky", alpha=0.1),
        n("GlobalAveragePool", ["lr"], ["gap"], name="gap"),
        n("Flatten", ["gap"], ["flat"], name="flatten"),
        n("Gemm", ["flat", "wg", "bg"], ["g"], name="gemm", transB=1),
        n("Sigmoid", ["g"], ["sg"], name="sigmoid"),
        n("MatMul", ["sg", "wm"], ["mm"], name="matmul"),
        n("Add", ["mm", "bm"], ["logits"], name="bias"),
        n("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    rng = np.random.default_rng(0)  # its own generator: the same weights whoever calls it, in any order
    inits = [_w("w1", 8, 3, 3, 3, rng=rng), _w("b1", 8, rng=rng), _positive("s", 8, rng=rng), _w("sh", 8, rng=rng),
             _w("mu", 8, rng=rng), _positive("var", 8, rng=rng), _w("wd", 8, 1, 3, 3, rng=rng),
             numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(6), "six"),
             _w("w3", 12, 8, 2, 2, rng=rng), _w("b3", 12, rng=rng), _w("wg", 16, 12, rng=rng), _w("bg", 16, rng=rng),
             _w("wm", 16, 5, rng=rng), _w("bm", 5, rng=rng)]
    return nodes, inits


def test_cnn_with_conv_bn_pools_and_dense_matches_onnx_runtime(tmp_path):
    nodes, inits = _cnn_nodes()
    model = _read(tmp_path, nodes, [_value("x", 1, 3, 12, 12)], [_value("y", 1, 5)], inits)
    keras_model = onnx_lower.lower(model)
    layers = {type(l).__name__ for l in keras_model.layers}
    assert {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "MaxPooling2D", "AveragePooling2D",
            "GlobalAveragePooling2D", "Dense", "Softmax"} <= layers
    # NCHW input kept for the user, one Permute to NHWC before the first convolution, none after.
    assert sum(type(l).__name__ == "Permute" for l in keras_model.layers) == 1
    result = onnx_lower.check(model, keras_model, {"x": RNG.uniform(0, 1, (8, 3, 12, 12)).astype(np.float32)})
    assert result["samples"] == 12 and result["max_rel_err"] <= 1e-4


def test_elementwise_shape_and_resize_ops_match_onnx_runtime(tmp_path):
    n = helper.make_node
    nodes = [
        n("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
        n("ConvTranspose", ["t", "wt", "bt"], ["up"], name="deconv", strides=[2, 2], kernel_shape=[4, 4],
          pads=[1, 1, 0, 0]),
        n("Resize", ["t", "", "scales"], ["rs"], name="resize", mode="nearest"),
        n("Pad", ["rs", "pads"], ["rsp"], name="pad"),
        n("Tanh", ["rsp"], ["th"], name="tanh"),
        n("Concat", ["up", "th"], ["cat"], name="concat", axis=1),
        n("Split", ["cat", "split"], ["s1", "s2"], name="split", axis=1),
        n("Sub", ["s1", "c"], ["d1"], name="sub_const"),
        n("Div", ["d1", "two"], ["d2"], name="div_const"),
        n("Mul", ["d2", "s2"], ["m1"], name="mul"),
        n("HardSigmoid", ["m1"], ["hsig"], name="hsig", alpha=0.25, beta=0.4),
        n("Add", ["hsig", "m1"], ["a1"], name="add"),
        n("Transpose", ["a1"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        n("Reshape", ["nhwc", "shape"], ["rshp"], name="reshape"),
        n("Unsqueeze", ["rshp", "ax"], ["uq"], name="unsqueeze"),
        n("Squeeze", ["uq", "ax"], ["y"], name="squeeze"),
    ]
    inits = [_w("wt", 4, 2, 4, 4), _w("bt", 2), numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32),
             "scales"), _ints("pads", [0, 0, 1, 0, 0, 0, 0, 1]), _ints("split", [3, 3]),
             _w("c", 1, 3, 1, 1), numpy_helper.from_array(np.float32(2.0), "two"),
             _ints("shape", [1, -1]), _ints("ax", [1])]
    model = _read(tmp_path, nodes, [_value("x", 1, 5, 5, 4)], [_value("y", 1, 11 * 11 * 3)], inits)
    keras_model = onnx_lower.lower(model)
    assert onnx_lower.check(model, keras_model)["max_rel_err"] <= 1e-4


def test_wrong_lowering_is_caught_by_the_check(tmp_path):
    nodes, inits = _cnn_nodes()
    model = _read(tmp_path, nodes, [_value("x", 1, 3, 12, 12)], [_value("y", 1, 5)], inits)
    keras_model = onnx_lower.lower(model)
    dense = keras_model.get_layer("gemm")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + 1.0])
    with pytest.raises(ToolchainError, match="differs from ONNX Runtime on output 'y'"):
        onnx_lower.check(model, keras_model)


def test_tf2onnx_keras_model_lowers_without_transposes(tmp_path):
    from edgec.backends.onnx.export_onnx import keras_to_onnx
    from edgec.core.tf import keras, seed_everything

    seed_everything(0)
    k = keras()
    inp = k.Input((10, 10, 3), name="img")
    x = k.layers.Conv2D(6, 3, padding="same", activation="relu")(inp)
    x = k.layers.BatchNormalization()(x)
    y = k.layers.SeparableConv2D(8, 3, strides=2, padding="same")(x)
    z = k.layers.Conv2D(8, 1)(k.layers.AveragePooling2D(2)(x))
    x = k.layers.Add()([y, z])
    x = k.layers.UpSampling2D(2)(x)
    x = k.layers.Concatenate()([x, inp])
    x = k.layers.GlobalAveragePooling2D()(x)
    out = k.layers.Dense(4, activation="softmax")(x)
    source = k.Model(inp, out)
    onnx.save(keras_to_onnx(source), str(tmp_path / "k.onnx"))
    model = load_onnx.read(tmp_path / "k.onnx")
    lowered = onnx_lower.lower(model)
    # tf2onnx wraps every conv in Transpose pairs; the lowering absorbs them all (NHWC in, NHWC through).
    assert not any(type(l).__name__ == "Permute" for l in lowered.layers)
    sample = RNG.uniform(0, 1, (4, 10, 10, 3)).astype(np.float32)
    assert onnx_lower.check(model, lowered, {"img": sample})["max_rel_err"] <= 1e-4
    np.testing.assert_allclose(lowered.predict(sample, verbose=0), source.predict(sample, verbose=0),
                               atol=1e-5)


def test_lowered_tf2onnx_model_converts_to_a_clean_int8_tflite_graph(tmp_path):
    from edgec.backends.onnx.export_onnx import keras_to_onnx
    from edgec.core.tf import keras, tensorflow
    from edgec.core.tflite_model import parse

    tf = tensorflow()
    source = keras().models.load_model(Path(__file__).resolve().parents[2] / "edgec/examples/digits_cnn.keras")
    onnx.save(keras_to_onnx(source), str(tmp_path / "digits.onnx"))
    lowered = onnx_lower.lower(load_onnx.read(tmp_path / "digits.onnx"))
    images = RNG.uniform(0, 1, (32, 8, 8, 1)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(lowered)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    ops = [op.name for op in parse(converter.convert()).operators]
    # NHWC throughout: no TRANSPOSE, one RESHAPE (the flatten), no run-time shape arithmetic.
    assert ops == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED",
                   "FULLY_CONNECTED", "SOFTMAX"], ops


def test_a_near_constant_output_is_checked_against_its_magnitude(tmp_path):
    """The light-zoo DenseNet-121 (constant weights) gives the same logits for every input: float32 reordering
    noise alone was 150% of their spread, and a right lowering was refused. A wrong one still fails."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1", "b1"], ["c1"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             n("Relu", ["c1"], ["r1"], name="relu"),
             n("GlobalAveragePool", ["r1"], ["gap"], name="gap"),
             n("Flatten", ["gap"], ["flat"], name="flatten"),
             n("Gemm", ["flat", "wg", "bg"], ["y"], name="gemm", transB=1)]
    rng = np.random.default_rng(1)
    inits = [_w("w1", 8, 3, 3, 3, rng=rng), _w("b1", 8, rng=rng),
             _w("wg", 100, 8, scale=1e-8, rng=rng), numpy_helper.from_array(np.full(100, 0.46, np.float32), "bg")]
    model = _read(tmp_path, nodes, [_value("x", 1, 3, 12, 12)], [_value("y", 1, 100)], inits)
    reference = onnx_lower.run_onnx(model, onnx_lower.random_inputs(model, samples=4, seed=0))[0]
    assert np.ptp(reference) < 1e-6 * np.abs(reference).max()  # near-constant, as the light zoo's
    keras_model = onnx_lower.lower(model)
    assert onnx_lower.check(model, keras_model)["max_rel_err"] <= 1e-4
    dense = keras_model.get_layer("gemm")
    kernel, bias = dense.get_weights()
    # An error of twice the output's spread but a few float32 steps of its size (what reordering a long sum does)
    # passes; against the spread alone it read as 200%.
    dense.set_weights([kernel, bias + 2 * np.ptp(reference)])
    assert onnx_lower.check(model, keras_model)["max_rel_err"] <= 1e-4
    dense.set_weights([kernel, bias * 1.01])
    with pytest.raises(ToolchainError, match="differs from ONNX Runtime on output 'y'"):
        onnx_lower.check(model, keras_model)
