/* Convolution, fully-connected, pooling and elementwise-binary int8 kernels (see edgec_kernels.h).
 * The inner products they call (edgec_dot.c) have Cortex-M DSP and MVE variants. */
#include "edgec_kernels.h"

#include <string.h>


#define requant edgec_requant

/* ---------------------------------------------------------------- convolutions */

/* The input window of output pixel q as one vector (im2col), padded with the input zero point:
 * with the folded bias a padded tap then adds zp * w - zp * w = 0, as the reference skips it. */
const int8_t *edgec_conv_patch(const edgec_conv_params *p, const int8_t *in, int32_t b, int32_t q,
                               int8_t *dst) {
  const int32_t oy = q / p->out_w, ox = q % p->out_w;
  const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
  const int8_t zp = (int8_t)(-p->in_offset);
  int8_t *d = dst;
  int32_t ky, kx;
  if (dst == 0)  /* 1x1 without padding: the window is the input pixel itself */
    return in + ((b * p->in_h + iy0) * p->in_w + ix0) * p->in_c;
  /* Window rows wholly inside the input (dilation 1) are one contiguous run of f_w * in_c bytes. */
  const int inside = p->dil_w == 1 && ix0 >= 0 && ix0 + p->f_w <= p->in_w;
  for (ky = 0; ky < p->f_h; ++ky) {
    const int32_t iy = iy0 + ky * p->dil_h;
    const int8_t *row = in + (b * p->in_h + iy) * p->in_w * p->in_c;
    if (iy < 0 || iy >= p->in_h) {
      memset(d, zp, (size_t)(p->f_w * p->in_c));
      d += p->f_w * p->in_c;
      continue;
    }
    if (inside) {
      memcpy(d, row + ix0 * p->in_c, (size_t)(p->f_w * p->in_c));
      d += p->f_w * p->in_c;
      continue;
    }
    for (kx = 0; kx < p->f_w; ++kx, d += p->in_c) {
      const int32_t ix = ix0 + kx * p->dil_w;
      if (ix < 0 || ix >= p->in_w)
        memset(d, zp, (size_t)p->in_c);
      else
        memcpy(d, row + ix * p->in_c, (size_t)p->in_c);
    }
  }
  return dst;
}

/* In-place convolutions write output row r over input row r. Row r is still an input of the next
 * pad_h output rows, so rows wait in a ring of pad_h + 2 rows (pixel pairs may straddle two rows)
 * and are committed once the rows that read them are complete. */
static int8_t *ring_row(const edgec_conv_params *p, int8_t *ring, int32_t oy) {
  return ring + (oy % (p->pad_h + 2)) * p->out_w * p->out_c;
}

static void ring_commit(const edgec_conv_params *p, int8_t *ring, int8_t *out, int32_t oy) {
  const int32_t row = p->out_w * p->out_c;
  memcpy(out + oy * row, ring_row(p, ring, oy), (size_t)row);
}

/* CONV_2D: output pixels two at a time, output channels two at a time, so that every loaded input
 * and weight word feeds two multiply-accumulates. `scratch` holds two windows (2 * f_h * f_w * in_c
 * bytes rounded up to a multiple of 4 each), or is NULL for 1x1 filters. With `ring` (pad_h + 2 output rows) the output overwrites
 * the input (`out == in`), see ring_row. */
