"""C emitters of activations, data movement and reductions (see :mod:`.ops` for the conventions)."""

from __future__ import annotations

import numpy as np

from edgec.core.errors import InputError
from edgec.backends.c.fixedpoint import F32, hard_swish_params, quantize_multiplier, round_away, sigmoid_params, softmax_params
from edgec.backends.c.ops import nelem, scale, zp


def _refuse(op, why: str):
    raise InputError(f"operator {op.name} (op #{op.index}): {why}; use the tflm format for this model",
                     stage="export")


def _io(e, op):
    return e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]


def reshape(e, op) -> int:
    """RESHAPE / SQUEEZE / EXPAND_DIMS: the output shares the input's buffer (no code) or is copied."""
    inp, out = _io(e, op)
    if inp.is_constant or e.plan.root_of[op.inputs[0]] != e.plan.root_of[op.outputs[0]]:
        e.call(f"edgec_copy_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(out)});")
    else:
        e.call(f"/* {op.name}: output shares the input buffer */")
    return 0


def softmax(e, op) -> int:
    """SOFTMAX over the last axis (int8 in, int8 out with scale 1/256 and zero point -128)."""
    inp, out = _io(e, op)
    mult, shift, diff_min = softmax_params(float(op.options.beta), scale(inp))
    depth = int(inp.shape[-1])
    e.call(f"edgec_softmax_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp) // depth}, "
           f"{depth}, {mult}, {shift}, {diff_min});")
    return 0


def _sigmoid_like(e, op, kernel: str) -> int:
    inp, out = _io(e, op)
    mult, shift, radius = sigmoid_params(scale(inp))
    e.call(f"{kernel}({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, {zp(inp)}, "
           f"{radius}, {mult}, {shift});")
    return 0


def logistic(e, op) -> int:
    """LOGISTIC (gemmlowp fixed-point sigmoid, Q4.27 input)."""
    return _sigmoid_like(e, op, "edgec_logistic_s8")


def tanh(e, op) -> int:
    """TANH (gemmlowp fixed-point tanh, Q4.27 input)."""
    return _sigmoid_like(e, op, "edgec_tanh_s8")


def hard_swish(e, op) -> int:
    """HARD_SWISH (int16 fixed-point reference algorithm)."""
    inp, out = _io(e, op)
    om, oe, rm, re_ = hard_swish_params(scale(inp), scale(out))
    e.call(f"edgec_hard_swish_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, "
           f"{zp(inp)}, {zp(out)}, {om}, {oe}, {rm}, {re_});")
    return 0


def _per_tensor(op, t) -> None:
    if t.scales is None or np.size(t.scales) != 1:
        _refuse(op, f"tensor '{t.name}' needs one (per-tensor) scale")


def _float_literal(x: float) -> str:
    """A C float literal that reads back as exactly ``x`` rounded to float32 (9 digits suffice)."""
    return f"{float(F32(x)):.9g}f"


def quantize(e, op) -> int:
    """QUANTIZE float32 -> int8 (the model's float input) or int8 -> int8 (a requantization)."""
    inp, out = _io(e, op)
    _per_tensor(op, out)
    if inp.type == "FLOAT32":
        e.call(f"edgec_quantize_f32_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, "
               f"{_float_literal(scale(out))}, {zp(out)});")
        return 0
    _per_tensor(op, inp)
    mult, shift = quantize_multiplier(float(F32(scale(inp))) / float(F32(scale(out))))
    e.call(f"edgec_requantize_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, "
           f"{zp(inp)}, {zp(out)}, {mult}, {shift}, -128, 127);")
    return 0


def dequantize(e, op) -> int:
    """DEQUANTIZE int8 -> float32 (the model's float output)."""
    inp, out = _io(e, op)
    _per_tensor(op, inp)
    e.call(f"edgec_dequantize_s8_f32({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, "
           f"{_float_literal(scale(inp))}, {zp(inp)});")
    return 0


