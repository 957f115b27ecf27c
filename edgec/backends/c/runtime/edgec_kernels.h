/* int8 kernels of edgec's generated C. Each kernel reproduces TFLite Micro's reference int8 kernel
 * bit for bit; the Cortex-M DSP (ACLE SIMD) and MVE variants only reorder exact int32 sums. */
#ifndef EDGEC_KERNELS_H
#define EDGEC_KERNELS_H

#include <stdint.h>
#include "edgec_fixedpoint.h"

/* CONV_2D and DEPTHWISE_CONV_2D (NHWC input, OHWI / 1HWO filters). */
typedef struct {
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w;
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_mult;
  int32_t in_offset, out_offset, act_min, act_max;
  int32_t rq_mode;  /* requantization path, see edgec_requant_mode */
} edgec_conv_params;

/* FULLY_CONNECTED: `per_channel` selects one multiplier per output or one for all. */
typedef struct {
  int32_t batches, in_depth, out_depth, per_channel;
  int32_t in_offset, out_offset, act_min, act_max;
  int32_t rq_mode;  /* requantization path, see edgec_requant_mode */
} edgec_fc_params;

/* AVERAGE_POOL_2D and MAX_POOL_2D. */
typedef struct {
  int32_t batches, in_h, in_w, channels, out_h, out_w, f_h, f_w;
  int32_t stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} edgec_pool_params;

/* ADD and MUL with 4-D broadcasting: strides are 0 along broadcast dimensions. */
typedef struct {
  int32_t out_shape[4], in1_strides[4], in2_strides[4];
  int32_t in1_offset, in2_offset, out_offset, left_shift;
  int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
  int32_t act_min, act_max;
} edgec_binary_params;

/* Inner product sum((x[i] + x_offset) * w[i]), the hot loop of conv and fully connected. */
int32_t edgec_dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset);
/* acc[2 * i + j] += sum(xi[k] * wj[k]) for two pixels x0, x1 and two filters w0, w1 (the input
 * offset is folded into the bias on the host: bias + in_offset * sum(w)). */
void edgec_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                   int32_t n, int32_t acc[4]);

/* Every output channel of one or two conv output pixels (x1 may be NULL) from their windows. */
void edgec_conv_channels(const edgec_conv_params *p, const int8_t *x0, const int8_t *x1,
                         const int8_t *filt, int32_t k, const int32_t *bias, const int32_t *mult,
                         const int32_t *shift, int8_t *o0, int8_t *o1);
/* Every output channel of output pixels q0 and q1 (equal for a lone last pixel) of image b, the
 * windows read straight from the input (no im2col copy): 1 when done, 0 when this build or layer
 * has no such path (in_c % 4 != 0, a window over EDGEC_X16_MAX_K bytes, no DSP). */
int edgec_conv_pixels(const edgec_conv_params *p, const int8_t *in, int32_t b, int32_t q0,
                      int32_t q1, const int8_t *filt, const int32_t *bias, const int32_t *mult,
                      const int32_t *shift, int8_t *o0, int8_t *o1);
/* CONV_2D and FULLY_CONNECTED take a folded bias, bias + in_offset * sum(filter of the channel);
 * their in_offset only fills padding. `scratch`: two im2col windows of f_h * f_w * in_c bytes
 * rounded up to a multiple of 4 (the filters zero-padded to match), or NULL for 1x1 filters. `ring`: NULL, or (pad_h + 2) output rows when the output
 * overwrites the input (out == in; one image, vertical stride 1, rows of equal length). */
void edgec_conv_s8(const edgec_conv_params *p, const int8_t *in, const int8_t *filt,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                   int8_t *scratch, int8_t *ring);
/* CONV_2D over weights widened to int16 (ops.pack_conv_pairs16; windows padded to whole words; for
 * rq_mode 1 and 2 weights and bias doubled), four output pixels at a time. `rq`: NULL, or for
 * rq_mode 1 and 2 per channel {multiplier, rounding constant plus out_offset << r, r} (ops.conv_rq_table).
 * `scratch`: one im2col window, NULL for 1x1 filters over in_c % 4 == 0. */
void edgec_conv_s8_w16(const edgec_conv_params *p, const int8_t *in, const int16_t *filt,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift, const int32_t *rq,
                       int8_t *out, int8_t *scratch, int8_t *ring);
/* Every output channel of output pixels q[0..3] of image b (edgec_conv_s8_w16's DSP kernel):
 * 1 when done, 0 when this build has no such kernel or the window is too long. */
int edgec_conv_quad(const edgec_conv_params *p, const int8_t *in, int32_t b, const int32_t q[4],
                    const int16_t *filt, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                    const int32_t *rq, int8_t *const o[4], int8_t *scratch);
/* The im2col window of output pixel q (padded with the input zero point) in dst, or for dst NULL
 * (a 1x1 filter without padding) the input pixel itself. */