void edgec_conv_s8(const edgec_conv_params *p, const int8_t *in, const int8_t *filt,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                   int8_t *scratch, int8_t *ring) {
  /* im2col windows are padded to whole words (ops.window_bytes), the filters with zeros to match. */
  const int32_t taps = p->f_h * p->f_w * p->in_c, k = scratch ? (taps + 3) & ~3 : taps;
  const int32_t pixels = p->out_h * p->out_w;
  int32_t b, q, done = 0;
  if (scratch && k != taps) {  /* the padding bytes meet zero weights; defined values all the same */
    memset(scratch + taps, 0, (size_t)(k - taps));
    memset(scratch + k + taps, 0, (size_t)(k - taps));
  }
  for (b = 0; b < p->batches; ++b) {  /* one image when in place (the generator guarantees it) */
    for (q = 0; q < pixels; q += 2) {
      const int pair = q + 1 < pixels;
      int8_t *o0, *o1;
      if (ring) {
        o0 = ring_row(p, ring, q / p->out_w) + (q % p->out_w) * p->out_c;
        o1 = pair ? ring_row(p, ring, (q + 1) / p->out_w) + ((q + 1) % p->out_w) * p->out_c : 0;
      } else {
        o0 = out + (b * pixels + q) * p->out_c;
        o1 = pair ? o0 + p->out_c : 0;
      }
      /* Windows beyond 1x1 straight from the input where the build has that path, else im2col. */
      if (!scratch || !edgec_conv_pixels(p, in, b, q, q + pair, filt, bias, mult, shift, o0, pair ? o1 : o0)) {
        const int8_t *x0 = edgec_conv_patch(p, in, b, q, scratch);
        const int8_t *x1 = pair ? edgec_conv_patch(p, in, b, q + 1, scratch ? scratch + k : 0) : 0;
        edgec_conv_channels(p, x0, x1, filt, k, bias, mult, shift, o0, o1);
      }
      /* Row `done` is final once the pad_h rows below it, which read it, are complete. */
      while (ring && done + p->pad_h < (q + 1 + pair) / p->out_w) ring_commit(p, ring, out, done++);
    }
  }
  while (ring && done < p->out_h) ring_commit(p, ring, out, done++);
}

/* CONV_2D over weights widened to int16 (ops.pack_conv_pairs16; for rq_mode 1 and 2 they and the
 * bias are doubled, so the sums are twice the reference's): output pixels four at a time
 * (edgec_conv_quad, the DSP kernel); a last group of fewer pixels repeats its last pixel, writing
 * the same bytes again. Builds without that kernel run one pixel at a time from its im2col window.
 * `scratch` and `ring` as for edgec_conv_s8 (scratch: one window of k bytes at least, NULL for a
 * 1x1 filter whose in_c is a multiple of 4). */
void edgec_conv_s8_w16(const edgec_conv_params *p, const int8_t *in, const int16_t *filt,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift, const int32_t *rq,
                       int8_t *out, int8_t *scratch, int8_t *ring) {
  const int32_t taps = p->f_h * p->f_w * p->in_c, k = (taps + 3) & ~3;
  const int32_t pixels = p->out_h * p->out_w;
  /* Four pixels may span four output rows when rows hold fewer than two: the ring keeps two
   * beyond pad_h, so in place such rows go one pixel at a time. */
  const int32_t step = ring && p->out_w < 2 ? 1 : 4;
  int32_t b, q, j, c, t, done = 0;
  if (scratch && k != taps) memset(scratch + taps, 0, (size_t)(k - taps));
  for (b = 0; b < p->batches; ++b) {
    for (q = 0; q < pixels; q += step) {
      const int32_t n = pixels - q < step ? pixels - q : step;
      int32_t qs[4];
      int8_t *o[4];
      for (j = 0; j < 4; ++j) {
        qs[j] = q + (j < n ? j : n - 1);
        o[j] = ring ? ring_row(p, ring, qs[j] / p->out_w) + (qs[j] % p->out_w) * p->out_c
                    : out + (b * pixels + qs[j]) * p->out_c;
      }
      if (!edgec_conv_quad(p, in, b, qs, filt, bias, mult, shift, rq, o, scratch)) {
        for (j = 0; j < n; ++j) {
          /* k bytes: the im2col scratch is zero-padded to k, a 1x1 window has k == taps */
          const int8_t *x = edgec_conv_patch(p, in, b, qs[j], scratch);
          const int16_t *w = filt;
          for (c = 0; c + 2 <= p->out_c; c += 2) {  /* pairs: per word {0, 2} of both, {1, 3} of both */
            int32_t a0 = bias[c], a1 = bias[c + 1];
            for (t = 0; t < k; t += 4, w += 8) {
              a0 += x[t] * w[0] + x[t + 2] * w[1] + x[t + 1] * w[4] + x[t + 3] * w[5];
              a1 += x[t] * w[2] + x[t + 2] * w[3] + x[t + 1] * w[6] + x[t + 3] * w[7];
            }
            if (p->rq_mode) {  /* weights and bias doubled (exact: the sums are even) */
              a0 >>= 1;
              a1 >>= 1;
            }
            o[j][c] = requant(a0, mult[c], shift[c], p->out_offset, p->act_min, p->act_max);
            o[j][c + 1] = requant(a1, mult[c + 1], shift[c + 1], p->out_offset, p->act_min, p->act_max);
          }
          if (c < p->out_c) {  /* an odd last channel: per word {0, 2}, then {1, 3} */
            int32_t acc = bias[c];
            for (t = 0; t < k; t += 4, w += 4) acc += x[t] * w[0] + x[t + 2] * w[1] + x[t + 1] * w[2] + x[t + 3] * w[3];
            if (p->rq_mode) acc >>= 1;
            o[j][c] = requant(acc, mult[c], shift[c], p->out_offset, p->act_min, p->act_max);
          }
        }
      }
      while (ring && done + p->pad_h < (q + n) / p->out_w) ring_commit(p, ring, out, done++);
    }
  }
  while (ring && done < p->out_h) ring_commit(p, ring, out, done++);
}

