"""Host-side requantization parameters of the C backend (no TensorFlow needed)."""

from __future__ import annotations

import math

import pytest

from edgec.cbackend.fixedpoint import (activation_range, input_radius, quantize_multiplier,
                                       round_away, softmax_params)
from edgec.errors import InputError


@pytest.mark.parametrize("real", [0.5, 0.75, 1e-3, 3.9e-6, 1.9999999999, 123.456])
def test_quantized_multiplier_reconstructs_the_real_multiplier(real):
    mult, shift = quantize_multiplier(real)
    assert (1 << 30) <= mult < (1 << 31)
    assert math.isclose(mult * 2.0 ** (shift - 31), real, rel_tol=1e-9)


def test_multiplier_that_rounds_up_to_two_is_renormalized():
    mult, shift = quantize_multiplier(1.0 - 2.0 ** -40)  # q * 2^31 rounds to exactly 2^31
    assert (mult, shift) == (1 << 30, 1)


def test_tiny_and_zero_multipliers_flush_to_zero():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)


def test_rounding_is_half_away_from_zero():
    assert [round_away(v) for v in (0.5, 1.5, -0.5, -1.5, 2.4999)] == [1, 2, -1, -2, 2]


def test_fused_relu6_clamps_at_quantized_zero_and_six():
    assert activation_range(3, 0.05, -10, op="CONV_2D") == (-10, 110)
    assert activation_range(0, 0.05, -10, op="CONV_2D") == (-128, 127)


def test_unsupported_fused_activation_names_the_operator():
    with pytest.raises(InputError, match="CONV_2D.*tflm format"):
        activation_range(4, 0.05, 0, op="CONV_2D")


def test_softmax_diff_min_matches_the_input_radius():
    mult, shift, diff_min = softmax_params(1.0, 0.1)
    assert diff_min == -input_radius(5, shift) and diff_min < 0 and mult > 0


def test_requantization_shortcut_only_where_it_is_provably_exact():
    import numpy as np

    from edgec.cbackend.fixedpoint import requant_mode

    small = np.full((4, 9), 10)  # |acc| <= 128 * 90 + 0: far below 2^30
    assert requant_mode(None, small, 0, [-5] * 4, -128, 127) == 2  # full int8 range: plain saturation
    assert requant_mode(None, small, 0, [-5] * 4, 0, 127) == 1  # fused ReLU: shortcut, then clamp
    assert requant_mode(None, small, 0, [-5, -5, 0, -5], -128, 127) == 0  # a left shift: exact path
    huge_bias = np.full(4, 1 << 30)  # 2 * |acc| could overflow int32
    assert requant_mode(huge_bias, small, 0, [-5] * 4, -128, 127) == 0
    wide = np.full((1, 40000), 127)  # 255 * 127 * 40000 > 2^30
    assert requant_mode(None, wide, 127, [-5], -128, 127) == 0
