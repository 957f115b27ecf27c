/* Fixed-point primitives of edgec's generated C, matching TFLite Micro's reference int8 kernels bit
 * for bit: the same rounding (round-half-away doubling high multiply, round-half-away division by a
 * power of two) and the same gemmlowp-style Q-format arithmetic for exp / logistic / tanh.
 * Written from the published algorithms; see README of edgec/cbackend for the correspondence. */
#ifndef EDGEC_FIXEDPOINT_H
#define EDGEC_FIXEDPOINT_H

#include <stdint.h>

#define EDGEC_INLINE static inline
/* For kernels specialized by a constant argument: GCC would otherwise keep one generic copy. */
#if defined(__GNUC__)
#define EDGEC_SPECIALIZE static inline __attribute__((always_inline))
#else
#define EDGEC_SPECIALIZE static inline
#endif

EDGEC_INLINE int32_t edgec_clamp(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/* (a * b * 2) >> 32 with rounding to nearest (ties away from zero), saturating the one overflow. */
EDGEC_INLINE int32_t edgec_srdhm(int32_t a, int32_t b) {
  int64_t ab;
  int32_t nudge;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  /* Division (not shift) truncates toward zero, which is what the reference does. */
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
EDGEC_INLINE int32_t edgec_rdpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift, the requantization step of every int8 kernel.
 * Multipliers come from QuantizeMultiplier and are never INT32_MIN, so the doubling high multiply
 * cannot saturate, and its round-half-away-from-zero division by 2^31 equals floor((ab + 2^30) /
 * 2^31) for either sign of ab: one 64-bit add and shift instead of a sign-dependent nudge. */
EDGEC_INLINE int32_t edgec_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  /* Branch-free max(shift, 0) and max(-shift, 0); a zero right shift leaves y unchanged below. */
  const int32_t left = shift & ~(shift >> 31), right = left - shift;
  const int32_t y = (int32_t)(((int64_t)(int32_t)((uint32_t)x << left) * (int64_t)multiplier +
                               ((int64_t)1 << 30)) >> 31);
  const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
  const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)y >> 31);
  return (y >> right) + ((y & mask) > threshold);
}

/* Saturate to int8 (one SSAT where the DSP extension has it). */
EDGEC_INLINE int32_t edgec_ssat8(int32_t x) {
#if !defined(EDGEC_PORTABLE) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
  int32_t r;
  __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));
  return r;
#else
  return edgec_clamp(x, -128, 127);
#endif
}

/* Requantize an int32 accumulator to int8 with the output offset and activation clamp. */
EDGEC_INLINE int8_t edgec_requant(int32_t acc, int32_t mult, int32_t shift, int32_t offset,
                                  int32_t lo, int32_t hi) {
  return (int8_t)edgec_clamp(edgec_mbqm(acc, mult, shift) + offset, lo, hi);
}

#if !defined(EDGEC_PORTABLE) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define EDGEC_DSP_REQUANT 1
#include <arm_acle.h>

/* edgec_mbqm for a right shift (shift < 0) and |x| < 2^30, which the generator proves per layer
 * from the weights (rq_mode != 0). Then 2x does not overflow and SMMULR's (2x * m + 2^31) >> 32
 * is floor((x * m + 2^30) / 2^31), the doubling high multiply; and for r >= 1,
 * (y + 2^(r-1) - (y < 0)) >> r is y / 2^r rounded half away from zero. */
EDGEC_INLINE int32_t edgec_mbqm_dsp(int32_t x, int32_t multiplier, int32_t shift) {
  int32_t y;
  __asm__("smmulr %0, %1, %2" : "=r"(y) : "r"(x * 2), "r"(multiplier));
  return (y + (1 << ~shift) + (y >> 31)) >> -shift;  /* ~shift == r - 1 */
}
#endif

/* Requantize with the path the generator chose for the layer (`mode` is a compile-time constant
 * where it matters): 0 the exact general path, 1 the DSP shortcut and the clamp, 2 the DSP shortcut
 * and an int8 saturation (clamp range [-128, 127]). Portable builds always take path 0. */
EDGEC_INLINE int8_t edgec_requant_mode(int32_t acc, int32_t mult, int32_t shift, int32_t offset,
                                       int32_t lo, int32_t hi, int mode) {
#if defined(EDGEC_DSP_REQUANT)
  if (mode == 2) return (int8_t)__ssat(edgec_mbqm_dsp(acc, mult, shift) + offset, 8);
  if (mode == 1) return (int8_t)edgec_clamp(edgec_mbqm_dsp(acc, mult, shift) + offset, lo, hi);
#else
  (void)mode;
#endif
  return edgec_requant(acc, mult, shift, offset, lo, hi);
}

