/* Non-linear and data-movement int8 kernels of edgec's generated C (see edgec_kernels.h). */
#include "edgec_kernels.h"

#include <string.h>

static int clz32(uint32_t x) {
#if defined(__GNUC__)
  return x ? __builtin_clz(x) : 32;
#else
  int n = 0;
  if (!x) return 32;
  while (!(x & 0x80000000u)) { x <<= 1; ++n; }
  return n;
#endif
}

/* ---------------------------------------------------------------- softmax */

static int32_t softmax_exp(int32_t diff, int32_t in_mult, int32_t in_left_shift) {
  /* The difference is rescaled to Q5.26 (5 integer bits), then exp'd to Q0.31. */
  const int32_t rescaled = edgec_srdhm((int32_t)((uint32_t)diff << in_left_shift), in_mult);
  return edgec_exp_on_negative(rescaled, 5);
}

void edgec_softmax_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t depth,
                      int32_t in_mult, int32_t in_left_shift, int32_t diff_min) {
  int32_t r, c;
  for (r = 0; r < rows; ++r) {
    const int8_t *x = in + r * depth;
    int8_t *y = out + r * depth;
    int32_t mx = -128, sum = 0, headroom, bits_over_unit, scale;
    for (c = 0; c < depth; ++c) if (x[c] > mx) mx = x[c];
    for (c = 0; c < depth; ++c) {
      const int32_t diff = (int32_t)x[c] - mx;
      if (diff >= diff_min) sum += edgec_rdpot(softmax_exp(diff, in_mult, in_left_shift), 12);  /* Q12.19 */
    }
    headroom = clz32((uint32_t)sum);
    bits_over_unit = 12 - headroom;
    scale = edgec_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
    for (c = 0; c < depth; ++c) {
      const int32_t diff = (int32_t)x[c] - mx;
      if (diff >= diff_min) {
        const int32_t e = softmax_exp(diff, in_mult, in_left_shift);
        const int32_t v = edgec_rdpot(edgec_srdhm(scale, e), bits_over_unit + 31 - 8) - 128;
        y[c] = (int8_t)edgec_clamp(v, -128, 127);
      } else {
        y[c] = -128;
      }
    }
  }
}

/* ---------------------------------------------------------------- logistic, tanh */

void edgec_logistic_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp,
                       int32_t radius, int32_t in_mult, int32_t in_shift) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    const int32_t v = (int32_t)in[i] - in_zp;
    if (v <= -radius) {
      out[i] = -128;
    } else if (v >= radius) {
      out[i] = 127;
    } else {
      const int32_t q0 = edgec_logistic_q(edgec_mbqm(v, in_mult, in_shift), 4);
      out[i] = (int8_t)edgec_clamp(edgec_rdpot(q0, 23) - 128, -128, 127);
    }
  }
}

void edgec_tanh_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp,
                   int32_t radius, int32_t in_mult, int32_t in_shift) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    const int32_t v = (int32_t)in[i] - in_zp;
    if (v <= -radius) {
      out[i] = -128;
    } else if (v >= radius) {
      out[i] = 127;
    } else {
      const int32_t q0 = edgec_tanh_q(edgec_mbqm(v, in_mult, in_shift), 4);
      out[i] = (int8_t)edgec_clamp(edgec_rdpot(q0, 24), -128, 127);
    }
  }
}

/* ---------------------------------------------------------------- hard swish (int16 fixed point) */

static int16_t srdhm16(int16_t a, int16_t b) {
  int32_t ab;
  if (a == b && a == INT16_MIN) return INT16_MAX;
  ab = (int32_t)a * (int32_t)b;
  return (int16_t)((ab + (ab >= 0 ? (1 << 14) : (1 - (1 << 14)))) / (1 << 15));
}

static int16_t sdhm16(int16_t a, int16_t b) {  /* truncating: cancels the rounding bias above */
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t sat_lshift16(int16_t v, int32_t amount) {
  return (int16_t)edgec_clamp((int32_t)v * (1 << amount), INT16_MIN, INT16_MAX);
}

void edgec_hard_swish_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp, int32_t out_zp,
                         int16_t out_mult16, int32_t out_exp, int16_t relu_mult16, int32_t relu_exp) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    const int16_t hires = (int16_t)(((int32_t)in[i] - in_zp) * (1 << 7));
    const int16_t preshift_out = srdhm16(hires, out_mult16);
    int16_t relu = hires;
    int32_t v;
    if (relu_exp > 0) relu = sat_lshift16(relu, relu_exp - 1);
    relu = srdhm16(relu, relu_mult16);
    if (relu_exp > 0) relu = sat_lshift16(relu, 1);
    if (relu_exp < 0) relu = (int16_t)edgec_rdpot(relu, -relu_exp);
    relu = (int16_t)(((int32_t)relu + (1 << 15)) >> 1);  /* [-1, 1] -> [0, 1] */
    v = edgec_rdpot(sdhm16(relu, preshift_out), -out_exp) + out_zp;
    out[i] = (int8_t)edgec_clamp(v, -128, 127);
  }
}

/* ---------------------------------------------------------------- requantize, clamp, copies */

void edgec_requantize_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp, int32_t out_zp,
                         int32_t mult, int32_t shift, int32_t act_min, int32_t act_max) {
  int32_t i;
  for (i = 0; i < n; ++i)
    out[i] = (int8_t)edgec_clamp(edgec_mbqm((int32_t)in[i] - in_zp, mult, shift) + out_zp,
                                 act_min, act_max);
}

/* ---------------------------------------------------------------- float boundaries */

