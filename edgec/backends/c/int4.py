"""C emitters of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with INT4 weights.

The weights go into ``model.c`` exactly as the ``.tflite`` stores them (packed nibbles, ``uint8_t``),
and ``edgec_int4.c`` sign-extends each nibble in a register: no decode buffer in RAM, unlike TFLite
Micro, which unpacks every int4 layer into an int8 scratch buffer of its arena. Parameters are the
int8 ones (:mod:`.ops`); the bias stays unfolded because the kernels add the input offset per input.
"""

from __future__ import annotations

import numpy as np

from edgec.core.errors import InputError
from edgec.backends.c import ops
from edgec.backends.c.fixedpoint import conv_multipliers, fc_multiplier, requant_mode


def _weights(e, op):
    filt = e.model.tensors[op.inputs[1]]
    if filt.packed is None:
        raise InputError(f"operator {op.name} (op #{op.index}): INT4 weights that are not constant have no C "
                         "kernel; use the tflm format for this model", stage="export")
    if int(np.abs(filt.zero_points).max(initial=0)) != 0:
        raise InputError(f"operator {op.name} (op #{op.index}): asymmetric int4 weights have no C kernel; "
                         "use the tflm format for this model", stage="export")
    return filt


def conv_like(e, op, depthwise: bool) -> int:
    """CONV_2D / DEPTHWISE_CONV_2D with per-channel int4 weights."""
    filt = _weights(e, op)
    params, m, s, (n, ih, iw, ic, oh, ow, oc, fh, fw), _ = ops.conv_params(e, op, filt, depthwise)
    kernel = "edgec_depthwise_s4" if depthwise else "edgec_conv_s4"
    e.call(f"{kernel}(&{params}, {e.ptr(op.inputs[0])}, {e.const(op.inputs[1])}, {ops.bias_array(e, op)}, "
           f"{m}, {s}, {e.ptr(op.outputs[0])});")
    return n * oh * ow * oc * fh * fw * (1 if depthwise else ic)


def fully_connected(e, op) -> int:
    """FULLY_CONNECTED with int4 weights (one scale per tensor, as TFLite Micro requires, or per row)."""
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    filt = _weights(e, op)
    if len(filt.shape) != 2:
        raise InputError(f"operator FULLY_CONNECTED (op #{op.index}): needs 2-D weights; "
                         "use the tflm format for this model", stage="export")
    out_depth, in_depth = filt.shape
    batches = ops.nelem(inp) // in_depth
    per_channel = filt.scales.size > 1
    if per_channel:
        mults, shifts = conv_multipliers(ops.scale(inp), filt.scales, ops.scale(out), out_depth)
    else:
        mult, shift = fc_multiplier(ops.scale(inp), float(filt.scales[0]), ops.scale(out))
        mults, shifts = [mult], [shift]
    lo, hi = ops.act_bounds(e, op, out)
    mode = requant_mode(ops.bias_values(e, op), np.asarray(filt.data).reshape(out_depth, -1), -ops.zp(inp),
                        shifts, lo, hi)
    params = e.struct("edgec_fc_params", [batches, in_depth, out_depth, int(per_channel),
                                          -ops.zp(inp), ops.zp(out), lo, hi, mode])
    m, s = e.array("int32_t", mults), e.array("int32_t", shifts)
    e.call(f"edgec_fc_s4(&{params}, {e.ptr(op.inputs[0])}, {e.const(op.inputs[1])}, {ops.bias_array(e, op)}, "
           f"{m}, {s}, {e.ptr(op.outputs[0])});")
    return batches * out_depth * in_depth
