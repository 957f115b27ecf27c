/* int4-weight kernels (see edgec_int4.h). */
#include "edgec_int4.h"

/* Sign-extend a 4-bit two's complement value held in the low bits of v (v in 0..15). */
#define S4(v) ((int32_t)((v) ^ 8u) - 8)

/* sum((x[j] + x_offset) * w[start + j]) for j < n, w packed two per byte (low nibble first). */
static int32_t dot_s4(const int8_t *x, const uint8_t *w, int32_t start, int32_t n, int32_t x_offset) {
  const uint8_t *b = w + (start >> 1);
  int32_t acc = 0, j = 0;
  if (n <= 0) return 0;
  if (start & 1) {  /* the row starts in a high nibble */
    acc += ((int32_t)x[0] + x_offset) * S4((uint32_t)*b++ >> 4);
    j = 1;
  }
  for (; j + 4 <= n; j += 4, b += 2) {  /* two bytes, four weights, decoded in registers */
    const uint32_t u = (uint32_t)b[0] | ((uint32_t)b[1] << 8);
    acc += ((int32_t)x[j] + x_offset) * S4(u & 15u) + ((int32_t)x[j + 1] + x_offset) * S4((u >> 4) & 15u)
         + ((int32_t)x[j + 2] + x_offset) * S4((u >> 8) & 15u) + ((int32_t)x[j + 3] + x_offset) * S4(u >> 12);
  }
  for (; j + 2 <= n; j += 2, ++b)
    acc += ((int32_t)x[j] + x_offset) * S4(*b & 15u) + ((int32_t)x[j + 1] + x_offset) * S4((uint32_t)*b >> 4);
  if (j < n) acc += ((int32_t)x[j] + x_offset) * S4(*b & 15u);
  return acc;
}

/* The int4 weight at element index i. */
static int32_t w_s4(const uint8_t *w, int32_t i) {
  const uint32_t b = w[i >> 1];
  return (i & 1) ? S4(b >> 4) : S4(b & 15u);
}

void edgec_conv_s4(const edgec_conv_params *p, const int8_t *in, const uint8_t *filt,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
  const int32_t k = p->f_h * p->f_w * p->in_c;
  int32_t b, oy, ox, oc, ky, kx;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
        int8_t *o = out + ((b * p->out_h + oy) * p->out_w + ox) * p->out_c;
        for (oc = 0; oc < p->out_c; ++oc) {
          int32_t acc = bias ? bias[oc] : 0;
          for (ky = 0; ky < p->f_h; ++ky) {
            const int32_t iy = iy0 + ky * p->dil_h;
            if (iy < 0 || iy >= p->in_h) continue;
            if (p->dil_w == 1) {  /* the valid taps of a row are one contiguous run in x and w */
              const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
              const int32_t kx1 = p->in_w - ix0 < p->f_w ? p->in_w - ix0 : p->f_w;
              if (kx1 > kx0)
                acc += dot_s4(in + ((b * p->in_h + iy) * p->in_w + ix0 + kx0) * p->in_c, filt,
                              oc * k + (ky * p->f_w + kx0) * p->in_c, (kx1 - kx0) * p->in_c, p->in_offset);
              continue;
            }
            for (kx = 0; kx < p->f_w; ++kx) {
              const int32_t ix = ix0 + kx * p->dil_w;
              if (ix < 0 || ix >= p->in_w) continue;
              acc += dot_s4(in + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c, filt,
                            oc * k + (ky * p->f_w + kx) * p->in_c, p->in_c, p->in_offset);
            }
          }
          o[oc] = edgec_requant_mode(acc, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max,
                                     p->rq_mode);
        }
      }
}

void edgec_depthwise_s4(const edgec_conv_params *p, const int8_t *in, const uint8_t *filt,
                        const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
  int32_t b, oy, ox, oc, ky, kx;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox) {
        int8_t *o = out + ((b * p->out_h + oy) * p->out_w + ox) * p->out_c;
        for (oc = 0; oc < p->out_c; ++oc) {
          const int32_t ic = oc / p->depth_mult;
          int32_t acc = bias ? bias[oc] : 0;
          for (ky = 0; ky < p->f_h; ++ky) {
            const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
            if (iy < 0 || iy >= p->in_h) continue;
            for (kx = 0; kx < p->f_w; ++kx) {
              const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
              if (ix < 0 || ix >= p->in_w) continue;
              acc += ((int32_t)in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic] + p->in_offset) *
                     w_s4(filt, (ky * p->f_w + kx) * p->out_c + oc);
            }
          }
          o[oc] = edgec_requant_mode(acc, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max,
                                     p->rq_mode);
        }
      }
}

void edgec_fc_s4(const edgec_fc_params *p, const int8_t *in, const uint8_t *filt,
                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
  int32_t b, o;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *x = in + b * p->in_depth;
    for (o = 0; o < p->out_depth; ++o) {
      const int32_t q = p->per_channel ? o : 0;
      int32_t acc = dot_s4(x, filt, o * p->in_depth, p->in_depth, p->in_offset);
      if (bias) acc += bias[o];
      *out++ = edgec_requant_mode(acc, mult[q], shift[q], p->out_offset, p->act_min, p->act_max,
                                  p->rq_mode);
    }
  }
}
