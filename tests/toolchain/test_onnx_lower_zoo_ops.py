"""ONNX -> tf_keras lowering of the operators torch.onnx and the model zoo add to plain CNNs.

Every graph here is checked against ONNX Runtime by ``onnx_lower.check`` (random inputs, error
at most 1e-4 of the output range), as for the original operator set.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.frontend.onnx import lower as onnx_lower
from tests.toolchain.test_onnx_lower import _ints, _read, _value, _w

pytestmark = pytest.mark.toolchain


def _read18(tmp_path, nodes, inputs, outputs, inits, name="m"):
    """Opset 18, where ReduceMean/ReduceMax take their axes as an input (the dynamo exporter's form)."""
    import onnx

    from edgec.frontend.onnx import read as load_onnx

    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return load_onnx.read(path)


def _lowered_matches(tmp_path, nodes, inputs, outputs, inits, name="m", read=_read):
    model = read(tmp_path, nodes, inputs, outputs, inits, name=name)
    keras_model = onnx_lower.lower(model)
    assert onnx_lower.check(model, keras_model, samples=3)["max_rel_err"] <= 1e-4
    return keras_model


def test_reductions_global_max_pool_and_ceil_mode_max_pool_match_onnx_runtime(tmp_path):
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
        # ceil_mode on 9x9 with a 3x3/2 window: 4 windows floor, 5 ceil (the last one half outside).
        n("MaxPool", ["c"], ["p"], name="pool_ceil", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        # torchvision ShuffleNet's stem: explicit pads that are not 'same' (1,1 on 5x5 with 3x3/2).
        n("MaxPool", ["p"], ["pp"], name="pool_pads", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("ReduceMax", ["pp", "c_axis"], ["rmax"], name="reduce_max_keep", keepdims=1),
        n("Sub", ["pp", "rmax"], ["centered"], name="sub"),
        n("GlobalMaxPool", ["centered"], ["gmp"], name="gmp"),
        n("ReduceMean", ["centered", "hw"], ["gap"], name="reduce_mean", keepdims=0),  # dynamo's pooling
        n("Flatten", ["gmp"], ["flat"], name="flatten"),
        n("Add", ["gap", "flat"], ["y"], name="add"),
    ]
    inits = [_w("w", 6, 3, 3, 3), _ints("hw", [2, 3]), _ints("c_axis", [1])]
    keras_model = _lowered_matches(tmp_path, nodes, [_value("x", 1, 3, 11, 11)], [_value("y", 1, 6)], inits,
                                   read=_read18)
    assert "GlobalMaxPooling2D" in {type(layer).__name__ for layer in keras_model.layers}


def test_sum_min_max_prelu_slice_and_cast_match_onnx_runtime(tmp_path):
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
        n("PRelu", ["c", "slope"], ["pr"], name="prelu"),
        # TorchScript's channel split: Slice on constant bounds, here with a step on W too.
        n("Slice", ["pr", "s0", "e0", "a0"], ["lo"], name="slice_lo"),
        n("Slice", ["pr", "s1", "e1", "a1", "st1"], ["hi"], name="slice_hi"),
        n("Sum", ["lo", "hi", "lo"], ["sm"], name="sum"),
        n("Min", ["sm", "hi"], ["mn"], name="min"),
        n("Max", ["mn", "lo"], ["mx"], name="max"),
        n("Cast", ["mx"], ["y"], name="cast", to=TensorProto.FLOAT),
    ]
    inits = [_w("w", 8, 3, 1, 1), numpy_helper.from_array(np.linspace(-0.5, 0.5, 8, dtype=np.float32)
                                                           .reshape(8, 1, 1), "slope"),
             _ints("s0", [0, 0]), _ints("e0", [4, 3]), _ints("a0", [1, 3]),
             _ints("s1", [4, 0]), _ints("e1", [8, 6]), _ints("a1", [1, -1]), _ints("st1", [1, 2])]
    keras_model = _lowered_matches(tmp_path, nodes, [_value("x", 1, 3, 5, 6)], [_value("y", 1, 4, 5, 3)], inits)
    assert "PReLU" in {type(layer).__name__ for layer in keras_model.layers}


def test_reduce_mean_over_the_batch_is_refused(tmp_path):
    from edgec.core.errors import InputError

    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], name="mean_all", keepdims=1)]
    model = _read(tmp_path, nodes, [_value("x", 1, 4)], [_value("y", 1, 1)], [])
    with pytest.raises(InputError, match="mean_all.*batch axis"):
        onnx_lower.lower(model)