const int8_t *edgec_conv_patch(const edgec_conv_params *p, const int8_t *in, int32_t b, int32_t q,
                               int8_t *dst);
/* One depthwise output row (depth multiplier 1, channels % 4 == 0): x points at column 0 of the
 * first valid input row of the window, w at the filter row that reads it; `rows` valid rows. */
void edgec_dw_row(const edgec_conv_params *p, const int8_t *x, const int8_t *w, int32_t rows,
                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
void edgec_depthwise_s8(const edgec_conv_params *p, const int8_t *in, const int8_t *filt,
                        const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                        int8_t *ring);
/* DEPTHWISE_CONV_2D 3x3, stride 1, dilation 1, multiplier 1, channels % 4 == 0, over per-channel
 * blocks of int16 weight pairs, bias and requantization constants (ops.pack_dw3x3; doubled for
 * rq_mode 1 and 2). */
void edgec_depthwise_s8_w16(const edgec_conv_params *p, const int8_t *in, const int32_t *blk,
                            const int32_t *mult, const int32_t *shift, int8_t *out, int8_t *scratch,
                            int8_t *ring);
/* Output row oy of edgec_depthwise_s8_w16 into out (one image; rows in order from 0, `scratch` as
 * ops.dw3x3_scratch_bytes): 1 when done, 0 when this build has no DSP kernel for it. */
int edgec_dw3x3_row(const edgec_conv_params *p, const int8_t *in, const int32_t *blk, int32_t oy,
                    int8_t *out, int8_t *scratch);
void edgec_fc_s8(const edgec_fc_params *p, const int8_t *in, const int8_t *filt,
                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
/* FULLY_CONNECTED over weights widened to int16 by the generator (ops.pack_fc_weights16). */
void edgec_fc_s8_w16(const edgec_fc_params *p, const int8_t *in, const int16_t *filt,
                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
void edgec_avgpool_s8(const edgec_pool_params *p, const int8_t *in, int8_t *out);
/* edgec_avgpool_s8's DSP path (channels % 4 == 0, windows of at most 256): 1 when it ran. */
int edgec_avgpool_fast(const edgec_pool_params *p, const int8_t *in, int8_t *out);
void edgec_maxpool_s8(const edgec_pool_params *p, const int8_t *in, int8_t *out);
void edgec_add_s8(const edgec_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void edgec_mul_s8(const edgec_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out);

/* SOFTMAX over the last dimension (`depth`), output scale 1/256 and zero point -128. */
void edgec_softmax_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t depth,
                      int32_t in_mult, int32_t in_left_shift, int32_t diff_min);
/* LOGISTIC (output 1/256, -128) and TANH (output 1/128, 0). */
void edgec_logistic_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp,
                       int32_t radius, int32_t in_mult, int32_t in_shift);
void edgec_tanh_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp,
                   int32_t radius, int32_t in_mult, int32_t in_shift);
void edgec_hard_swish_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp, int32_t out_zp,
                         int16_t out_mult16, int32_t out_exp, int16_t relu_mult16, int32_t relu_exp);
/* QUANTIZE int8 -> int8 and RELU: out = clamp(out_zp + (in - in_zp) * mult * 2^shift). */
void edgec_requantize_s8(const int8_t *in, int8_t *out, int32_t n, int32_t in_zp, int32_t out_zp,
                         int32_t mult, int32_t shift, int32_t act_min, int32_t act_max);
/* QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32 (the float boundaries of a model). */
void edgec_quantize_f32_s8(const float *in, int8_t *out, int32_t n, float scale, int32_t zp);
void edgec_dequantize_s8_f32(const int8_t *in, float *out, int32_t n, float scale, int32_t zp);
/* RELU6 on an unchanged scale: clamp to [lo, hi]. */
void edgec_clamp_s8(const int8_t *in, int8_t *out, int32_t n, int32_t lo, int32_t hi);
/* CONCATENATION of equally quantized inputs along one axis. */
void edgec_concat_s8(const int8_t *const *ins, const int32_t *copy_sizes, int32_t n_inputs,
                     int32_t outer, int8_t *out);
/* PAD (4-D) with a constant value. */
void edgec_pad_s8(const int8_t *in, int8_t *out, const int32_t in_shape[4],
                  const int32_t before[4], const int32_t after[4], int8_t value);
/* MEAN over H and W of NHWC with requantization (TFLite Micro's 4-D axes 1 & 2 kernel). */
void edgec_mean_hw_s8(const int8_t *in, int8_t *out, int32_t batches, int32_t h, int32_t w,
                      int32_t c, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift);
/* MEAN over the axes flagged in `reduce` of a 4-D tensor (TFLite Micro's integer mean). */
void edgec_mean_s8(const int8_t *in, int8_t *out, const int32_t in_shape[4], const int32_t reduce[4],
                   int32_t same_quant, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift);
void edgec_copy_s8(const int8_t *in, int8_t *out, int32_t n);

#endif /* EDGEC_KERNELS_H */
