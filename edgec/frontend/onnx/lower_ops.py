"""Compute operators for :mod:`edgec.frontend.onnx.lower`, one function each: ``handler(state, node, index)``.

Each handler reads its inputs from ``state.values`` (Keras tensor + layout ``perm``, or a constant),
adds Keras layers, and stores its outputs with their layout. ``HANDLERS`` is the closed table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgec.frontend.onnx.lower_attention import batch_matmul, expand, gather, gelu, layer_norm
from edgec.frontend.onnx.lower_shape import keras_axis, refuse, concat, constant, pad, passthrough, reshape_like, resize, split, transpose
from edgec.frontend.onnx.lower_zoo import cast, global_pool, lrn, prelu, reduce, slice_, variadic
from edgec.frontend.onnx.lowering import NHWC, Lowering, Value, attrs


def _spatial_padding(node: Any, state: Lowering, in_hw, kernel, strides, dilations) -> tuple[str, Any]:
    """'same', 'valid' or ('valid', explicit ((top, bottom), (left, right))) for a 2-D window op."""
    a = attrs(node)
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "VALID":
        return "valid", None
    same = []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        same.append((total // 2, total - total // 2))
    if auto == "SAME_UPPER":
        return "same", None
    if auto == "SAME_LOWER":
        raise refuse(node, "auto_pad SAME_LOWER is not supported; export with explicit pads")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    explicit = ((pads[0], pads[2]), (pads[1], pads[3]))
    if explicit == ((0, 0), (0, 0)):
        return "valid", None
    if all(tuple(p) == s for p, s in zip(explicit, same)):
        return "same", None
    return "valid", explicit


def _window_2d(state: Lowering, node: Any) -> tuple[Any, dict]:
    """Input tensor in NHWC plus the window parameters of a 2-D Conv/Pool node."""
    shape = state.shape(node.input[0])
    if len(shape) != 4:
        raise refuse(node, f"only 2-D (4-D NCHW) inputs are supported, got rank {len(shape)}")
    a = attrs(node)
    kernel = tuple(a.get("kernel_shape") or state.shape(node.input[1])[2:])
    strides = tuple(a.get("strides", (1, 1)))
    dilations = tuple(a.get("dilations", (1, 1)))
    padding, explicit = _spatial_padding(node, state, shape[2:], kernel, strides, dilations)
    x = state.layout(node.input[0], NHWC)
    return x, {"kernel": kernel, "strides": strides, "dilations": dilations, "padding": padding,
               "explicit": explicit}


def _pad_explicit(state: Lowering, node: Any, x: Any, explicit) -> Any:
    if explicit is None:
        return x
    return state.keras.layers.ZeroPadding2D(explicit, name=state.name(node, "_pad"))(x)


def conv(state: Lowering, node: Any, index: int) -> None:
    """Conv (2-D): Conv2D, DepthwiseConv2D (group == channels) or grouped Conv2D."""
    layers = state.keras.layers
    x, w = _window_2d(state, node)
    weight = state.const(node, 1, what="weight")
    bias = state.const(node, 2, what="bias")
    group = attrs(node).get("group", 1)
    c_out, c_in_g = weight.shape[:2]
    c_in = c_in_g * group
    x = _pad_explicit(state, node, x, w["explicit"])
    common = dict(strides=w["strides"], padding=w["padding"], dilation_rate=w["dilations"],
                  use_bias=bias is not None, name=state.name(node))
    if group > 1 and group == c_in and c_in_g == 1:
        mult = c_out // c_in
        layer = layers.DepthwiseConv2D(w["kernel"], depth_multiplier=mult, **common)
        kernel = weight.reshape(c_in, mult, *w["kernel"]).transpose(2, 3, 0, 1)
    else:
        layer = layers.Conv2D(c_out, w["kernel"], groups=group, **common)
        kernel = weight.transpose(2, 3, 1, 0)
    y = layer(x)
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    state.set(node.output[0], y, NHWC)


def conv_transpose(state: Lowering, node: Any, index: int) -> None:
    """ConvTranspose (2-D, group 1): Conv2DTranspose 'valid', then cropping of the ONNX pads."""
    layers = state.keras.layers
    a = attrs(node)
    weight = state.const(node, 1, what="weight")
    bias = state.const(node, 2, what="bias")
    if a.get("group", 1) != 1 or any(a.get("output_padding", [0])) or "output_shape" in a:
        raise refuse(node, "only group=1 without output_padding/output_shape is supported")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise refuse(node, "auto_pad is not supported; export with explicit pads")
    if len(state.shape(node.input[0])) != 4:
        raise refuse(node, "only 2-D (4-D NCHW) inputs are supported")
    x = state.layout(node.input[0], NHWC)
    kernel = tuple(weight.shape[2:])
    layer = layers.Conv2DTranspose(weight.shape[1], kernel, strides=tuple(a.get("strides", (1, 1))),
                                   dilation_rate=tuple(a.get("dilations", (1, 1))), padding="valid",
                                   use_bias=bias is not None, name=state.name(node))
    y = layer(x)
    layer.set_weights([weight.transpose(2, 3, 1, 0)] + ([bias] if bias is not None else []))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if any(pads):
        y = layers.Cropping2D(((pads[0], pads[2]), (pads[1], pads[3])), name=state.name(node, "_crop"))(y)
    state.set(node.output[0], y, NHWC)


def _dense(state: Lowering, node: Any, index: int, x: Any, kernel: np.ndarray, bias) -> None:
    """A product with ``kernel`` over the last axis of ``x``: a Dense layer, or a 1x1 Conv2D for rank > 2.

    Keras' Dense on a rank-3 input with an unknown batch is a ``tensordot`` whose shapes are computed at
    run time (SHAPE, GATHER, REDUCE_PROD, PACK: TFLite Micro has no REDUCE_PROD), and folding the rows
    into the batch would leave RESHAPEs whose stored shapes say batch 1. A 1x1 convolution over the rows
    as an (rows, 1) image keeps the samples' axis and constant shapes (RESHAPE, CONV_2D, RESHAPE) and
    is still a layer TF-MOT prunes and clusters.
    """
    layers = state.keras.layers
    rows = [int(d) for d in x.shape[1:-1]]
    weights = [kernel.astype(np.float32)] + ([np.broadcast_to(bias, (kernel.shape[1],)).astype(np.float32)]
                                             if bias is not None else [])
    if not rows:
        layer = layers.Dense(kernel.shape[1], use_bias=bias is not None, name=state.name(node))
        y = layer(x)
        layer.set_weights(weights)
        return y
    image = state.tf.reshape(x, [-1, int(np.prod(rows)), 1, int(x.shape[-1])], name=state.name(node, "_rows"))
    layer = layers.Conv2D(kernel.shape[1], 1, use_bias=bias is not None, name=state.name(node))
    y = layer(image)
    layer.set_weights([weights[0].reshape(1, 1, *kernel.shape)] + weights[1:])
    return state.tf.reshape(y, [-1, *rows, kernel.shape[1]], name=state.name(node, "_unrows"))


def gemm(state: Lowering, node: Any, index: int) -> None:
    """Gemm with constant B (and C): Dense."""
    a = attrs(node)
    if a.get("transA", 0) or len(state.shape(node.input[0])) != 2:
        raise refuse(node, "only a 2-D A without transA is supported")
    weight = state.const(node, 1, what="B") * a.get("alpha", 1.0)
    if a.get("transB", 0):
        weight = weight.T
    bias = state.const(node, 2, what="C")
    if bias is not None:
        bias = bias * a.get("beta", 1.0)
    x, perm = state.last_axis_last(node.input[0])
    state.set(node.output[0], _dense(state, node, index, x, weight, bias), perm)


def matmul(state: Lowering, node: Any, index: int) -> None:
    """MatMul by a constant 2-D matrix: Dense; a following Add of a constant vector becomes its bias.

    Two tensors (attention): a batched matrix product, see :func:`edgec.frontend.onnx.lower_attention.batch_matmul`.
    """
    if not state.values[node.input[1]].is_const:
        return batch_matmul(state, node, index)
    weight = state.const(node, 1, what="B")
    if weight.ndim != 2:
        raise refuse(node, "only a constant 2-D right-hand matrix is supported")
    bias, out = None, node.output[0]
    users = state.consumers.get(out, [])
    graph_outputs = [o.name for o in state.model.graph.output]
    if len(users) == 1 and users[0].op_type == "Add" and out not in graph_outputs:
        add = users[0]
        other = [n for n in add.input if n != out]
        value = state.values.get(other[0]) if len(other) == 1 else None
        if value is not None and value.is_const and value.const.size == weight.shape[1]:
            bias = value.const.reshape(-1)
            state.skip.add(list(state.model.graph.node).index(add))
            out = add.output[0]
    x, perm = state.last_axis_last(node.input[0])  # Dense contracts the last Keras axis
    state.set(out, _dense(state, node, index, x, weight, bias), perm)


def batch_norm(state: Lowering, node: Any, index: int) -> None:
    """BatchNormalization (inference): a Keras BatchNormalization on the channel axis."""
    scale, shift, mean, var = (state.const(node, i) for i in range(1, 5))
    axis = keras_axis(state, node.input[0], 1)
    layer = state.keras.layers.BatchNormalization(axis=axis, epsilon=attrs(node).get("epsilon", 1e-5),
                                                  name=state.name(node))
    value = state.values[node.input[0]]
    y = layer(value.tensor, training=False)
    layer.set_weights([scale, shift, mean, var])
    state.set(node.output[0], y, value.perm)


def _unary(make):
    def handler(state: Lowering, node: Any, index: int) -> None:
        value = state.values[node.input[0]]
        y = make(state, node)(value.tensor)
        state.set(node.output[0], y, value.perm)
    handler.__doc__ = "Element-wise op: keeps the input's layout."
    return handler


def _clip_layer(state: Lowering, node: Any):
    a = attrs(node)
    low = state.const(node, 1) if len(node.input) > 1 and node.input[1] else a.get("min")
    high = state.const(node, 2) if len(node.input) > 2 and node.input[2] else a.get("max")
    low = None if low is None else float(low)
    high = None if high is None else float(high)
    if low == 0.0:
        return state.keras.layers.ReLU(max_value=high, name=state.name(node))
    tf = state.tf
    lo = -np.inf if low is None else low
    hi = np.inf if high is None else high
    return lambda x: tf.clip_by_value(x, lo, hi, name=state.name(node))


def _hard_sigmoid(state: Lowering, node: Any):
    a = attrs(node)
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    tf = state.tf
    return lambda x: tf.clip_by_value(x * alpha + beta, 0.0, 1.0, name=state.name(node))


def _hard_swish(state: Lowering, node: Any):
    tf = state.tf
    # x * relu6(x + 3) / 6: the pattern the TFLite converter fuses into HARD_SWISH.
    return lambda x: tf.math.multiply(x, tf.nn.relu6(x + 3.0) * (1.0 / 6.0), name=state.name(node))


def _activation(kind: str):
    return lambda state, node: state.keras.layers.Activation(kind, name=state.name(node))


def _binary(op: str):
    def handler(state: Lowering, node: Any, index: int) -> None:
        a, b = (state.values[n] for n in node.input[:2])
        tf, layers = state.tf, state.keras.layers
        if op == "Div":
            if not b.is_const:
                raise refuse(node, "Div is supported only by a constant divisor")
            op_, b = "Mul", Value(const=(1.0 / b.const.astype(np.float64)).astype(np.float32))
        else:
            op_ = op
        if a.is_const and b.is_const:
            raise refuse(node, "both operands are constants; fold constants first")
        if a.is_const or b.is_const:
            x, c = (b, a.const) if a.is_const else (a, b.const)
            rank = len(state.shape(node.output[0]))
            if np.ndim(c) > len(state.shape(node.input[1 if a.is_const else 0])):
                raise refuse(node, "a constant of higher rank than the tensor operand is not supported")
            c = state.const_layout(c, x.perm, rank)
            fn = {"Add": tf.math.add, "Mul": tf.math.multiply, "Sub": tf.math.subtract}[op_]
            args = (c, x.tensor) if a.is_const else (x.tensor, c)
            y = fn(*args, name=state.name(node))
            state.set(node.output[0], y, x.perm)
            return
        ra, rb = len(state.shape(node.input[0])), len(state.shape(node.input[1]))
        perm = a.perm if ra == rb else state.onnx_perm(node.input[0])
        xa = state.layout(node.input[0], perm)
        xb = state.layout(node.input[1], perm if ra == rb else state.onnx_perm(node.input[1]))
        same = state.shape(node.input[0]) == state.shape(node.input[1])
        if same:
            layer = {"Add": layers.Add, "Sub": layers.Subtract, "Mul": layers.Multiply}[op_]
            y = layer(name=state.name(node))([xa, xb])
        else:
            fn = {"Add": tf.math.add, "Mul": tf.math.multiply, "Sub": tf.math.subtract}[op_]
            y = fn(xa, xb, name=state.name(node))
        state.set(node.output[0], y, perm if ra == rb else state.onnx_perm(node.output[0]))
    handler.__doc__ = f"{op}: element-wise, Keras merge layer when shapes agree, else a broadcasting op."
    return handler


def _pool(kind: str):
    def handler(state: Lowering, node: Any, index: int) -> None:
        layers = state.keras.layers
        a = attrs(node)
        if a.get("ceil_mode", 0) and kind != "max":
            raise refuse(node, "ceil_mode=1 is supported for MaxPool only")
        x, w = _window_2d(state, node)
        if any(d != 1 for d in w["dilations"]):
            raise refuse(node, "dilated pooling is not supported")
        if kind == "max" and (w["explicit"] is not None or a.get("ceil_mode", 0)):
            x, w = _max_pool_edges(state, node, x, w), {**w, "padding": "valid"}
        elif w["explicit"] is not None and _one_window_over_all(state, node, w):
            # Caffe's GoogLeNet ends in a 7x7 average on 6x6 with pads (0, 0, 1, 1): padding is not
            # counted, so the one window's average is the mean of the whole input.
            y = layers.GlobalAveragePooling2D(keepdims=True, name=state.name(node))(x)
            state.set(node.output[0], y, NHWC)
            return
        elif w["explicit"] is not None:
            _avg_pool_explicit(state, node, x, w)
            return
        if kind == "avg" and w["padding"] == "same" and a.get("count_include_pad", 0):
            raise refuse(node, "count_include_pad=1 with padding is not supported")
        layer = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
        y = layer(w["kernel"], strides=w["strides"], padding=w["padding"], name=state.name(node))(x)
        state.set(node.output[0], y, NHWC)
    handler.__doc__ = f"{kind} pooling (2-D): a Keras pooling layer on NHWC."
    return handler


def _avg_pool_explicit(state: Lowering, node: Any, x: Any, w: dict) -> None:
    """An average pool with explicit pads TensorFlow's 'same' does not make (ONNX pads symmetrically, e.g.
    ShuffleNet's 3x3 stride-2 pool with pads 1 on an even input): zero padding, a 'valid' average, and
    unless ``count_include_pad`` a constant per output position, kernel area / the window's real
    elements, so that padding is not counted (PAD, AVERAGE_POOL_2D and MUL, all int8 in TFLite)."""
    layers, tf = state.keras.layers, state.tf
    (top, _), (left, _) = w["explicit"]
    padded = _pad_explicit(state, node, x, w["explicit"])
    y = layers.AveragePooling2D(w["kernel"], strides=w["strides"], padding="valid", name=state.name(node))(padded)
    if not attrs(node).get("count_include_pad", 0):
        (h, wd), (kh, kw), (sh, sw) = state.shape(node.input[0])[2:], w["kernel"], w["strides"]
        oh, ow = state.shape(node.output[0])[2:]
        rows = np.array([min(i * sh - top + kh, h) - max(i * sh - top, 0) for i in range(oh)], np.float32)
        cols = np.array([min(j * sw - left + kw, wd) - max(j * sw - left, 0) for j in range(ow)], np.float32)
        scale = (kh * kw) / np.outer(rows, cols)
        if np.any(scale != 1.0):
            y = tf.math.multiply(y, scale.reshape(1, oh, ow, 1).astype(np.float32), name=state.name(node, "_count"))
    state.set(node.output[0], y, NHWC)


def _one_window_over_all(state: Lowering, node: Any, w: dict) -> bool:
    """An average pool with one output position whose window covers the whole input, padding not counted."""
    in_hw, out_hw = state.shape(node.input[0])[2:], state.shape(node.output[0])[2:]
    return (not attrs(node).get("count_include_pad", 0) and tuple(out_hw) == (1, 1)
            and all(k - begin >= size for size, k, (begin, _) in zip(in_hw, w["kernel"], w["explicit"])))


def _max_pool_edges(state: Lowering, node: Any, x: Any, w: dict) -> Any:
    """Explicit pads and ceil_mode=1 of a MaxPool as repeated edge rows/columns, then 'valid' pooling.

    ONNX pads are smaller than the kernel, and ceil mode's last window starts inside the input, so
    every window that covers padding also covers the edge row/column next to it: copies of the edge
    change no maximum, unlike zero padding (wrong for negative values) or -inf padding (which would
    ruin int8 ranges).
    """
    if w["padding"] == "same":
        raise refuse(node, "ceil_mode=1 with auto_pad SAME is not supported")
    explicit = w["explicit"] or ((0, 0), (0, 0))
    out = state.shape(node.output[0])[2:]
    for axis, (size, k, s, o, (begin, end)) in enumerate(zip(x.shape[1:3], w["kernel"], w["strides"], out,
                                                             explicit)):
        size = int(size)
        end = max(end, (o - 1) * s + k - size - begin)  # ceil mode's last window may need more
        if not begin and not end:
            continue
        first, last = [slice(None)] * 4, [slice(None)] * 4
        first[axis + 1], last[axis + 1] = slice(0, 1), slice(size - 1, size)
        parts = [x[tuple(first)]] * begin + [x] + [x[tuple(last)]] * end
        x = state.keras.layers.Concatenate(axis=axis + 1, name=state.name(node, f"_edges{axis}"))(parts)
    return x


def softmax(state: Lowering, node: Any, index: int) -> None:
    """Softmax over one axis (opset 13 semantics)."""
    axis = keras_axis(state, node.input[0], attrs(node).get("axis", -1))
    value = state.values[node.input[0]]
    y = state.keras.layers.Softmax(axis=axis, name=state.name(node))(value.tensor)
    state.set(node.output[0], y, value.perm)


def _leaky(state: Lowering, node: Any):
    return state.keras.layers.LeakyReLU(alpha=attrs(node).get("alpha", 0.01), name=state.name(node))


HANDLERS = {
    "Add": _binary("Add"), "Sub": _binary("Sub"), "Mul": _binary("Mul"), "Div": _binary("Div"),
    "AveragePool": _pool("avg"), "MaxPool": _pool("max"), "BatchNormalization": batch_norm,
    "Clip": _unary(_clip_layer), "Concat": concat, "Constant": constant, "Conv": conv,
    "ConvTranspose": conv_transpose, "Dropout": passthrough, "Identity": passthrough,
    "Flatten": reshape_like, "Reshape": reshape_like, "Squeeze": reshape_like, "Unsqueeze": reshape_like,
    "Gemm": gemm, "MatMul": matmul, "GlobalAveragePool": global_pool("GlobalAveragePooling2D"),
    "HardSigmoid": _unary(_hard_sigmoid), "HardSwish": _unary(_hard_swish),
    "LeakyRelu": _unary(_leaky), "Relu": _unary(lambda s, n: s.keras.layers.ReLU(name=s.name(n))),
    "Sigmoid": _unary(_activation("sigmoid")), "Tanh": _unary(_activation("tanh")),
    "Pad": pad, "Resize": resize, "Softmax": softmax, "Split": split, "Transpose": transpose,
    "ReduceMean": reduce("mean"), "ReduceMax": reduce("max"), "GlobalMaxPool": global_pool("GlobalMaxPooling2D"),
    "Sum": variadic("Sum"), "Min": variadic("Min"), "Max": variadic("Max"), "PRelu": prelu,
    "Slice": slice_, "Cast": cast, "LayerNormalization": layer_norm, "Erf": gelu, "Gather": gather,
    "Expand": expand, "LRN": lrn,
}
# Handlers that take their inputs in any layout, including one whose batch axis an earlier Transpose
# or Reshape moved (a batch-1 graph's attention): the rest get their inputs with the batch first again.
ANY_LAYOUT = frozenset((
    "Add", "Sub", "Mul", "Div", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "Relu", "Sigmoid", "Tanh",
    "Concat", "Constant", "Dropout", "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Gemm", "MatMul",
    "Softmax", "Split", "Transpose", "Cast", "LayerNormalization", "Erf", "Gather", "Expand",
))


def _batch_first(handler):
    def wrapped(state: Lowering, node: Any, index: int) -> None:
        for name in node.input:
            if name and name in state.values:
                state.batch_first(name)
        handler(state, node, index)
    wrapped.__doc__ = handler.__doc__
    return wrapped


HANDLERS = {op: h if op in ANY_LAYOUT else _batch_first(h) for op, h in HANDLERS.items()}
