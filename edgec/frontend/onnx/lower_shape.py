"""Layout and shape operators for :mod:`edgec.frontend.onnx.lower` (Transpose, Reshape family, Concat, Pad,
Resize, Split, Constant, Identity): ``handler(state, node, index)``, listed in ``HANDLERS`` of
:mod:`edgec.frontend.onnx.lower_ops`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgec.core.errors import InputError
from edgec.frontend.onnx.lowering import NHWC, SAMPLE, STAGE, Lowering, Value, attrs


def refuse(node: Any, why: str) -> InputError:
    return InputError(f"node '{node.name}' ({node.op_type}): {why}", stage=STAGE)


def _inverse(perm) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def keras_axis(state: Lowering, name: str, axis: int) -> int:
    """The Keras axis of ONNX axis ``axis`` of value ``name`` in its current layout."""
    rank = len(state.shape(name))
    axis = axis % rank
    return list(state.values[name].perm).index(axis)


def concat(state: Lowering, node: Any, index: int) -> None:
    """Concat of tensors: all brought to the first input's layout."""
    if any(state.values[n].is_const for n in node.input):
        raise refuse(node, "constant inputs are not supported")
    perm = state.values[node.input[0]].perm
    tensors = [state.layout(n, perm) for n in node.input]
    axis = list(perm).index(attrs(node)["axis"] % len(state.shape(node.input[0])))
    y = state.keras.layers.Concatenate(axis=axis, name=state.name(node))(tensors)
    state.set(node.output[0], y, perm)


def reshape_like(state: Lowering, node: Any, index: int) -> None:
    """Reshape / Flatten / Squeeze / Unsqueeze: a Keras Reshape to the inferred output shape.

    In a batch-1 graph the ONNX batch may be reshaped like any unit axis (attention's (L, 1, E) ->
    (L, H, D)): the output's batch axis is then one of its unit axes, or :data:`SAMPLE` if it has none;
    and a reshape that only merges or splits axes lying next to each other in the current layout keeps
    that layout (e.g. an NHWC patch grid flattened to tokens), without a Permute.
    """
    src, out = state.shape(node.input[0]), state.shape(node.output[0])
    if -1 in out or (not state.batch_one and out[0] != src[0]):
        raise refuse(node, f"reshape {src} -> {out} changes the batch or is not static")
    order = _kept_order(state, node.input[0], src, out) if state.batch_one else None
    if order is not None:
        x = state.values[node.input[0]].tensor
    else:  # non-unit axes in ONNX order have ONNX memory order
        x, _ = state.ordered(node.input[0])
        order = [a for a in range(len(out)) if out[a] != 1]
    perm = _with_units(order, out, state.batch_one)
    target = [int(out[p]) for p in perm[1:]]
    # A constant -1 batch keeps TFLite at one RESHAPE; Keras' Reshape layer would read the batch at run
    # time (SHAPE, STRIDED_SLICE, PACK ops that TFLite Micro graphs do not need).
    if list(x.shape[1:]) == target:  # e.g. tf2onnx's NHWC->NCHW "reshape" of a 1-channel image
        y = x
    elif len(target) == 1:
        y = state.keras.layers.Flatten(name=state.name(node))(x)
    else:
        y = state.tf.reshape(x, [-1, *target], name=state.name(node))
    state.set(node.output[0], y, perm)


def _kept_order(state: Lowering, name: str, src, out) -> list[int] | None:
    """The output's non-unit axes in memory order when the reshape keeps the input's layout, else None.

    A row-major reshape maps runs of consecutive non-unit input axes to runs of output axes of equal
    size; when every input run lies in the layout in ONNX order and side by side, the bytes need not
    move and each output run takes the place of its input run.
    """
    groups, ins, outs = [], [a for a in range(len(src)) if src[a] != 1], [a for a in range(len(out)) if out[a] != 1]
    i = j = 0
    while i < len(ins):
        g_in, g_out, p_in, p_out = [ins[i]], [outs[j]], src[ins[i]], out[outs[j]]
        i, j = i + 1, j + 1
        while p_in != p_out:
            if p_in < p_out:
                g_in.append(ins[i])
                p_in, i = p_in * src[ins[i]], i + 1
            else:
                g_out.append(outs[j])
                p_out, j = p_out * out[outs[j]], j + 1
        groups.append((g_in, g_out))
    seq = state.big_axes(name, state.values[name].perm)
    placed = []
    for g_in, g_out in groups:
        at = seq.index(g_in[0])
        if seq[at:at + len(g_in)] != g_in:
            return None
        placed.append((at, g_out))
    return [a for _, g_out in sorted(placed) for a in g_out]


