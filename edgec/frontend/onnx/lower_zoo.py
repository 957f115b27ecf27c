"""Reductions, n-ary element-wise ops and slicing for :mod:`edgec.frontend.onnx.lower`.

What ``torch.onnx`` and the ONNX model zoo emit for vision and audio models beyond plain CNN layers:
``ReduceMean``/``ReduceMax`` (the dynamo exporter's global pooling), ``GlobalMaxPool``, ``Sum``,
``Min``/``Max``, ``PRelu``, ``Slice`` on constant bounds (TorchScript's channel split), ``Cast``
between float types. ``handler(state, node, index)``, listed in ``HANDLERS`` of
:mod:`edgec.frontend.onnx.lower_ops`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgec.frontend.onnx.lower_shape import refuse
from edgec.frontend.onnx.lowering import NHWC, Lowering, attrs

FLOAT_TYPES = (1, 10, 11, 16)  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16: all float32 once lowered


def _reduce_axes(state: Lowering, node: Any) -> list[int]:
    """ONNX reduction axes (attribute before opset 18, input since), normalized; never the batch."""
    rank = len(state.shape(node.input[0]))
    axes = state.const(node, 1, what="axes") if len(node.input) > 1 and node.input[1] else attrs(node).get("axes")
    if axes is None or len(axes) == 0:
        if attrs(node).get("noop_with_empty_axes", 0):
            raise refuse(node, "noop_with_empty_axes=1 without axes is not supported")
        axes = range(rank)
    axes = sorted(int(a) % rank for a in axes)
    if 0 in axes:
        raise refuse(node, "reducing over the batch axis is not supported")
    return axes


def reduce(kind: str):
    """ReduceMean / ReduceMax over constant axes (TFLite MEAN / REDUCE_MAX)."""
    def handler(state: Lowering, node: Any, index: int) -> None:
        axes = _reduce_axes(state, node)
        keep = bool(attrs(node).get("keepdims", 1))
        value = state.values[node.input[0]]
        fn = {"mean": state.tf.math.reduce_mean, "max": state.tf.math.reduce_max}[kind]
        if keep:  # the layout survives: reduce the Keras axes that hold the ONNX axes
            keras_axes = [list(value.perm).index(a) for a in axes]
            y = fn(value.tensor, axis=keras_axes, keepdims=True, name=state.name(node))
            state.set(node.output[0], y, value.perm)
            return
        # Dropped axes: the remaining axes keep their relative order in the Keras layout.
        keras_axes = [list(value.perm).index(a) for a in axes]
        y = fn(value.tensor, axis=keras_axes, keepdims=False, name=state.name(node))
        left = [p for p in value.perm if p not in axes]
        renumber = {a: i for i, a in enumerate(sorted(left))}
        state.set(node.output[0], y, tuple(renumber[p] for p in left))
    handler.__doc__ = f"Reduce{kind.title()} over constant axes, in the input's layout."
    return handler


def global_pool(layer: str):
    """A GlobalAveragePool / GlobalMaxPool handler: Keras ``layer`` (keepdims=True) on NHWC, 4-D inputs only."""
    def handler(state: Lowering, node: Any, index: int) -> None:
        if len(state.shape(node.input[0])) != 4:
            raise refuse(node, "only 4-D inputs are supported")
        x = state.layout(node.input[0], NHWC)
        y = getattr(state.keras.layers, layer)(keepdims=True, name=state.name(node))(x)
        state.set(node.output[0], y, NHWC)
    handler.__doc__ = f"Global pooling: {layer}(keepdims=True) on NHWC."
    return handler


def variadic(kind: str):
    """Sum / Min / Max of tensors of one shape (Keras merge layers)."""
    layers = {"Sum": "Add", "Min": "Minimum", "Max": "Maximum"}

    def handler(state: Lowering, node: Any, index: int) -> None:
        if any(state.values[n].is_const for n in node.input):
            raise refuse(node, "constant operands are not supported")
        shapes = {state.shape(n) for n in node.input}
        if len(shapes) != 1:
            raise refuse(node, f"broadcasting between {sorted(shapes)} is not supported")
        perm = state.values[node.input[0]].perm
        tensors = [state.layout(n, perm) for n in node.input]
        y = tensors[0] if len(tensors) == 1 else getattr(state.keras.layers, layers[kind])(
            name=state.name(node))(tensors)
        state.set(node.output[0], y, perm)
    handler.__doc__ = f"{kind}: element-wise over inputs of one shape."
    return handler


def prelu(state: Lowering, node: Any, index: int) -> None:
    """PRelu with a constant slope per channel (or one slope): Keras PReLU."""
    slope = state.const(node, 1, what="slope").astype(np.float32)
    value = state.values[node.input[0]]
    shape = state.shape(node.input[0])
    rank = len(shape)
    full = np.broadcast_to(slope.reshape((1,) * (rank - slope.ndim) + slope.shape), shape)[0]
    keras_shape = tuple(shape[p] for p in value.perm[1:])
    alpha = np.transpose(full, [p - 1 for p in value.perm[1:]]).reshape(keras_shape)
    # Share the slope across every axis where it is constant: PReLU stores one value per shared group.
    shared = [i + 1 for i in range(rank - 1) if np.all(alpha == np.take(alpha, [0], axis=i))]
    layer = state.keras.layers.PReLU(shared_axes=shared or None, name=state.name(node))
    y = layer(value.tensor)
    layer.set_weights([_squeeze_shared(alpha, shared)])
    state.set(node.output[0], y, value.perm)


def _squeeze_shared(alpha: np.ndarray, shared: list[int]) -> np.ndarray:
    for axis in shared:
        alpha = np.take(alpha, [0], axis=axis - 1)
    return alpha


def slice_(state: Lowering, node: Any, index: int) -> None:
    """Slice with constant starts/ends/axes/steps (not on the batch): a strided slice in the layout."""
    value = state.values[node.input[0]]
    if value.is_const:
        raise refuse(node, "slicing a constant is not supported; fold constants first")
    shape = state.shape(node.input[0])
    rank = len(shape)
    starts, ends = state.const(node, 1, what="starts"), state.const(node, 2, what="ends")
    axes = state.const(node, 3, what="axes") if len(node.input) > 3 and node.input[3] else range(len(starts))
    steps = state.const(node, 4, what="steps") if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) % rank
        if a == 0 or int(st) < 1:
            raise refuse(node, "slicing the batch axis or with negative steps is not supported")
        lo, hi, _ = slice(int(s), int(e), int(st)).indices(shape[a])
        begin[a], end[a], stride[a] = lo, hi, int(st)
    order = list(value.perm)
    y = state.tf.strided_slice(value.tensor, [begin[p] for p in order], [end[p] for p in order],
                               [stride[p] for p in order], end_mask=1, name=state.name(node))  # whole batch
    state.set(node.output[0], y, value.perm)


def cast(state: Lowering, node: Any, index: int) -> None:
    """Cast between float types: the lowered model computes in float32, so nothing to do."""
    if attrs(node).get("to") not in FLOAT_TYPES:
        raise refuse(node, "only casts between float types are supported")
    state.values[node.output[0]] = state.values[node.input[0]]