/* Multiply by a power of two with saturation (positive exponent) or rounding (negative). */
EDGEC_INLINE int32_t edgec_sat_mul_pot(int32_t x, int exponent) {
  if (exponent < 0) return edgec_rdpot(x, -exponent);
  if (exponent == 0) return x;
  {
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
  }
}

/* Q0.31 1.0, saturated. */
#define EDGEC_Q0_ONE INT32_MAX

EDGEC_INLINE int32_t edgec_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31. */
EDGEC_INLINE int32_t edgec_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668;   /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883;
  const int32_t x = a + (1 << 28);            /* expand around -1/8 */
  const int32_t x2 = edgec_srdhm(x, x);
  const int32_t x3 = edgec_srdhm(x2, x);
  const int32_t x4 = edgec_srdhm(x2, x2);
  const int32_t x4_over_4 = edgec_rdpot(x4, 2);
  const int32_t poly = edgec_rdpot(edgec_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
  return constant_term + edgec_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given with `integer_bits` integer bits; result in Q0.31. */
EDGEC_INLINE int32_t edgec_exp_on_negative(int32_t a, int integer_bits) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                         39332535, 720401, 242};
  const int frac_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_quarter = (a & mask) - one_quarter;
  int32_t result = edgec_exp_quarter(edgec_sat_mul_pot(a_mod_quarter_minus_quarter, integer_bits));
  const int32_t remainder = a_mod_quarter_minus_quarter - a;
  int e;
  for (e = -2; e <= 4; ++e) {
    if (integer_bits > e) {
      const int shift_amount = frac_bits + e;
      if (shift_amount < 31 && (remainder & ((int32_t)1 << shift_amount)))
        result = edgec_srdhm(result, multipliers[e + 2]);
    }
  }
  if (integer_bits > 5) {
    const int32_t clamp = -((int32_t)1 << (36 - integer_bits));
    if (a < clamp) result = 0;
  }
  if (a == 0) result = EDGEC_Q0_ONE;
  return result;
}

/* Newton-Raphson reciprocal helper shared by 1/(1+x) and (1-x)/(1+x); returns x in Q2.29. */
EDGEC_INLINE int32_t edgec_nr_reciprocal_q2(int32_t a) {
  const int32_t half_denominator = edgec_rounding_half_sum(a, EDGEC_Q0_ONE);
  int32_t x = 1515870810 + edgec_srdhm(half_denominator, -1010580540);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t hdx = edgec_srdhm(half_denominator, x);
    const int32_t one_minus = (1 << 29) - hdx;
    x = x + edgec_sat_mul_pot(edgec_srdhm(x, one_minus), 2);
  }
  return x;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out. */
EDGEC_INLINE int32_t edgec_one_over_one_plus_x(int32_t a) {
  return edgec_sat_mul_pot(edgec_nr_reciprocal_q2(a), 1);
}

/* (1 - a) / (1 + a) for a in [0, 1), Q0.31 in and out. */
EDGEC_INLINE int32_t edgec_one_minus_x_over_one_plus_x(int32_t a) {
  return edgec_sat_mul_pot(edgec_nr_reciprocal_q2(a) - (1 << 29), 2);
}

/* logistic(a) with `integer_bits` integer bits in, Q0.31 out. */
EDGEC_INLINE int32_t edgec_logistic_q(int32_t a, int integer_bits) {
  int32_t pos;
  if (a == 0) return 1 << 30;
  pos = edgec_one_over_one_plus_x(edgec_exp_on_negative(a > 0 ? -a : a, integer_bits));
  return a > 0 ? pos : EDGEC_Q0_ONE - pos;
}

/* tanh(a) with `integer_bits` integer bits in, Q0.31 out. */
EDGEC_INLINE int32_t edgec_tanh_q(int32_t a, int integer_bits) {
  int32_t n, t;
  if (a == 0) return 0;
  n = a < 0 ? a : -a;
  /* exp(2n): the raw value is reinterpreted with one more integer bit. */
  t = edgec_one_minus_x_over_one_plus_x(edgec_exp_on_negative(n, integer_bits + 1));
  return a < 0 ? -t : t;
}

#endif /* EDGEC_FIXEDPOINT_H */