/* Generic DEPTHWISE_CONV_2D: any depth multiplier, dilation and channel count. */
static void depthwise_generic(const edgec_conv_params *p, const int8_t *in, const int8_t *filt,
                              const int32_t *bias, const int32_t *mult, const int32_t *shift,
                              int8_t *out) {
  int32_t b, oy, ox, ic, m, ky, kx;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox)
        for (ic = 0; ic < p->in_c; ++ic)
          for (m = 0; m < p->depth_mult; ++m) {
            const int32_t oc = ic * p->depth_mult + m;
            int32_t acc = 0;
            for (ky = 0; ky < p->f_h; ++ky) {
              const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
              if (iy < 0 || iy >= p->in_h) continue;
              for (kx = 0; kx < p->f_w; ++kx) {
                const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
                if (ix < 0 || ix >= p->in_w) continue;
                acc += ((int32_t)in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic] + p->in_offset) *
                       (int32_t)filt[(ky * p->f_w + kx) * p->out_c + oc];
              }
            }
            if (bias) acc += bias[oc];
            out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                requant(acc, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max);
          }
}

static int32_t first_valid(int32_t origin, int32_t dil) {  /* smallest k with origin + k*dil >= 0 */
  return origin >= 0 ? 0 : (-origin + dil - 1) / dil;
}

static int32_t end_valid(int32_t origin, int32_t dil, int32_t size, int32_t taps) {
  int32_t k = size - origin <= 0 ? 0 : (size - origin - 1) / dil + 1;  /* origin + (k-1)*dil < size */
  return k < taps ? k : taps;
}

/* DEPTHWISE_CONV_2D. With depth multiplier 1 and a channel count divisible by 4, each output pixel
 * runs its channels four at a time over its valid taps, a row at a time (edgec_dw_row). */
void edgec_depthwise_s8(const edgec_conv_params *p, const int8_t *in, const int8_t *filt,
                        const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                        int8_t *ring) {
  int32_t b, oy;
  if (p->depth_mult != 1 || (p->in_c & 3)) {
    depthwise_generic(p, in, filt, bias, mult, shift, out);
    return;
  }
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_h;
      const int32_t ky0 = first_valid(iy0, p->dil_h), ky1 = end_valid(iy0, p->dil_h, p->in_h, p->f_h);
      const int8_t *x = in + (b * p->in_h + iy0 + ky0 * p->dil_h) * p->in_w * p->in_c;
      int8_t *o = ring ? ring_row(p, ring, oy) : out + (b * p->out_h + oy) * p->out_w * p->out_c;
      edgec_dw_row(p, x, filt + ky0 * p->f_w * p->out_c, ky1 > ky0 ? ky1 - ky0 : 0, bias, mult, shift, o);
      if (ring && oy >= p->pad_h) ring_commit(p, ring, out, oy - p->pad_h);
    }
  if (ring)
    for (oy = p->out_h - p->pad_h; oy < p->out_h; ++oy)
      if (oy >= 0) ring_commit(p, ring, out, oy);
}