def relu(e, op) -> int:
    """RELU: requantize to the output scale and clamp at zero."""
    inp, out = _io(e, op)
    mult, shift = quantize_multiplier(float(F32(scale(inp))) / float(F32(scale(out))))
    lo = max(-128, zp(out) + round_away(float(F32(0.0) / F32(scale(out)))))
    e.call(f"edgec_requantize_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, "
           f"{zp(inp)}, {zp(out)}, {mult}, {shift}, {lo}, 127);")
    return 0


def relu6(e, op) -> int:
    """RELU6: clamp between the input's quantized 0 and 6 (the scale does not change)."""
    inp, out = _io(e, op)
    six = min(127, max(-128, zp(inp) + round_away(float(F32(6.0) / F32(scale(inp))))))
    e.call(f"edgec_clamp_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {nelem(inp)}, "
           f"{zp(inp)}, {six});")
    return 0


def concatenation(e, op) -> int:
    """CONCATENATION of inputs that share the output's quantization (the converter ensures it)."""
    out = e.model.tensors[op.outputs[0]]
    ins = [e.model.tensors[i] for i in op.inputs]
    if any(scale(t) != scale(out) or zp(t) != zp(out) for t in ins):
        _refuse(op, "inputs with different quantization")
    axis = int(op.options.axis) % len(out.shape)
    outer = int(np.prod(out.shape[:axis], dtype=np.int64)) if axis else 1
    sizes = [int(np.prod(t.shape[axis:], dtype=np.int64)) for t in ins]
    ptrs = ", ".join(e.ptr(i) for i in op.inputs)
    sz = e.array("int32_t", sizes)
    e.call(f"{{ const int8_t *const ins[] = {{{ptrs}}}; "
           f"edgec_concat_s8(ins, {sz}, {len(ins)}, {outer}, {e.ptr(op.outputs[0])}); }}")
    return 0


def _shape4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + [int(d) for d in shape]


def pad(e, op) -> int:
    """PAD / PADV2 with a constant (the output zero point unless given)."""
    inp, out = _io(e, op)
    pads = e.model.tensors[op.inputs[1]].data
    if pads is None or len(inp.shape) > 4:
        _refuse(op, "padding must be constant and at most 4-D")
    pads = np.asarray(pads).reshape(-1, 2)
    before = [0] * (4 - len(pads)) + [int(p) for p in pads[:, 0]]
    after = [0] * (4 - len(pads)) + [int(p) for p in pads[:, 1]]
    value = zp(out)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(e.model.tensors[op.inputs[2]].data).reshape(-1)[0])
    s, b, a = (e.array("int32_t", v) for v in (_shape4(inp.shape), before, after))
    e.call(f"edgec_pad_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {s}, {b}, {a}, {value});")
    return 0


def mean(e, op) -> int:
    """MEAN over constant axes (integer mean with the 1/count folded into the multiplier)."""
    inp, out = _io(e, op)
    axes_t = e.model.tensors[op.inputs[1]]
    if axes_t.data is None or len(inp.shape) > 4:
        _refuse(op, "axes must be constant and the input at most 4-D")
    rank = len(inp.shape)
    axes = sorted({int(a) % rank for a in np.asarray(axes_t.data).reshape(-1)})
    reduce = [0] * (4 - rank) + [int(k in axes) for k in range(rank)]
    count = int(np.prod([inp.shape[a] for a in axes], dtype=np.int64))
    same = int(scale(inp) == scale(out) and zp(inp) == zp(out))
    mult, shift = quantize_multiplier(float(F32(scale(inp))) / float(F32(scale(out))))
    if not same and count > 0 and mult:
        extra = min(count.bit_length() - 1, 32, 31 + shift)
        mult, shift = (mult << extra) // count, shift - extra
    s, r = e.array("int32_t", _shape4(inp.shape)), e.array("int32_t", reduce)
    e.call(f"edgec_mean_s8({e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])}, {s}, {r}, {same}, "
           f"{zp(inp)}, {zp(out)}, {mult}, {shift});")
    return 0