def test_attention_block_ops_layer_norm_gelu_gather_batch_matmul_expand_match_onnx_runtime(tmp_path):
    n = helper.make_node
    nodes = [
        n("LayerNormalization", ["x", "gamma", "beta"], ["ln"], name="layer_norm", axis=-1, epsilon=1e-5),
        n("MatMul", ["ln", "wq"], ["q"], name="q_proj"),
        n("MatMul", ["ln", "wk"], ["k"], name="k_proj"),
        n("Transpose", ["k"], ["kt"], name="k_t", perm=[0, 2, 1]),
        n("MatMul", ["q", "kt"], ["scores"], name="q_kt"),  # two tensors: a batched matrix product
        n("Softmax", ["scores"], ["probs"], name="softmax_axis1", axis=1),  # not the last axis
        n("MatMul", ["probs", "q"], ["attn"], name="p_v"),
        # GELU as torch.onnx writes it: 0.5 * x * (1 + erf(x / sqrt(2)))
        n("Div", ["attn", "sqrt2"], ["scaled"], name="gelu_div"),
        n("Erf", ["scaled"], ["erf"], name="gelu_erf"),
        n("Add", ["erf", "one"], ["erf1"], name="gelu_add"),
        n("Mul", ["attn", "erf1"], ["xe"], name="gelu_mul"),
        n("Mul", ["xe", "half"], ["act"], name="gelu_half"),
        n("Reshape", ["act", "heads"], ["split_heads"], name="reshape_heads"),
        n("Gather", ["split_heads", "one_index"], ["head1"], name="gather_head", axis=2),
        n("ReduceMean", ["head1"], ["mean"], name="mean", axes=[2], keepdims=1),
        n("Expand", ["mean", "expand_to"], ["wide"], name="expand"),
        n("Add", ["head1", "wide"], ["y"], name="add"),
    ]
    inits = [_w("gamma", 8), _w("beta", 8), _w("wq", 8, 8), _w("wk", 8, 8),
             numpy_helper.from_array(np.float32(np.sqrt(2)), "sqrt2"), numpy_helper.from_array(np.float32(1), "one"),
             numpy_helper.from_array(np.float32(0.5), "half"), _ints("heads", [1, 6, 2, 4]),
             numpy_helper.from_array(np.int64(1), "one_index"), _ints("expand_to", [1, 6, 4])]
    keras_model = _lowered_matches(tmp_path, nodes, [_value("x", 1, 6, 8)], [_value("y", 1, 6, 4)], inits)
    assert "LayerNormalization" in {type(layer).__name__ for layer in keras_model.layers}


def test_bare_erf_is_refused_with_the_gelu_form(tmp_path):
    from edgec.core.errors import InputError

    model = _read(tmp_path, [helper.make_node("Erf", ["x"], ["y"], name="erf")], [_value("x", 1, 4)],
                  [_value("y", 1, 4)], [])
    with pytest.raises(InputError, match="Erf is supported only inside GELU"):
        onnx_lower.lower(model)