/* DEPTHWISE_CONV_2D 3x3, stride 1, dilation 1, depth multiplier 1, channels % 4 == 0, over the
 * generator's per-channel blocks of int16 weight pairs, bias and requantization constants
 * (ops.pack_dw3x3; weights and bias doubled for rq_mode 1 and 2): a row at a time through the DSP
 * kernel (edgec_dw3x3_row, edgec_depthwise3x3.c), or where the build has none through this loop,
 * which skips the padded taps as the reference does. `scratch`: the DSP kernel's expanded rows
 * (ops.dw3x3_scratch_bytes); `ring` as for edgec_depthwise_s8. */
void edgec_depthwise_s8_w16(const edgec_conv_params *p, const int8_t *in, const int32_t *blk,
                            const int32_t *mult, const int32_t *shift, int8_t *out, int8_t *scratch,
                            int8_t *ring) {
  const int32_t image = p->in_h * p->in_w * p->in_c;
  int32_t b, oy, ox, c, ky, kx;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy) {
      int8_t *o = ring ? ring_row(p, ring, oy) : out + (b * p->out_h + oy) * p->out_w * p->out_c;
      if (!edgec_dw3x3_row(p, in + b * image, blk, oy, o, scratch)) {
        for (ox = 0; ox < p->out_w; ++ox)
          for (c = 0; c < p->out_c; ++c) {
            const int32_t *w = blk + 10 * c;
            int32_t acc = w[6];
            for (ky = 0; ky < 3; ++ky) {
              const int32_t iy = oy - p->pad_h + ky;
              if (iy < 0 || iy >= p->in_h) continue;
              for (kx = 0; kx < 3; ++kx) {
                const int32_t ix = ox - p->pad_w + kx;
                /* tap 0: WA's low half, tap 1: WA's high half, tap 2: WB's high half */
                const uint32_t word = (uint32_t)w[2 * ky + (kx == 2)];
                const int32_t tap = (int16_t)(kx == 0 ? word & 0xFFFFu : word >> 16);
                if (ix < 0 || ix >= p->in_w) continue;
                acc += ((int32_t)in[b * image + (iy * p->in_w + ix) * p->in_c + c] + p->in_offset) * tap;
              }
            }
            if (p->rq_mode) acc >>= 1;  /* weights and bias doubled (exact: the sum is even) */
            o[ox * p->out_c + c] = requant(acc, mult[c], shift[c], p->out_offset, p->act_min, p->act_max);
          }
      }
      if (ring && oy >= p->pad_h) ring_commit(p, ring, out, oy - p->pad_h);
    }
  if (ring)
    for (oy = p->out_h - p->pad_h; oy < p->out_h; ++oy)
      if (oy >= 0) ring_commit(p, ring, out, oy);
}

/* ---------------------------------------------------------------- pooling */

static void pool_window(const edgec_pool_params *p, int32_t oy, int32_t ox, int32_t *y0, int32_t *y1,
                        int32_t *x0, int32_t *x1, int32_t *iy, int32_t *ix) {
  *iy = oy * p->stride_h - p->pad_h;
  *ix = ox * p->stride_w - p->pad_w;
  *y0 = *iy < 0 ? -*iy : 0;
  *y1 = p->in_h - *iy < p->f_h ? p->in_h - *iy : p->f_h;
  *x0 = *ix < 0 ? -*ix : 0;
  *x1 = p->in_w - *ix < p->f_w ? p->in_w - *ix : p->f_w;
}

void edgec_avgpool_s8(const edgec_pool_params *p, const int8_t *in, int8_t *out) {
  int32_t b, oy, ox, c, fy, fx, y0, y1, x0, x1, iy, ix;
  if (edgec_avgpool_fast(p, in, out)) return;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox) {
        pool_window(p, oy, ox, &y0, &y1, &x0, &x1, &iy, &ix);
        for (c = 0; c < p->channels; ++c) {
          int32_t acc = 0, count = 0;
          for (fy = y0; fy < y1; ++fy)
            for (fx = x0; fx < x1; ++fx) {
              acc += in[((b * p->in_h + iy + fy) * p->in_w + ix + fx) * p->channels + c];
              ++count;
            }
          if (count == 0) count = 1;  /* the reference rejects empty windows; never generated */
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          *out++ = (int8_t)edgec_clamp(acc, p->act_min, p->act_max);
        }
      }
}