def _with_units(order: list[int], out, batch_one: bool) -> tuple[int, ...]:
    """A layout of the output: its batch axis, then the non-unit axes in ``order`` with the unit axes
    beside their ONNX neighbours (NHWC for a 4-D output whose non-unit axes allow it)."""
    units = [a for a in range(len(out)) if out[a] == 1]
    if not batch_one or 0 in units:
        batch = 0
    else:
        batch = units[0] if units else SAMPLE
    if batch == 0 and len(out) == 4 and [p for p in NHWC if out[p] != 1] == order:
        return NHWC  # e.g. (1, H, W, 1) -> (1, 1, H, W): the NHWC form is the same bytes, so keep NHWC
    rest = list(order)
    for u in units:
        if u != batch:
            rest.insert(next((k + 1 for k in range(len(rest) - 1, -1, -1) if rest[k] < u), 0), u)
    if not batch_one:
        rest = [a for a in rest if a != 0]
    return (batch, *rest)


def transpose(state: Lowering, node: Any, index: int) -> None:
    """Transpose: only the tracked layout changes; no Keras op.

    The batch axis may move only in a batch-1 graph (it is then an ordinary axis of size 1).
    """
    value = state.values[node.input[0]]
    t = list(attrs(node).get("perm") or reversed(range(len(state.shape(node.input[0])))))
    if t[0] != 0 and not state.batch_one:
        raise refuse(node, f"perm {t} moves the batch axis")
    inv = _inverse(t)
    state.set(node.output[0], value.tensor, tuple(p if p == SAMPLE else inv[p] for p in value.perm))


def pad(state: Lowering, node: Any, index: int) -> None:
    """Pad (constant/reflect) with constant pads: ZeroPadding2D when it fits, else tf.pad."""
    a = attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = state.const(node, 1, what="pads").astype(int).tolist()
    value = state.const(node, 2) if len(node.input) > 2 and node.input[2] else np.float32(0)
    if len(node.input) > 3 and node.input[3]:
        raise refuse(node, "the 'axes' input is not supported")
    rank = len(pads) // 2
    if mode not in ("constant", "reflect") or pads[0] or pads[rank]:
        raise refuse(node, f"mode '{mode}' or batch padding is not supported (constant/reflect)")
    pairs = [(pads[i], pads[i + rank]) for i in range(rank)]
    v = state.values[node.input[0]]
    if mode == "constant" and float(value) == 0.0 and rank == 4 and not any(pairs[1]):
        x = state.layout(node.input[0], NHWC)
        y = state.keras.layers.ZeroPadding2D((pairs[2], pairs[3]), name=state.name(node))(x)
        state.set(node.output[0], y, NHWC)
        return
    keras_pairs = [pairs[p] for p in v.perm]
    y = state.tf.pad(v.tensor, keras_pairs, mode=mode.upper(), constant_values=float(value),
                     name=state.name(node))
    state.set(node.output[0], y, v.perm)


def resize(state: Lowering, node: Any, index: int) -> None:
    """Resize nearest by integer factors on H and W: UpSampling2D."""
    a = attrs(node)
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    src, out = state.shape(node.input[0]), state.shape(node.output[0])
    if mode != "nearest" or len(src) != 4:
        raise refuse(node, "only mode 'nearest' on 4-D inputs is supported")
    factors = [o // s for o, s in zip(out, src)]
    if out[:2] != src[:2] or any(o != s * f for o, s, f in zip(out, src, factors)):
        raise refuse(node, f"only integer upscaling of H and W is supported ({src} -> {out})")
    x = state.layout(node.input[0], NHWC)
    y = state.keras.layers.UpSampling2D(tuple(factors[2:]), interpolation="nearest", name=state.name(node))(x)
    state.set(node.output[0], y, NHWC)


def split(state: Lowering, node: Any, index: int) -> None:
    """Split along one axis into given (or equal) parts."""
    a = attrs(node)
    value = state.values[node.input[0]]
    onnx_axis = a.get("axis", 0) % len(state.shape(node.input[0]))
    if onnx_axis == value.perm[0]:
        raise refuse(node, "splitting the batch axis is not supported")
    sizes = state.const(node, 1, what="split") if len(node.input) > 1 and node.input[1] else a.get("split")
    if sizes is None:
        sizes = [state.shape(n)[onnx_axis] for n in node.output]
    axis = list(value.perm).index(onnx_axis)
    parts = state.tf.split(value.tensor, [int(s) for s in sizes], axis=axis, name=state.name(node))
    for name, part in zip(node.output, parts):
        state.set(name, part, value.perm)


def passthrough(state: Lowering, node: Any, index: int) -> None:
    """Identity / Dropout (inference): the input itself."""
    state.values[node.output[0]] = state.values[node.input[0]]


def constant(state: Lowering, node: Any, index: int) -> None:
    """Constant: a NumPy value for the ops that take constant operands."""
    from onnx import numpy_helper

    a = attrs(node)
    if "value" not in a:
        raise refuse(node, "only the 'value' attribute is supported")
    state.values[node.output[0]] = Value(const=numpy_helper.to_array(a["value"]))
