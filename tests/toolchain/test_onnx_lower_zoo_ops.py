"""ONNX -> tf_keras lowering of the operators torch.onnx and the model zoo add to plain CNNs.

Every graph here is checked against ONNX Runtime by ``onnx_lower.check`` (random inputs, error
at most 1e-4 of the output range), as for the original operator set.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec import onnx_lower
from tests.toolchain.test_onnx_lower import _ints, _read, _value, _w

pytestmark = pytest.mark.toolchain


def _read18(tmp_path, nodes, inputs, outputs, inits, name="m"):
    """Opset 18, where ReduceMean/ReduceMax take their axes as an input (the dynamo exporter's form)."""
    import onnx

    from edgec import load_onnx

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
    from edgec.errors import InputError

    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], name="mean_all", keepdims=1)]
    model = _read(tmp_path, nodes, [_value("x", 1, 4)], [_value("y", 1, 1)], [])
    with pytest.raises(InputError, match="mean_all.*batch axis"):
        onnx_lower.lower(model)