def test_lrn_sizes_3_5_and_7_match_onnx_runtime(tmp_path):
    n = helper.make_node
    # alpha large enough that the denominators reach several times bias: a wrong window or power shows.
    nodes = [
        n("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c"], ["r"], name="relu"),
        n("LRN", ["r"], ["l3"], name="lrn3", size=3, alpha=2.0, beta=0.75, bias=1.0),  # RSQRT, MUL
        n("LRN", ["l3"], ["l5"], name="lrn5", size=5, alpha=4.0, beta=0.5, bias=2.0),  # one RSQRT
        n("LRN", ["l5"], ["y"], name="lrn7", size=7, alpha=3.0, beta=0.6),  # not in quarters: LOG, EXP
    ]
    keras_model = _lowered_matches(tmp_path, nodes, [_value("x", 1, 3, 6, 5)], [_value("y", 1, 10, 6, 5)],
                                   [_w("w", 10, 3, 3, 3, scale=1.0)])
    functions = {layer.get_config().get("function") for layer in keras_model.layers}
    assert {"math.rsqrt", "math.log", "math.exp"} <= functions, functions
    assert any(str(f).endswith("nn.conv2d") for f in functions), functions  # tf_keras names compat.v1's
    # The window is a fixed part of LRN: no Keras Conv2D that pruning or clustering would change.
    assert [type(layer).__name__ for layer in keras_model.layers].count("Conv2D") == 1


def test_lrn_without_an_int8_range_or_on_other_ranks_is_refused(tmp_path):
    from edgec.core.errors import InputError

    n = helper.make_node
    model = _read(tmp_path, [n("LRN", ["x"], ["y"], name="lrn_bias0", size=3, bias=0.0)],
                  [_value("x", 1, 4, 2, 2)], [_value("y", 1, 4, 2, 2)], [])
    with pytest.raises(InputError, match="lrn_bias0.*bias > 0"):
        onnx_lower.lower(model)
    model = _read(tmp_path, [n("LRN", ["x"], ["y"], name="lrn_even", size=4)], [_value("x", 1, 4, 2, 2)],
                  [_value("y", 1, 4, 2, 2)], [])
    with pytest.raises(InputError, match="lrn_even.*only an odd positive 'size'"):  # ONNX Runtime refuses it too
        onnx_lower.lower(model)
    model = _read(tmp_path, [n("LRN", ["x"], ["y"], name="lrn_1d", size=3)], [_value("x", 1, 4, 7)],
                  [_value("y", 1, 4, 7)], [])
    with pytest.raises(InputError, match="lrn_1d.*only 4-D"):
        onnx_lower.lower(model)


def test_googlenet_padded_average_pool_over_the_whole_input_matches_onnx_runtime(tmp_path):
    n = helper.make_node
    # Caffe's GoogLeNet (the zoo's inception_v1): 7x7 average on 6x6 with pads (0, 0, 1, 1), not counted.
    nodes = [n("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             n("AveragePool", ["c"], ["y"], name="pool5", kernel_shape=[7, 7], strides=[1, 1], pads=[0, 0, 1, 1])]
    keras_model = _lowered_matches(tmp_path, nodes, [_value("x", 1, 3, 6, 6)], [_value("y", 1, 4, 1, 1)],
                                   [_w("w", 4, 3, 1, 1)])
    assert "GlobalAveragePooling2D" in {type(layer).__name__ for layer in keras_model.layers}
    nodes[1] = n("AveragePool", ["c"], ["y"], name="pool_counted", kernel_shape=[7, 7], pads=[0, 0, 1, 1],
                 count_include_pad=1)  # the padding counts: not the input's mean, zero padding then 'valid'
    _lowered_matches(tmp_path, nodes, [_value("x", 1, 3, 6, 6)], [_value("y", 1, 4, 1, 1)], [_w("w", 4, 3, 1, 1)],
                     name="counted")


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_symmetric_padded_average_pool_matches_onnx_runtime(tmp_path, count_include_pad):
    """ShuffleNet's 3x3 stride-2 average with pads 1 on an even input: TensorFlow's 'same' would pad (0, 1)."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             n("AveragePool", ["c"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
               count_include_pad=count_include_pad)]
    keras_model = _lowered_matches(tmp_path, nodes, [_value("x", 1, 3, 8, 8)], [_value("y", 1, 4, 4, 4)],
                                   [_w("w", 4, 3, 1, 1)])
    assert "ZeroPadding2D" in {type(layer).__name__ for layer in keras_model.layers}
