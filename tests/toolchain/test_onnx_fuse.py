"""ONNX graph fusion: Conv+BN, Gemm+BN, MatMul+Add -> Gemm, constant folding; counts reported, outputs unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.frontend.onnx import fuse as onnx_fuse
from edgec.core.errors import ToolchainError

pytestmark = pytest.mark.toolchain


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def w(name, *shape, low=None):
        data = rng.uniform(0.5, 1.5, shape) if low else rng.standard_normal(shape) * 0.3
        return numpy_helper.from_array(data.astype(np.float32), name)

    n = helper.make_node
    nodes = [
        n("Identity", ["x"], ["xi"], name="identity"),
        n("Add", ["half_a", "half_b"], ["offset"], name="const_add"),  # constants only: folded
        n("Sub", ["xi", "offset"], ["xs"], name="shift"),
        n("Conv", ["xs", "w1", "b1"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c1", "s", "sh", "mu", "var"], ["bn"], name="bn"),
        n("Relu", ["bn"], ["r"], name="relu"),
        n("Flatten", ["r"], ["f"], name="flatten"),
        n("MatMul", ["f", "wm"], ["mm"], name="matmul"),
        n("Add", ["mm", "bm"], ["y"], name="bias"),
    ]
    inits = [w("half_a", 1, 2, 1, 1), w("half_b", 1, 2, 1, 1), w("w1", 4, 2, 3, 3), w("b1", 4),
             w("s", 4, low=True), w("sh", 4), w("mu", 4), w("var", 4, low=True), w("wm", 4 * 5 * 5, 3),
             w("bm", 3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fusion_reports_counts_and_keeps_outputs_equal():
    model = _model()
    fused, counts = onnx_fuse.fuse(model)
    assert counts["before"] == {"Add": 2, "BatchNormalization": 1, "Conv": 1, "Flatten": 1, "Identity": 1,
                                "MatMul": 1, "Relu": 1, "Sub": 1}
    assert counts["after"] == {"Conv": 1, "Flatten": 1, "Gemm": 1, "Relu": 1, "Sub": 1}
    assert (counts["conv_bn_fused"], counts["matmul_add_fused"], counts["constants_folded"]) == (1, 1, 1)
    assert counts["conv_activation_pairs"] == 1  # left for the runtime (no standard fused op)
    assert onnx_fuse.check_equal(model, fused) <= 1e-5
    assert len(model.graph.node) == 9  # the input model is not modified


@pytest.mark.parametrize("trans_b,bias", [(1, True), (0, True), (1, False)])
def test_linear_batchnorm1d_folds_into_the_gemm(trans_b, bias):
    """The TorchScript export of Linear + BatchNorm1d (MLPerf's AD autoencoder): one Gemm + Relu."""
    rng = np.random.default_rng(1)

    def t(name, *shape, low=0.0):
        return numpy_helper.from_array((rng.uniform(low, 1.5, shape) if low else rng.standard_normal(shape))
                                       .astype(np.float32), name)

    n = helper.make_node
    weight = t("w", *((5, 6) if trans_b else (6, 5)))
    nodes = [n("Gemm", ["x", "w", *(["b"] if bias else [])], ["g"], transB=trans_b),
             n("BatchNormalization", ["g", "s", "sh", "mu", "var"], ["bn"]), n("Relu", ["bn"], ["y"])]
    inits = [weight, t("s", 5, low=0.5), t("sh", 5), t("mu", 5), t("var", 5, low=0.5)] + ([t("b", 5)] if bias else [])
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fused, counts = onnx_fuse.fuse(model)
    assert counts["after"] == {"Gemm": 1, "Relu": 1} and counts["conv_bn_fused"] == 1
    assert onnx_fuse.check_equal(model, fused) <= 1e-5


def test_a_gemm_with_alpha_keeps_its_batchnorm():
    n = helper.make_node
    ones = [numpy_helper.from_array(np.ones(shape, np.float32), name)
            for name, shape in (("w", (4, 4)), ("s", (4,)), ("sh", (4,)), ("mu", (4,)), ("var", (4,)))]
    graph = helper.make_graph([n("Gemm", ["x", "w"], ["g"], alpha=2.0),
                               n("BatchNormalization", ["g", "s", "sh", "mu", "var"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], ones)
    fused, counts = onnx_fuse.fuse(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert counts["after"] == {"BatchNormalization": 1, "Gemm": 1} and counts["conv_bn_fused"] == 0


def test_a_broken_fusion_is_caught_numerically():
    model = _model()
    fused, _ = onnx_fuse.fuse(model)
    gemm = next(n for n in fused.graph.node if n.op_type == "Gemm")
    bias = next(t for t in fused.graph.initializer if t.name == gemm.input[2])
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.5, bias.name))
    with pytest.raises(ToolchainError, match="fused ONNX model differs"):
        onnx_fuse.check_equal(model, fused)