void edgec_maxpool_s8(const edgec_pool_params *p, const int8_t *in, int8_t *out) {
  int32_t b, oy, ox, c, fy, fx, y0, y1, x0, x1, iy, ix;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox) {
        pool_window(p, oy, ox, &y0, &y1, &x0, &x1, &iy, &ix);
        for (c = 0; c < p->channels; ++c) {
          int32_t mx = -128;
          for (fy = y0; fy < y1; ++fy)
            for (fx = x0; fx < x1; ++fx) {
              const int32_t v = in[((b * p->in_h + iy + fy) * p->in_w + ix + fx) * p->channels + c];
              if (v > mx) mx = v;
            }
          *out++ = (int8_t)edgec_clamp(mx, p->act_min, p->act_max);
        }
      }
}

/* ---------------------------------------------------------------- elementwise binary */

static int8_t add_one(const edgec_binary_params *p, int32_t a, int32_t b) {
  const int32_t s1 = edgec_mbqm((a + p->in1_offset) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
  const int32_t s2 = edgec_mbqm((b + p->in2_offset) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
  return requant(s1 + s2, p->out_mult, p->out_shift, p->out_offset, p->act_min, p->act_max);
}

static int8_t mul_one(const edgec_binary_params *p, int32_t a, int32_t b) {
  return requant((a + p->in1_offset) * (b + p->in2_offset), p->out_mult, p->out_shift,
                 p->out_offset, p->act_min, p->act_max);
}

static void broadcast(const edgec_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out,
                      int8_t (*f)(const edgec_binary_params *, int32_t, int32_t)) {
  int32_t i0, i1, i2, i3;
  const int32_t *s = p->out_shape, *s1 = p->in1_strides, *s2 = p->in2_strides;
  for (i0 = 0; i0 < s[0]; ++i0)
    for (i1 = 0; i1 < s[1]; ++i1)
      for (i2 = 0; i2 < s[2]; ++i2)
        for (i3 = 0; i3 < s[3]; ++i3)
          *out++ = f(p, a[i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3]],
                     b[i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3]]);
}

/* ADD's rescaling x * m * 2^-r (r >= 0, |x| < 2^30): the reference's doubling high multiply, then
 * its rounding division by 2^r, with rnd = 2^(r-1) and neg = -1 for r > 0 (both 0 for r = 0):
 * (y + 2^(r-1) - (y < 0)) >> r rounds half away from zero (see edgec_mbqm_dsp). */
EDGEC_INLINE int32_t add_rescale(int32_t x, int32_t m, int32_t r, int32_t rnd, int32_t neg) {
  int32_t y;
#if defined(EDGEC_DSP_REQUANT)
  __asm__("smmulr %0, %1, %2" : "=r"(y) : "r"(x * 2), "r"(m));
#else
  y = (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31);  /* = the doubling high multiply */
#endif
  return (y + rnd + ((y >> 31) & neg)) >> r;
}

/* ADD through two tables: each input's rescaled value (times 2, the doubling of the output's high
 * multiply) depends on its int8 value only, so the 256 of each input are computed once and every
 * output is two loads, an add and the output's rescaling. Valid (returns 1) when every shift is a
 * right shift or none and left_shift <= 21, which TFLite's int8 ADD always has (left_shift 20,
 * input multipliers <= 1/2, the output's < 1 unless the output scale is 2^19 times finer than the
 * inputs'): then |(x + offset) << left_shift| < 2^29, each rescaled input is no larger and twice
 * their sum is below 2^31, so add_rescale is exact (edgec_mbqm with a shift <= 0). Tensors of
 * fewer than 256 elements take the per-element path (the tables would cost more than they save). */
