"""ONNX -> tf_keras lowering of PyTorch's attention, whose transposes move the batch axis.

``nn.MultiheadAttention`` (``batch_first=True``, exported with batch 1) turns (1, L, E) into (L, 1, E),
splits heads into (H, L, D) and comes back through (L, E): in a batch-1 graph the lowering carries the
batch as an ordinary unit axis (or as an extra Keras axis). Checked against ONNX Runtime on three
samples in one Keras call, so the lowered model must also keep the samples apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgec.core.errors import InputError
from edgec.frontend.onnx import lower as onnx_lower
from tests.toolchain.test_onnx_lower import _ints, _read, _value, _w

pytestmark = pytest.mark.toolchain

L, E, H = 16, 8, 2  # tokens, embedding, heads
D = E // H


def _scalar(name: str, value: float):
    return numpy_helper.from_array(np.float32(value), name)


def _vit_block():
    """Patch embedding, one encoder layer as torch.onnx exports it (both GELU forms), mean pooling."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w_embed", "b_embed"], ["patches"], name="embed", kernel_shape=[2, 2], strides=[2, 2]),
        n("Reshape", ["patches", "flat_shape"], ["flat"], name="flatten2"),  # (1, E, L)
        n("Transpose", ["flat"], ["tokens"], name="to_tokens", perm=[0, 2, 1]),  # (1, L, E)
        n("LayerNormalization", ["tokens", "gamma", "beta"], ["ln"], name="norm1", axis=-1),
        n("Transpose", ["ln"], ["seq_first"], name="batch_second", perm=[1, 0, 2]),  # (L, 1, E): batch moves
        n("MatMul", ["seq_first", "w_in"], ["qkv_mm"], name="in_proj"),
        n("Add", ["qkv_mm", "b_in"], ["qkv"], name="in_proj_bias"),
        n("Reshape", ["qkv", "qkv_shape"], ["qkv4"], name="qkv_split"),  # (L, 1, 3, E)
        n("Unsqueeze", ["qkv4", "axis0"], ["qkv5"], name="qkv_unsqueeze"),  # (1, L, 1, 3, E)
        n("Transpose", ["qkv5"], ["qkv_t"], name="qkv_first", perm=[3, 1, 2, 0, 4]),  # (3, L, 1, 1, E)
        n("Squeeze", ["qkv_t", "axis3"], ["qkv3"], name="qkv_squeeze"),  # (3, L, 1, E)
        n("Gather", ["qkv3", "i0"], ["q"], name="select_q", axis=0),  # (L, 1, E)
        n("Gather", ["qkv3", "i1"], ["k"], name="select_k", axis=0),
        n("Gather", ["qkv3", "i2"], ["v"], name="select_v", axis=0),
        n("Reshape", ["q", "heads_shape"], ["qh"], name="q_heads"),  # (L, H, D): no unit axis left
        n("Reshape", ["k", "heads_shape"], ["kh"], name="k_heads"),
        n("Reshape", ["v", "heads_shape"], ["vh"], name="v_heads"),
        n("Transpose", ["qh"], ["qt"], name="q_t", perm=[1, 0, 2]),  # (H, L, D)
        n("Transpose", ["kh"], ["kt"], name="k_t", perm=[1, 2, 0]),  # (H, D, L)
        n("Transpose", ["vh"], ["vt"], name="v_t", perm=[1, 0, 2]),
        n("Reshape", ["qt", "q4_shape"], ["q4"], name="q4"),  # (1, H, L, D)
        n("Reshape", ["kt", "k4_shape"], ["k4"], name="k4"),  # (1, H, D, L)
        n("Reshape", ["vt", "q4_shape"], ["v4"], name="v4"),
        n("Mul", ["q4", "scale"], ["qs"], name="q_scale"),
        n("Mul", ["k4", "scale"], ["ks"], name="k_scale"),
        n("MatMul", ["qs", "ks"], ["scores"], name="q_kt"),
        n("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
        n("MatMul", ["probs", "v4"], ["attn"], name="p_v"),  # (1, H, L, D)
        n("Transpose", ["attn"], ["attn_t"], name="heads_back", perm=[2, 0, 1, 3]),  # (L, 1, H, D)
        n("Reshape", ["attn_t", "le_shape"], ["attn2"], name="merge_heads"),  # (L, E)
        n("Gemm", ["attn2", "w_out", "b_out"], ["proj"], name="out_proj", transB=1),
        n("Reshape", ["proj", "tokens_shape"], ["proj3"], name="batch_back"),  # (1, L, E)
        n("Add", ["tokens", "proj3"], ["res1"], name="residual1"),
        # MLP with the dynamo exporter's GELU, x * (0.5 * (1 + erf(x / sqrt(2)))) ...
        n("MatMul", ["res1", "w_fc1"], ["fc1"], name="fc1"),
        n("Div", ["fc1", "sqrt2"], ["d1"], name="gelu1_div"),
        n("Erf", ["d1"], ["e1"], name="gelu1_erf"),
        n("Add", ["e1", "one"], ["a1"], name="gelu1_add"),
        n("Mul", ["half", "a1"], ["h1"], name="gelu1_half"),
        n("Mul", ["fc1", "h1"], ["g1"], name="gelu1_mul"),
        # ... and TorchScript's, (x * (1 + erf(x / sqrt(2)))) * 0.5, on the batch-moved layout.
        n("Transpose", ["g1"], ["g1t"], name="g1_seq_first", perm=[1, 0, 2]),
        n("Div", ["g1t", "sqrt2"], ["d2"], name="gelu2_div"),
        n("Erf", ["d2"], ["e2"], name="gelu2_erf"),
        n("Add", ["e2", "one"], ["a2"], name="gelu2_add"),
        n("Mul", ["g1t", "a2"], ["m2"], name="gelu2_mul"),
        n("Mul", ["m2", "half"], ["g2"], name="gelu2_half"),
        n("Transpose", ["g2"], ["g2b"], name="g2_batch_first", perm=[1, 0, 2]),
        n("MatMul", ["g2b", "w_fc2"], ["fc2"], name="fc2"),
        n("Add", ["res1", "fc2"], ["res2"], name="residual2"),
        n("ReduceMean", ["res2"], ["pooled"], name="mean_tokens", axes=[1], keepdims=0),
        n("Gemm", ["pooled", "w_head", "b_head"], ["y"], name="head", transB=1),
    ]
    inits = [
        _w("w_embed", E, 3, 2, 2), _w("b_embed", E), _ints("flat_shape", [1, E, L]), _w("gamma", E), _w("beta", E),
        _w("w_in", E, 3 * E), _w("b_in", 3 * E), _ints("qkv_shape", [L, 1, 3, E]), _ints("axis0", [0]),
        _ints("axis3", [3]), numpy_helper.from_array(np.int64(0), "i0"),
        numpy_helper.from_array(np.int64(1), "i1"), numpy_helper.from_array(np.int64(2), "i2"),
        _ints("heads_shape", [L, H, D]), _ints("q4_shape", [1, H, L, D]), _ints("k4_shape", [1, H, D, L]),
        numpy_helper.from_array(np.full(1, D ** -0.25, np.float32), "scale"), _ints("le_shape", [L, E]),
        _w("w_out", E, E), _w("b_out", E), _ints("tokens_shape", [1, L, E]), _w("w_fc1", E, 2 * E),
        _scalar("sqrt2", np.sqrt(2)), _scalar("one", 1.0), _scalar("half", 0.5), _w("w_fc2", 2 * E, E),
        _w("w_head", 5, E), _w("b_head", 5),
    ]
    return nodes, inits


def test_pytorch_attention_with_batch_moving_transposes_matches_onnx_runtime(tmp_path):
    nodes, inits = _vit_block()
    model = _read(tmp_path, nodes, [_value("x", 1, 3, 8, 8)], [_value("y", 1, 5)], inits)
    keras_model = onnx_lower.lower(model)
    # Three samples in one call: every sample must stay independent although the batch axis moved.
    assert onnx_lower.check(model, keras_model, samples=3)["max_rel_err"] <= 1e-4
    kinds = {type(layer).__name__ for layer in keras_model.layers}
    assert {"Dense", "LayerNormalization", "Softmax"} <= kinds
    functions = [layer.get_config().get("function") for layer in keras_model.layers]
    assert functions.count("math.sigmoid") == 2  # both exporters' GELU forms were recognized


def test_moving_a_batch_larger_than_one_is_refused(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="seq_first", perm=[1, 0, 2]),
             helper.make_node("Relu", ["t"], ["y"], name="relu")]
    model = _read(tmp_path, nodes, [_value("x", 2, 4, 3)], [_value("y", 4, 2, 3)], [])
    with pytest.raises(InputError, match="seq_first.*moves the batch axis"):
        onnx_lower.lower(model)
