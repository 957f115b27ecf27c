"""Host-side quantization parameters, computed exactly as TFLite Micro's ``Prepare`` steps do.

The generated C only sees integers: multipliers, shifts, offsets and clamp bounds. Each is derived
here with the same float/double arithmetic as the reference (float32 where TFLite uses ``float``,
float64 where it uses ``double``), so the integer kernels then agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from edgec.core.errors import InputError

F32 = np.float32


def round_away(x: float) -> int:
    """``std::round``: to nearest, ties away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Q31 multiplier and power-of-two shift with ``real ~= mult * 2**(shift - 31)`` (QuantizeMultiplier)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:  # everything would be shifted out: flush to zero like the reference
        return 0, 0
    return int(q_fixed), int(shift)


def frexp_multiplier(real: float) -> tuple[int, int]:
    """Multiplier/shift as logistic and tanh ``Prepare`` compute them (plain frexp, no renormalizing)."""
    q, shift = math.frexp(real)
    return round_away(q * (1 << 31)), int(shift)


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """CalculateInputRadius: the largest input difference that does not saturate."""
    rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return int(math.floor(rescaled))


def activation_range(activation: int, scale: float, zero_point: int, *, op: str) -> tuple[int, int]:
    """Clamp bounds of a fused activation on an int8 output (CalculateActivationRangeQuantized)."""

    def quantize(f: float) -> int:
        return int(zero_point) + round_away(float(F32(f) / F32(scale)))

    lo, hi = -128, 127
    if activation == 0:  # NONE
        return lo, hi
    if activation == 1:  # RELU
        return max(lo, quantize(0.0)), hi
    if activation == 3:  # RELU6
        return max(lo, quantize(0.0)), min(hi, quantize(6.0))
    if activation == 2:  # RELU_N1_TO_1
        return max(lo, quantize(-1.0)), min(hi, quantize(1.0))
    raise InputError(f"operator {op}: fused activation {activation} has no C kernel; "
                     "use the tflm format for this model", stage="export")


def conv_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int):
    """Per-channel (multiplier, shift) lists of CONV_2D / DEPTHWISE_CONV_2D (double arithmetic)."""
    scales = np.asarray(filter_scales, np.float32).reshape(-1)
    mults, shifts = [], []
    for c in range(channels):
        s = scales[c] if scales.size > 1 else scales[0]
        m, sh = quantize_multiplier(float(F32(input_scale)) * float(s) / float(F32(output_scale)))
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def fc_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED multiplier: the scale product is taken in float32, then double."""
    product = float(F32(input_scale) * F32(filter_scale))
    return quantize_multiplier(product / float(F32(output_scale)))


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) of the int8 softmax with 5 integer bits."""
    real = min(float(beta) * float(F32(input_scale)) * (1 << 26), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    return mult, shift, -input_radius(5, shift)


def sigmoid_params(input_scale: float) -> tuple[int, int, int]:
    """(multiplier, shift, radius) of int8 LOGISTIC / TANH with a Q4.27 internal input."""
    mult, shift = frexp_multiplier(float(F32(input_scale)) * float(1 << 27))
    return mult, shift, input_radius(4, shift)


def _downscale_int16(m32: int) -> int:
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(input_scale: float, output_scale: float) -> tuple[int, int, int, int]:
    """(output multiplier int16, output exponent, relu-ish multiplier int16, relu-ish exponent)."""
    hires = F32(1.0 / 128.0) * F32(input_scale)
    out_m, out_e = quantize_multiplier(float(hires / F32(output_scale)))
    relu_m, relu_e = quantize_multiplier(float(hires / (F32(3.0) / F32(32768.0))))
    if out_e > 0:
        raise InputError("operator HARD_SWISH: output scale too small for the int8 kernel",
                         stage="export")
    return _downscale_int16(out_m), out_e, _downscale_int16(relu_m), relu_e


def requant_mode(bias, filters, in_offset: int, shifts, act_min: int, act_max: int) -> int:
    """How a conv / fully-connected layer's kernels may requantize: 0 exact generic path, 1 the
    DSP shortcut then a clamp, 2 the shortcut with a plain int8 saturation.

    The shortcut (edgec_mbqm_dsp: one SMMULR of 2 * acc, then a rounding shift) equals the
    reference's doubling high multiply and rounding division exactly when every shift is a right
    shift (< 0) and 2 * |acc| cannot overflow int32. |acc| is bounded per output channel from the
    constant weights and bias: |bias| + max|x + in_offset| * sum|w| over int8 inputs x.
    ``filters``: 2-D, one row of weights per output channel; ``bias``: per channel or None.
    """
    w = np.abs(np.asarray(filters, np.int64)).sum(axis=1)
    b = np.zeros_like(w) if bias is None else np.abs(np.asarray(bias, np.int64).reshape(-1))
    x_max = max(abs(-128 + in_offset), abs(127 + in_offset))
    if int(np.max(np.asarray(shifts))) >= 0 or int((b + x_max * w).max(initial=0)) * 2 >= 1 << 31:
        return 0
    return 2 if (act_min, act_max) == (-128, 127) else 1