static int add_fast(const edgec_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out) {
  const int32_t ls = p->left_shift, oo = p->out_offset, mo = p->out_mult, ro = -p->out_shift;
  const int32_t rndo = ro ? 1 << (ro - 1) : 0, nego = ro ? -1 : 0, lo = p->act_min, hi = p->act_max;
  const int32_t r1 = -p->in1_shift, r2 = -p->in2_shift;
  const int32_t *s = p->out_shape, *s1 = p->in1_strides, *s2 = p->in2_strides;
  int32_t lut[512], i0, i1, i2, i3, n = s[0] * s[1] * s[2] * s[3];
  const int32_t *const t1 = lut + 128, *const t2 = lut + 384;  /* indexed by the int8 value */
  if (ls < 0 || ls > 21 || r1 < 0 || r2 < 0 || ro < 0 || r1 > 31 || r2 > 31 || ro > 31 || n < 256)
    return 0;
  for (i0 = -128; i0 < 128; ++i0) {
    lut[i0 + 128] = 2 * add_rescale((i0 + p->in1_offset) << ls, p->in1_mult, r1, r1 ? 1 << (r1 - 1) : 0,
                                    r1 ? -1 : 0);
    lut[i0 + 384] = 2 * add_rescale((i0 + p->in2_offset) << ls, p->in2_mult, r2, r2 ? 1 << (r2 - 1) : 0,
                                    r2 ? -1 : 0);
  }
#if defined(EDGEC_DSP_REQUANT)
#define ADD_HIGH(sum2, y) __asm__("smmulr %0, %1, %2" : "=r"(y) : "r"(sum2), "r"(mo))
#else
#define ADD_HIGH(sum2, y) y = (int32_t)(((int64_t)(sum2) * mo + ((int64_t)1 << 31)) >> 32)
#endif
#define ADD_ELEM(va, vb)                                                               \
  {                                                                                    \
    int32_t y;                                                                         \
    ADD_HIGH(t1[va] + t2[vb], y);                                                      \
    *out++ = (int8_t)edgec_clamp(((y + rndo + ((y >> 31) & nego)) >> ro) + oo, lo, hi); \
  }
  if (s1[3] == 1 && s2[3] == 1 && s1[2] == s[3] && s2[2] == s[3] && s1[1] == s[2] * s[3] &&
      s2[1] == s[2] * s[3] && s1[0] == s[1] * s[2] * s[3] && s2[0] == s[1] * s[2] * s[3]) {
    const int8_t *const end = a + n, *const end4 = a + (n & ~3);  /* no broadcasting: one flat loop */
    if (ro > 0 && ro <= 22 && hi == 127) {
      /* Four elements per iteration from one word of each input. The rounding needs no mask (nego
       * is -1) and carries the output offset (oo << ro, which cannot overflow: |y| < 2^30 and
       * 128 << 22 = 2^29); the clamp is a saturation, then a compare against lo. */
      const int32_t k = rndo + oo * (1 << ro);
      while (a != end4) {
        int32_t va, vb;
        memcpy(&va, a, 4);
        memcpy(&vb, b, 4);
#define ADD_LANE(j)                                                        \
  {                                                                        \
    int32_t y;                                                             \
    ADD_HIGH(t1[(int8_t)(va >> (8 * (j)))] + t2[(int8_t)(vb >> (8 * (j)))], y); \
    y = edgec_ssat8((y + (y >> 31) + k) >> ro);                            \
    out[j] = (int8_t)(y < lo ? lo : y);                                    \
  }
        ADD_LANE(0)
        ADD_LANE(1)
        ADD_LANE(2)
        ADD_LANE(3)
#undef ADD_LANE
        a += 4;
        b += 4;
        out += 4;
      }
    }
    while (a != end) {
      ADD_ELEM(*a, *b)
      ++a;
      ++b;
    }
    return 1;
  }
  for (i0 = 0; i0 < s[0]; ++i0)
    for (i1 = 0; i1 < s[1]; ++i1)
      for (i2 = 0; i2 < s[2]; ++i2) {
        const int8_t *pa = a + i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
        const int8_t *pb = b + i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
        for (i3 = 0; i3 < s[3]; ++i3) ADD_ELEM(pa[i3 * s1[3]], pb[i3 * s2[3]])
      }
  return 1;
}
#undef ADD_ELEM
#undef ADD_HIGH

void edgec_add_s8(const edgec_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out) {
  if (!add_fast(p, a, b, out)) broadcast(p, a, b, out, add_one);
}

void edgec_mul_s8(const edgec_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out) {
  broadcast(p, a, b, out, mul_one);
}
