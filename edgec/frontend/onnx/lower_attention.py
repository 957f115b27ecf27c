"""Transformer-block operators for :mod:`edgec.frontend.onnx.lower`: LayerNormalization, GELU (the exporters'
``Erf`` pattern), Gather on a constant index, MatMul of two tensors, Expand.

``handler(state, node, index)``, listed in ``HANDLERS`` of :mod:`edgec.frontend.onnx.lower_ops`. Each maps to
TFLite builtins (layer normalization is decomposed by the converter; GELU, GATHER, BATCH_MATMUL,
MUL), so the lowered model still converts to int8 TFLite.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgec.frontend.onnx.lower_shape import refuse
from edgec.frontend.onnx.lowering import SAMPLE, Lowering, attrs


def _scalar(state: Lowering, name: str) -> float | None:
    value = state.values.get(name)
    if value is None or not value.is_const or value.const.size != 1:
        return None
    return float(value.const.reshape(()))


def layer_norm(state: Lowering, node: Any, index: int) -> None:
    """LayerNormalization over the last axis with constant scale/bias: a Keras LayerNormalization."""
    shape = state.shape(node.input[0])
    axis = attrs(node).get("axis", -1) % len(shape)
    value = state.values[node.input[0]]
    if value.is_const or axis != len(shape) - 1 or axis == value.perm[0]:
        raise refuse(node, "only normalization of a tensor over its last axis is supported")
    scale = state.const(node, 1, what="scale")
    bias = state.const(node, 2, what="bias")
    keras_axis = list(value.perm).index(axis)
    layer = state.keras.layers.LayerNormalization(axis=keras_axis, epsilon=attrs(node).get("epsilon", 1e-5),
                                                  name=state.name(node))
    y = layer(value.tensor)
    size = shape[axis]
    layer.set_weights([np.broadcast_to(scale, (size,)).astype(np.float32),
                       np.broadcast_to(0.0 if bias is None else bias, (size,)).astype(np.float32)])
    state.set(node.output[0], y, value.perm)


def _single_user(state: Lowering, name: str, op: str) -> Any:
    users = state.consumers.get(name, [])
    outputs = {o.name for o in state.model.graph.output}
    return users[0] if len(users) == 1 and users[0].op_type == op and name not in outputs else None


def _other(node: Any, name: str) -> str | None:
    rest = [n for n in node.input if n != name]
    return rest[0] if len(rest) == 1 else None


def gelu(state: Lowering, node: Any, index: int) -> None:
    """Erf inside ``0.5 * x * (1 + erf(x / sqrt(2)))``, as both torch.onnx exporters write GELU: see
    :func:`_gelu_sigmoid`.

    The two final products come in either order: TorchScript writes ``(x * (1 + erf)) * 0.5``, the
    dynamo exporter ``x * (0.5 * (1 + erf))``. A bare Erf is refused: TFLite has no ERF builtin. The
    pattern's Add and Muls are folded into this one op (skipped when the lowering reaches them).
    """
    nodes = list(state.model.graph.node)
    producer = next((n for n in nodes if node.input[0] in n.output), None)
    ok = producer is not None and producer.op_type in ("Div", "Mul")
    x = producer.input[0] if ok else None
    if ok:
        c = _scalar(state, producer.input[1])
        ok = c is not None and math.isclose(c, math.sqrt(2) if producer.op_type == "Div" else 1 / math.sqrt(2),
                                            rel_tol=1e-4)
    add = _single_user(state, node.output[0], "Add") if ok else None
    ok = add is not None and _scalar(state, _other(add, node.output[0]) or "") == 1.0
    first = _single_user(state, add.output[0], "Mul") if ok else None
    second = _single_user(state, first.output[0], "Mul") if first is not None else None
    factors = (_other(first, add.output[0]), _other(second, first.output[0])) if second is not None else (None,) * 2
    if not any(f == x and _scalar(state, h or "") == 0.5 for f, h in (factors, factors[::-1])):
        raise refuse(node, "Erf is supported only inside GELU, 0.5 * x * (1 + erf(x / sqrt(2)))")
    value = state.values[x]
    y = _gelu_sigmoid(state, value.tensor, state.name(node, "_gelu"))
    state.skip.update(nodes.index(n) for n in (add, first, second))
    state.set(second.output[0], y, value.perm)


# GELU(x) ~ x * sigmoid(z(x)), z(x) = x * P(x^2) with P of degree 4: tanh's approximation (0.5 * (1 + tanh(z))
# == sigmoid(2 z)) extended to ninth order, constants fit for the least maximum error against the exact erf
# form on [-10, 10]: 3.0e-6 absolute (3.6e-6 in float32). Tanh's cubic (4.7e-4) and a fifth-order z (2.5e-5)
# both failed the lowering check's 1e-4 of the output range on an attention block, the fifth-order one for some
# seeds only. z's argument is clipped to [-10, 10], where the gate is already 0 or 1.
GELU_COEFFS = (1.59565628, 0.0729375777, -0.000249721814, -6.11621948e-05, 2.23817153e-06)
GELU_CLIP = 10.0


def _gelu_sigmoid(state: Lowering, x: Any, name: str) -> Any:
    """GELU from MAXIMUM/MINIMUM, MUL, ADD and LOGISTIC: TFLite Micro has no GELU kernel (LiteRT has;
    the converter would fuse ``tf.nn.gelu`` or the tanh pattern into one), and both run these int8 builtins."""
    tf = state.tf
    xc = tf.clip_by_value(x, -GELU_CLIP, GELU_CLIP, name=name + "_clip")
    x2 = tf.math.multiply(xc, xc, name=name + "_sq")  # MUL: SQUARE has no int8 kernel
    inner = tf.math.multiply(x2, GELU_COEFFS[-1], name=name + "_p4")
    for k in range(len(GELU_COEFFS) - 2, -1, -1):  # Horner: P(x2) = c0 + x2 * (c1 + x2 * (...))
        inner = tf.math.add(inner, GELU_COEFFS[k], name=name + f"_c{k}")
        if k:
            inner = tf.math.multiply(x2, inner, name=name + f"_p{k}")
    gate = tf.math.sigmoid(tf.math.multiply(xc, inner, name=name + "_z"), name=name + "_gate")
    return tf.math.multiply(x, gate, name=name)


def gather(state: Lowering, node: Any, index: int) -> None:
    """Gather of a tensor at a constant scalar index on a non-batch axis (drops that axis): tf.gather."""
    value = state.values[node.input[0]]
    indices = state.const(node, 1, what="indices")
    rank = len(state.shape(node.input[0]))
    axis = attrs(node).get("axis", 0) % rank
    if value.is_const or np.ndim(indices) != 0 or axis == value.perm[0]:
        raise refuse(node, "only a scalar constant index into a tensor, not on the batch axis, is supported")
    keras_axis = list(value.perm).index(axis)
    position = int(indices) % state.shape(node.input[0])[axis]
    y = state.tf.gather(value.tensor, position, axis=keras_axis, name=state.name(node))
    left = [p for p in value.perm if p != axis]
    state.set(node.output[0], y, tuple(p if p == SAMPLE else p - (p > axis) for p in left))


def batch_matmul(state: Lowering, node: Any, index: int) -> None:
    """MatMul of two tensors of one rank (attention's Q.K^T and P.V): BATCH_MATMUL in ONNX layout."""
    ra, rb = (len(state.shape(n)) for n in node.input[:2])
    if ra != rb or ra < 3 or state.shape(node.input[0])[:-2] != state.shape(node.input[1])[:-2]:
        raise refuse(node, "only MatMul of two tensors with equal batch dimensions is supported")
    a, b = state.onnx_layout(node.input[0]), state.onnx_layout(node.input[1])
    y = state.tf.linalg.matmul(a, b, name=state.name(node))
    state.set(node.output[0], y, state.onnx_perm(node.output[0]))


def expand(state: Lowering, node: Any, index: int) -> None:
    """Expand to the inferred static shape, batch unchanged: a multiplication by ones (batch-agnostic)."""
    src, out = state.shape(node.input[0]), state.shape(node.output[0])
    value = state.values[node.input[0]]
    batch = value.perm[0] if value.perm and value.perm[0] != SAMPLE else None
    if value.is_const or len(src) != len(out) or -1 in out or (batch is not None and out[batch] != src[batch]):
        raise refuse(node, f"expand {src} -> {out} of a constant, of the rank or of the batch is not supported")
    ones = np.ones([1, *(out[p] for p in value.perm[1:])], np.float32)
    y = state.tf.math.multiply(value.tensor, ones, name=state.name(node))
    state.set(node.output[0], y, value.perm)
