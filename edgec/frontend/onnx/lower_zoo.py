"""Reductions, n-ary element-wise ops and slicing for :mod:`edgec.frontend.onnx.lower`.

What ``torch.onnx`` and the ONNX model zoo emit for vision and audio models beyond plain CNN layers:
``ReduceMean``/``ReduceMax`` (the dynamo exporter's global pooling), ``GlobalMaxPool``, ``Sum``,
``Min``/``Max``, ``PRelu``, ``Slice`` on constant bounds (TorchScript's channel split), ``Cast``
between float types, ``LRN`` (AlexNet, ZFNet, GoogLeNet) decomposed into ops TFLite runs in int8.
``handler(state, node, index)``, listed in ``HANDLERS`` of :mod:`edgec.frontend.onnx.lower_ops`.
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


# The largest LRN beta written as RSQRTs and MULs: beta in quarters takes ceil(2 * beta) + 1 MULs.
LRN_MAX_RSQRT_BETA = 2.0


def lrn(state: Lowering, node: Any, index: int) -> None:
    """LRN, ``y = x / (bias + alpha/size * sum of x^2 over the channel window)^beta``, as int8-capable ops.

    TFLite's LOCAL_RESPONSE_NORMALIZATION is float only (a full-int8 conversion leaves it in float
    between DEQUANTIZE and QUANTIZE) and TFLite Micro has no kernel for it, so it is decomposed:
    ``x * x`` (MUL); the channel-window sum as a 1x1 convolution with a constant banded matrix
    holding ``alpha/size`` plus ``bias`` (CONV_2D); ``t ** -beta`` from RSQRT and MUL when ``beta``
    is a multiple of 1/4 up to :data:`LRN_MAX_RSQRT_BETA` (0.75 in every zoo model), which LiteRT and
    TFLite Micro both run in int8, else ``exp(-beta * log t)`` (LOG, EXP: int8 in LiteRT only; TFLite
    Micro targets refuse LOG); then x times each factor of ``t ** -beta`` (MULs). The window convolution is a TensorFlow
    op, not a Keras Conv2D: it is a fixed part of the operator, which pruning and clustering must not
    touch.
    """
    a = attrs(node)
    shape = state.shape(node.input[0])
    size, alpha = int(a.get("size", 0)), float(a.get("alpha", 1e-4))
    if size < 1 or size % 2 != 1:
        # The spec's window for an even size is lopsided; ONNX Runtime, which checks every lowering,
        # runs odd sizes only (as Caffe, where LRN comes from), so an even one could not be checked.
        raise refuse(node, f"only an odd positive 'size' is supported, got {a.get('size')}")
    beta, bias = float(a.get("beta", 0.75)), float(a.get("bias", 1.0))
    if len(shape) != 4:
        raise refuse(node, f"only 4-D (NCHW) inputs are supported, got rank {len(shape)}")
    if bias <= 0 or alpha < 0 or beta <= 0:
        # bias > 0 keeps the base away from 0, where t ** -beta has no int8 range; ONNX Runtime
        # itself refuses beta <= 0.
        raise refuse(node, f"only bias > 0, alpha >= 0 and beta > 0 are supported (got bias {bias:g}, "
                           f"alpha {alpha:g}, beta {beta:g})")
    tf, layers = state.tf, state.keras.layers
    x = state.layout(node.input[0], NHWC)
    # ONNX's window of channel c, [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to the channels,
    # is [c - (size-1)/2, c + (size-1)/2] for an odd size: column c of the banded matrix.
    source, target = np.arange(shape[1])[:, None], np.arange(shape[1])[None, :]
    band = np.abs(source - target) <= (size - 1) // 2
    window = (band * np.float32(alpha / size)).astype(np.float32)[None, None]
    square = layers.Multiply(name=state.name(node, "_square"))([x, x])
    summed = tf.nn.conv2d(square, window, strides=1, padding="VALID", name=state.name(node, "_window"))
    base = tf.math.add(summed, np.float32(bias), name=state.name(node, "_bias"))  # folded into the conv
    # x times each factor of t ** -beta in turn, not x * (product of the factors): the converter gave
    # that product the scale of the final MUL's output (AlexNet's second LRN: 0.31 for values in
    # 0.12..1, SNR 8 dB), while every partial product of x has about the output's range.
    y = x
    factors = _inverse_power_factors(state, node, base, beta)
    for i, factor in enumerate(factors):
        last = i == len(factors) - 1
        y = layers.Multiply(name=state.name(node, "" if last else "_scale"))([y, factor])
    state.set(node.output[0], y, NHWC)


def _inverse_power_factors(state: Lowering, node: Any, t: Any, beta: float) -> list[Any]:
    """Factors whose product is ``t ** -beta`` (t > 0): RSQRTs for beta in quarters (int8 in TFLite Micro
    too), else ``exp(-beta * log t)``."""
    tf = state.tf
    quarters = round(beta * 4)
    if abs(beta * 4 - quarters) > 1e-6 or beta > LRN_MAX_RSQRT_BETA:
        log_t = tf.math.log(t, name=state.name(node, "_log"))
        return [tf.math.exp(tf.math.multiply(log_t, np.float32(-beta), name=state.name(node, "_scale_log")),
                            name=state.name(node, "_exp"))]
    # t^(-q/4) = r^h * s^(2h - q) with r = t^(-1/2) (RSQRT), s = rsqrt(r) = t^(1/4), h = ceil(q/2).
    r = tf.math.rsqrt(t, name=state.name(node, "_rsqrt"))
    halves = -(-quarters // 2)
    return [r] * halves + ([tf.math.rsqrt(r, name=state.name(node, "_quarter"))] if 2 * halves > quarters else [])