/* TFLite's AffineQuantize: round(x / scale) + zero_point, clamped to int8, with the quotient in
 * float (IEEE division, never a multiply by 1/scale) and std::round's half-away-from-zero rule.
 * The reference casts the rounded quotient to int32 unchecked, which C++ leaves undefined for
 * |x / scale| >= 2^31, infinities and NaN (x86 yields INT32_MIN, Arm saturates); here those
 * saturate (+ -> 127, - -> -128) and NaN maps to the zero point. No libm: quotients beyond
 * +-256 clamp whatever the zero point, and below that the rounding is done exactly by hand. */
void edgec_quantize_f32_s8(const float *in, int8_t *out, int32_t n, float scale, int32_t zp) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    const float v = in[i] / scale;
    int32_t q;
    if (v != v) {
      q = zp;
    } else if (v >= 256.0f) {
      q = 127;
    } else if (v <= -256.0f) {
      q = -128;
    } else {
      const int32_t t = (int32_t)v;       /* toward zero; |v| < 256 */
      const float frac = v - (float)t;    /* exact: below 1 and a multiple of v's ulp */
      q = t + (frac >= 0.5f) - (frac <= -0.5f) + zp;
    }
    out[i] = (int8_t)edgec_clamp(q, -128, 127);
  }
}

/* TFLite's Dequantize: scale * (q - zero_point). The reference multiplies in double and rounds
 * to float once; the exact product of a float scale and a 9-bit integer fits a double, so one
 * float multiply (also rounded once, to nearest even) gives the same bits without soft double. */
void edgec_dequantize_s8_f32(const int8_t *in, float *out, int32_t n, float scale, int32_t zp) {
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = scale * (float)((int32_t)in[i] - zp);
}

void edgec_clamp_s8(const int8_t *in, int8_t *out, int32_t n, int32_t lo, int32_t hi) {
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = (int8_t)edgec_clamp(in[i], lo, hi);
}

void edgec_copy_s8(const int8_t *in, int8_t *out, int32_t n) {
  if (in != out) memmove(out, in, (size_t)n);
}

void edgec_concat_s8(const int8_t *const *ins, const int32_t *copy_sizes, int32_t n_inputs,
                     int32_t outer, int8_t *out) {
  int32_t o, i;
  for (o = 0; o < outer; ++o)
    for (i = 0; i < n_inputs; ++i) {
      memcpy(out, ins[i] + o * copy_sizes[i], (size_t)copy_sizes[i]);
      out += copy_sizes[i];
    }
}

void edgec_pad_s8(const int8_t *in, int8_t *out, const int32_t s[4], const int32_t before[4],
                  const int32_t after[4], int8_t value) {
  int32_t o[4], i0, i1, i2, i3;
  for (i0 = 0; i0 < 4; ++i0) o[i0] = s[i0] + before[i0] + after[i0];
  for (i0 = 0; i0 < o[0]; ++i0)
    for (i1 = 0; i1 < o[1]; ++i1)
      for (i2 = 0; i2 < o[2]; ++i2)
        for (i3 = 0; i3 < o[3]; ++i3) {
          const int32_t j0 = i0 - before[0], j1 = i1 - before[1];
          const int32_t j2 = i2 - before[2], j3 = i3 - before[3];
          const int inside = j0 >= 0 && j0 < s[0] && j1 >= 0 && j1 < s[1] && j2 >= 0 && j2 < s[2] &&
                             j3 >= 0 && j3 < s[3];
          *out++ = inside ? in[((j0 * s[1] + j1) * s[2] + j2) * s[3] + j3] : value;
        }
}

/* ---------------------------------------------------------------- mean */

void edgec_mean_hw_s8(const int8_t *in, int8_t *out, int32_t batches, int32_t h, int32_t w,
                      int32_t c, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift) {
  const int32_t count = h * w;
  int32_t b, d, i;
  for (b = 0; b < batches; ++b)
    for (d = 0; d < c; ++d) {
      int32_t acc = 0;
      for (i = 0; i < count; ++i) acc += (int32_t)in[(b * count + i) * c + d] - in_zp;
      acc = edgec_mbqm(acc, mult, shift);
      acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
      out[b * c + d] = (int8_t)edgec_clamp(acc + out_zp, -128, 127);
    }
}

void edgec_mean_s8(const int8_t *in, int8_t *out, const int32_t s[4], const int32_t reduce[4],
                   int32_t same_quant, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift) {
  int32_t o[4], i0, i1, i2, i3, count = 1, k;
  for (k = 0; k < 4; ++k) {
    o[k] = reduce[k] ? 1 : s[k];
    if (reduce[k]) count *= s[k];
  }
  for (i0 = 0; i0 < o[0]; ++i0)
    for (i1 = 0; i1 < o[1]; ++i1)
      for (i2 = 0; i2 < o[2]; ++i2)
        for (i3 = 0; i3 < o[3]; ++i3) {
          int32_t acc = 0, j0, j1, j2, j3;
          for (j0 = reduce[0] ? 0 : i0; j0 < (reduce[0] ? s[0] : i0 + 1); ++j0)
            for (j1 = reduce[1] ? 0 : i1; j1 < (reduce[1] ? s[1] : i1 + 1); ++j1)
              for (j2 = reduce[2] ? 0 : i2; j2 < (reduce[2] ? s[2] : i2 + 1); ++j2)
                for (j3 = reduce[3] ? 0 : i3; j3 < (reduce[3] ? s[3] : i3 + 1); ++j3)
                  acc += in[((j0 * s[1] + j1) * s[2] + j2) * s[3] + j3];
          if (same_quant) /* unchanged quantization: a truncating integer mean */
            *out++ = (int8_t)(acc / count);
          else /* the 1/count factor is folded into mult/shift on the host */
            *out++ = (int8_t)edgec_clamp(edgec_mbqm(acc - in_zp * count, mult, shift) + out_zp,
                                         -128, 127);
        }
}
