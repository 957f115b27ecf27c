/* Inner products of edgec's int8 kernels: sum((x[i] + x_offset) * w[i]) over int8 vectors.
 * Three variants, chosen at compile time, with identical results (only the order of exact int32
 * additions differs): Helium/MVE (Cortex-M55), DSP SIMD through ACLE intrinsics (Cortex-M4/M7/M33),
 * and portable C. Build with -DEDGEC_PORTABLE to force the portable C. */
#include "edgec_kernels.h"

#include <string.h>

#if !defined(EDGEC_PORTABLE) && defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define EDGEC_USE_MVE 1
#include <arm_mve.h>
#elif !defined(EDGEC_PORTABLE) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EDGEC_USE_DSP 1
#include <arm_acle.h>
#endif

#if !defined(EDGEC_PORTABLE) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EDGEC_HAVE_DSP 1  /* also on M55, whose depthwise kernel uses the DSP instructions */
#include <arm_acle.h>

/* Rotate right; GCC and Clang turn this into one ROR (arm_acle.h's __ror is not in every GCC). */
static inline uint32_t ror32(uint32_t x, uint32_t n) { return (x >> n) | (x << (32u - n)); }

static inline int32_t load4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);  /* unaligned-safe; one LDR on Cortex-M */
  return v;
}

/* SXTB16 of the word rotated by 8 (bytes 1 and 3); one instruction, which GCC 12 does not form
 * from __sxtb16(ror) by itself. */
static inline int32_t sxtb16_ror8(int32_t v) {
#if defined(__GNUC__)
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
#else
  return __sxtb16(ror32((uint32_t)v, 8));
#endif
}

#endif

#if defined(EDGEC_USE_MVE)
/* 16 lanes per beat group; the offset is folded in once as x_offset * sum(w). */
static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset) {
  int32_t acc = 0, wsum = 0;
  while (n > 0) {
    const mve_pred16_t p = vctp8q((uint32_t)n);
    const int8x16_t xv = vldrbq_z_s8(x, p);
    const int8x16_t wv = vldrbq_z_s8(w, p);
    acc = vmladavaq_p_s8(acc, xv, wv, p);
    wsum = vaddvaq_p_s8(wsum, wv, p);
    x += 16;
    w += 16;
    n -= 16;
  }
  return acc + x_offset * wsum;
}

static inline void dot2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                          int32_t n, int32_t acc[4]) {
  int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
  while (n > 0) {
    const mve_pred16_t p = vctp8q((uint32_t)n);
    const int8x16_t xa = vldrbq_z_s8(x0, p), xb = vldrbq_z_s8(x1, p);
    const int8x16_t wa = vldrbq_z_s8(w0, p), wb = vldrbq_z_s8(w1, p);
    a00 = vmladavaq_p_s8(a00, xa, wa, p);
    a01 = vmladavaq_p_s8(a01, xa, wb, p);
    a10 = vmladavaq_p_s8(a10, xb, wa, p);
    a11 = vmladavaq_p_s8(a11, xb, wb, p);
    x0 += 16; x1 += 16; w0 += 16; w1 += 16;
    n -= 16;
  }
  acc[0] += a00;
  acc[1] += a01;
  acc[2] += a10;
  acc[3] += a11;
}

#elif defined(EDGEC_USE_DSP)
/* Two 16x16 MACs per SMLAD; x + offset fits in 16 bits (|x + offset| <= 255). */
static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset) {
  const uint32_t off2 = ((uint32_t)(uint16_t)x_offset << 16) | (uint16_t)x_offset;
  int32_t acc = 0, i = 0;
  for (; i + 4 <= n; i += 4) {
    const int32_t xv = load4(x + i), wv = load4(w + i);
    acc = __smlad(__sxtab16(off2, xv), __sxtb16(wv), acc);
    acc = __smlad(__sxtab16(off2, ror32((uint32_t)xv, 8)), __sxtb16(ror32((uint32_t)wv, 8)), acc);
  }
  for (; i < n; ++i) acc += ((int32_t)x[i] + x_offset) * (int32_t)w[i];
  return acc;
}

/* One word (4 bytes at offset o) of dot2x2: both filter words are expanded first, then each
 * pixel's word in turn, so that only six expanded operands are live at once (no spills). */
#define DOT2X2_WORD(o, dx, dw)                                                   \
  {                                                                              \
    int32_t wv = load4(w0 + (o)), xv;                                            \
    const int32_t we0 = __sxtb16(wv), wo0 = sxtb16_ror8(wv);                     \
    int32_t xe, xo, we1, wo1;                                                    \
    wv = load4(w0 + (o) + (dw));                                                 \
    we1 = __sxtb16(wv);                                                          \
    wo1 = sxtb16_ror8(wv);                                                       \
    xv = load4(x0 + (o));                                                        \
    xe = __sxtb16(xv);                                                           \
    xo = sxtb16_ror8(xv);                                                        \
    a00 = __smlad(xo, wo0, __smlad(xe, we0, a00));                               \
    a01 = __smlad(xo, wo1, __smlad(xe, we1, a01));                               \
    xv = load4(x0 + (o) + (dx));                                                 \
    xe = __sxtb16(xv);                                                           \
    xo = sxtb16_ror8(xv);                                                        \
    a10 = __smlad(xo, wo0, __smlad(xe, we0, a10));                               \
    a11 = __smlad(xo, wo1, __smlad(xe, we1, a11));                               \
  }

/* The word loop of dot2x2, two words per iteration; `dx` and `dw` may be one register (the common
 * case: im2col windows and 1x1 pixels both k bytes apart, like the two filters). */
#define DOT2X2_LOOP(dx, dw)                                                      \
  {                                                                              \
    const int8_t *const end8 = x0 + (n & ~7);                                    \
    while (x0 != end8) {                                                         \
      DOT2X2_WORD(0, dx, dw)                                                     \
      DOT2X2_WORD(4, dx, dw)                                                     \
      x0 += 8;                                                                   \
      w0 += 8;                                                                   \
    }                                                                            \
    if (n & 4) {                                                                 \
      DOT2X2_WORD(0, dx, dw)                                                     \
      x0 += 4;                                                                   \
      w0 += 4;                                                                   \
    }                                                                            \
  }

/* Two pixels times two output channels: each expanded operand feeds two SMLADs. The second pixel
 * and filter are addressed relative to the first so that all pointers stay in registers. */
static inline void dot2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                          int32_t n, int32_t acc[4]) {
  const int32_t dx = (int32_t)(x1 - x0), dw = (int32_t)(w1 - w0);
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3], i;
  if (dx == dw)
    DOT2X2_LOOP(dw, dw)
  else
    DOT2X2_LOOP(dx, dw)
  for (i = 0; i < (n & 3); ++i) {
    a00 += x0[i] * w0[i];
    a01 += x0[i] * w0[i + dw];
    a10 += x0[i + dx] * w0[i];
    a11 += x0[i + dx] * w0[i + dw];
  }
  acc[0] = a00; acc[1] = a01; acc[2] = a10; acc[3] = a11;
}

#if defined(__GNUC__)
#define EDGEC_X16 1
/* Longest window (bytes) that conv_channels expands on the stack (4 * 576 bytes for two pixels):
 * ResNet-8's 3x3x64. */
#define EDGEC_X16_MAX_K 576

/* Sign-extend the windows of two pixels once, as SMLAD operands in the order SXTB16 gives the
 * filter bytes: per 4-byte word {x0 bytes 0,2; x0 bytes 1,3; x1 bytes 0,2; x1 bytes 1,3}. Every
 * output channel then reuses them. `k` is a multiple of 4. */
static void expand2(const int8_t *x0, const int8_t *x1, int32_t k, int32_t *dst) {
  int32_t i;
  for (i = 0; i < k; i += 4, dst += 4) {
    const int32_t a = load4(x0 + i), b = load4(x1 + i);
    dst[0] = __sxtb16(a);
    dst[1] = sxtb16_ror8(a);
    dst[2] = __sxtb16(b);
    dst[3] = sxtb16_ror8(b);
  }
}

/* One word of dot2x2_x16 over a channel pair packed by the generator (ops.pack_conv_pairs: the
 * pair's filter words alternate): 17 instructions, 20 cycles on the Cortex-M4 for 16
 * multiply-accumulates in 13 registers. Both filter words are loaded and expanded once, with the
 * first pixel's pair in the same chain of pipelined loads; the second pixel's pair is one LDRD
 * (3 cycles like a chain of two loads on the M4, one instruction fewer on the M7). */
#define X16_WORD                                  \
  "ldr    %[wa], [%[w]], #4\n\t"                  \
  "ldr    %[wb], [%[w]], #4\n\t"                  \
  "ldr    %[xe], [%[x]], #4\n\t"                  \
  "ldr    %[xo], [%[x]], #4\n\t"                  \
  "sxtb16 %[wao], %[wa], ror #8\n\t"              \
  "sxtb16 %[wa], %[wa]\n\t"                       \
  "sxtb16 %[wbo], %[wb], ror #8\n\t"              \
  "sxtb16 %[wb], %[wb]\n\t"                       \
  "smlad  %[a00], %[xe], %[wa], %[a00]\n\t"       \
  "smlad  %[a00], %[xo], %[wao], %[a00]\n\t"      \
  "smlad  %[a01], %[xe], %[wb], %[a01]\n\t"       \
  "smlad  %[a01], %[xo], %[wbo], %[a01]\n\t"      \
  "ldrd   %[xe], %[xo], [%[x]], #8\n\t"          \
  "smlad  %[a10], %[xe], %[wa], %[a10]\n\t"       \
  "smlad  %[a10], %[xo], %[wao], %[a10]\n\t"      \
  "smlad  %[a11], %[xe], %[wb], %[a11]\n\t"       \
  "smlad  %[a11], %[xo], %[wbo], %[a11]\n\t"

#define X16_OPERANDS                                                                              \
  : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [x] "+r"(xs), [w] "+r"(w), \
    [wa] "=&r"(wa), [wao] "=&r"(wao), [wb] "=&r"(wb), [wbo] "=&r"(wbo), [xe] "=&r"(xe),            \
    [xo] "=&r"(xo)

/* dot2x2 over expanded windows (expand2) and a packed channel pair `w`, `words` >= 1 words long;
 * four words per loop iteration (its compare and taken branch cost 4 cycles) after the first
 * words % 4. Written out because GCC spills here. */
EDGEC_SPECIALIZE void dot2x2_x16(const int32_t *xs, const int8_t *w, int32_t words, int32_t acc[4]) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3], wa, wao, wb, wbo, xe, xo;
  const int32_t *const end = xs + 4 * words;
  if (words & 1)
    __asm__(X16_WORD X16_OPERANDS : : "memory");
  if (words & 2)
    __asm__(X16_WORD X16_WORD X16_OPERANDS : : "memory");
  if (xs != end)
    __asm__("1:\n\t" X16_WORD X16_WORD X16_WORD X16_WORD
            "cmp    %[x], %[end]\n\t"
            "bne    1b"
            X16_OPERANDS
            : [end] "r"(end)
            : "cc", "memory");
  acc[0] = a00; acc[1] = a01; acc[2] = a10; acc[3] = a11;
}
#undef X16_OPERANDS
#endif

#else
static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset) {
  int32_t acc = 0, i;
  for (i = 0; i < n; ++i) acc += ((int32_t)x[i] + x_offset) * (int32_t)w[i];
  return acc;
}

static inline void dot2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                          int32_t n, int32_t acc[4]) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    const int32_t xa = x0[i], xb = x1[i];
    acc[0] += xa * w0[i];
    acc[1] += xa * w1[i];
    acc[2] += xb * w0[i];
    acc[3] += xb * w1[i];
  }
}
#endif

/* ---------------------------------------------------------------- fully connected */

/* Four weight rows of FULLY_CONNECTED over one input vector. `w` is a block of four rows packed by
 * the generator (ops.pack_fc_weights): per group of four inputs the four rows' four bytes (16
 * bytes), then the rows' last in_depth % 4 bytes one row after the other. acc[r] += x . row r. */
#if defined(EDGEC_USE_DSP) && defined(__GNUC__) && defined(__OPTIMIZE__)
/* One group: one input word and four weight words, 16 multiply-accumulates in 24 cycles on the
 * Cortex-M4 (one chain of five pipelined loads, 10 SXTB16, 8 SMLAD) in 14 registers, which only an
 * optimizing build has free (at -O0 r7 is the frame pointer: the C loop below is used). */
#define FC4_GROUP                                 \
  "ldr    %[xe], [%[x]], #4\n\t"                  \
  "ldr    %[wa], [%[w]], #4\n\t"                  \
  "ldr    %[wb], [%[w]], #4\n\t"                  \
  "ldr    %[wc], [%[w]], #4\n\t"                  \
  "ldr    %[wd], [%[w]], #4\n\t"                  \
  "sxtb16 %[xo], %[xe], ror #8\n\t"               \
  "sxtb16 %[xe], %[xe]\n\t"                       \
  "sxtb16 %[t], %[wa], ror #8\n\t"                \
  "sxtb16 %[wa], %[wa]\n\t"                       \
  "smlad  %[a0], %[xe], %[wa], %[a0]\n\t"         \
  "smlad  %[a0], %[xo], %[t], %[a0]\n\t"          \
  "sxtb16 %[t], %[wb], ror #8\n\t"                \
  "sxtb16 %[wb], %[wb]\n\t"                       \
  "smlad  %[a1], %[xe], %[wb], %[a1]\n\t"         \
  "smlad  %[a1], %[xo], %[t], %[a1]\n\t"          \
  "sxtb16 %[t], %[wc], ror #8\n\t"                \
  "sxtb16 %[wc], %[wc]\n\t"                       \
  "smlad  %[a2], %[xe], %[wc], %[a2]\n\t"         \
  "smlad  %[a2], %[xo], %[t], %[a2]\n\t"          \
  "sxtb16 %[t], %[wd], ror #8\n\t"                \
  "sxtb16 %[wd], %[wd]\n\t"                       \
  "smlad  %[a3], %[xe], %[wd], %[a3]\n\t"         \
  "smlad  %[a3], %[xo], %[t], %[a3]\n\t"

#define FC4_OPERANDS                                                                              \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),        \
    [xe] "=&r"(xe), [xo] "=&r"(xo), [wa] "=&r"(wa), [wb] "=&r"(wb), [wc] "=&r"(wc),               \
    [wd] "=&r"(wd), [t] "=&r"(t)

EDGEC_SPECIALIZE void fc_rows4(const int8_t *x, const int8_t *w, int32_t n, int32_t acc[4]) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], xe, xo, wa, wb, wc, wd, t, g;
  const int8_t *const end4 = x + (n & ~15);
  /* Four groups per loop iteration (the loop's compare and taken branch cost 4 cycles), then the
   * remaining groups one at a time. Written out because GCC spills the 14 live values. */
  if (x != end4)
    __asm__("1:\n\t" FC4_GROUP FC4_GROUP FC4_GROUP FC4_GROUP
            "cmp    %[x], %[end]\n\t"
            "bne    1b"
            FC4_OPERANDS
            : [end] "r"(end4)
            : "cc", "memory");
  for (g = (n >> 2) & 3; g > 0; --g)
    __asm__(FC4_GROUP FC4_OPERANDS : : "memory");
  for (g = 0; g < (n & 3); ++g) {
    const int32_t xv = x[g];
    a0 += xv * w[g];
    a1 += xv * w[(n & 3) + g];
    a2 += xv * w[2 * (n & 3) + g];
    a3 += xv * w[3 * (n & 3) + g];
  }
  acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#undef FC4_OPERANDS
#else
EDGEC_SPECIALIZE void fc_rows4(const int8_t *x, const int8_t *w, int32_t n, int32_t acc[4]) {
  const int32_t tail = n & 3;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], g, j;
  for (g = n >> 2; g > 0; --g, x += 4, w += 16)
    for (j = 0; j < 4; ++j) {
      const int32_t xv = x[j];
      a0 += xv * w[j];
      a1 += xv * w[4 + j];
      a2 += xv * w[8 + j];
      a3 += xv * w[12 + j];
    }
  for (j = 0; j < tail; ++j) {
    const int32_t xv = x[j];
    a0 += xv * w[j];
    a1 += xv * w[tail + j];
    a2 += xv * w[2 * tail + j];
    a3 += xv * w[3 * tail + j];
  }
  acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#endif

/* edgec_fc_s8 for one requantization path (`mode` constant at each call, see conv_channels). */
EDGEC_SPECIALIZE void fc_s8(const edgec_fc_params *p, const int8_t *in, const int8_t *filt,
                            const int32_t *bias, const int32_t *mult, const int32_t *shift,
                            int8_t *out, const int mode) {
  const int32_t k = p->in_depth, rows4 = p->out_depth & ~3, off = p->out_offset;
  const int32_t lo = p->act_min, hi = p->act_max, qstep = p->per_channel ? 1 : 0;
  int32_t b, o;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *x = in + b * k;
    const int32_t *m = mult, *s = shift;
    for (o = 0; o < rows4; o += 4, out += 4) {
      int32_t acc[4] = {0, 0, 0, 0};
      if (bias) {
        acc[0] = bias[o]; acc[1] = bias[o + 1]; acc[2] = bias[o + 2]; acc[3] = bias[o + 3];
      }
      fc_rows4(x, filt + o * k, k, acc);
      out[0] = edgec_requant_mode(acc[0], m[0], s[0], off, lo, hi, mode);
      out[1] = edgec_requant_mode(acc[1], m[qstep], s[qstep], off, lo, hi, mode);
      out[2] = edgec_requant_mode(acc[2], m[2 * qstep], s[2 * qstep], off, lo, hi, mode);
      out[3] = edgec_requant_mode(acc[3], m[3 * qstep], s[3 * qstep], off, lo, hi, mode);
      m += 4 * qstep;
      s += 4 * qstep;
    }
    for (; o < p->out_depth; ++o) {  /* the last out_depth % 4 rows, stored row after row */
      int32_t acc = dot1(x, filt + o * k, k, 0);
      if (bias) acc += bias[o];
      *out++ = edgec_requant_mode(acc, mult[o * qstep], shift[o * qstep], off, lo, hi, mode);
    }
  }
}

void edgec_fc_s8(const edgec_fc_params *p, const int8_t *in, const int8_t *filt,
                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
#if defined(EDGEC_DSP_REQUANT)
  if (p->rq_mode == 2) {
    fc_s8(p, in, filt, bias, mult, shift, out, 2);
    return;
  }
  if (p->rq_mode == 1) {
    fc_s8(p, in, filt, bias, mult, shift, out, 1);
    return;
  }
#endif
  fc_s8(p, in, filt, bias, mult, shift, out, 0);
}

/* ---------------------------------------------------------------- fully connected, 16-bit weights */

/* Four rows of FULLY_CONNECTED over weights the generator widened to int16 (ops.pack_fc_weights16:
 * per group of four inputs each row's weights 0, 2, 1, 3, the SMLAD operands SXTB16 would make of
 * the input word; then the rows' last in_depth % 4 weights one row after the other). Twice the
 * flash of the int8 layout, for 2 fewer instructions per weight word. */
#if defined(EDGEC_USE_DSP) && defined(__GNUC__) && defined(__OPTIMIZE__)
/* One group: one input word expanded in registers, two chains of pipelined loads of two rows'
 * weights each, 16 multiply-accumulates in 21 cycles on the Cortex-M4 in 12 registers. */
#define FC4W_GROUP                                \
  "ldr    %[xe], [%[x]], #4\n\t"                  \
  "ldr    %[w0], [%[w]], #4\n\t"                  \
  "ldr    %[w1], [%[w]], #4\n\t"                  \
  "ldr    %[w2], [%[w]], #4\n\t"                  \
  "ldr    %[w3], [%[w]], #4\n\t"                  \
  "sxtb16 %[xo], %[xe], ror #8\n\t"               \
  "sxtb16 %[xe], %[xe]\n\t"                       \
  "smlad  %[a0], %[xe], %[w0], %[a0]\n\t"         \
  "smlad  %[a0], %[xo], %[w1], %[a0]\n\t"         \
  "smlad  %[a1], %[xe], %[w2], %[a1]\n\t"         \
  "smlad  %[a1], %[xo], %[w3], %[a1]\n\t"         \
  "ldr    %[w0], [%[w]], #4\n\t"                  \
  "ldr    %[w1], [%[w]], #4\n\t"                  \
  "ldr    %[w2], [%[w]], #4\n\t"                  \
  "ldr    %[w3], [%[w]], #4\n\t"                  \
  "smlad  %[a2], %[xe], %[w0], %[a2]\n\t"         \
  "smlad  %[a2], %[xo], %[w1], %[a2]\n\t"         \
  "smlad  %[a3], %[xe], %[w2], %[a3]\n\t"         \
  "smlad  %[a3], %[xo], %[w3], %[a3]\n\t"

#define FC4W_OPERANDS                                                                             \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),        \
    [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)

EDGEC_SPECIALIZE void fc_rows4_w16(const int8_t *x, const int16_t *w, int32_t n, int32_t acc[4]) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], xe, xo, w0, w1, w2, w3, g;
  const int8_t *const end4 = x + (n & ~15);
  if (x != end4)
    __asm__("1:\n\t" FC4W_GROUP FC4W_GROUP FC4W_GROUP FC4W_GROUP
            "cmp    %[x], %[end]\n\t"
            "bne    1b"
            FC4W_OPERANDS
            : [end] "r"(end4)
            : "cc", "memory");
  for (g = (n >> 2) & 3; g > 0; --g)
    __asm__(FC4W_GROUP FC4W_OPERANDS : : "memory");
  for (g = 0; g < (n & 3); ++g) {
    const int32_t xv = x[g];
    a0 += xv * w[g];
    a1 += xv * w[(n & 3) + g];
    a2 += xv * w[2 * (n & 3) + g];
    a3 += xv * w[3 * (n & 3) + g];
  }
  acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#undef FC4W_OPERANDS
#else
EDGEC_SPECIALIZE void fc_rows4_w16(const int8_t *x, const int16_t *w, int32_t n, int32_t acc[4]) {
  const int32_t tail = n & 3;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], g, j;
  for (g = n >> 2; g > 0; --g, x += 4, w += 16) {
    const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];  /* each row's weights: 0, 2, 1, 3 */
    a0 += x0 * w[0] + x2 * w[1] + x1 * w[2] + x3 * w[3];
    a1 += x0 * w[4] + x2 * w[5] + x1 * w[6] + x3 * w[7];
    a2 += x0 * w[8] + x2 * w[9] + x1 * w[10] + x3 * w[11];
    a3 += x0 * w[12] + x2 * w[13] + x1 * w[14] + x3 * w[15];
  }
  for (j = 0; j < tail; ++j) {
    const int32_t xv = x[j];
    a0 += xv * w[j];
    a1 += xv * w[tail + j];
    a2 += xv * w[2 * tail + j];
    a3 += xv * w[3 * tail + j];
  }
  acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#endif

EDGEC_SPECIALIZE void fc_s8_w16(const edgec_fc_params *p, const int8_t *in, const int16_t *filt,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                int8_t *out, const int mode) {
  const int32_t k = p->in_depth, rows4 = p->out_depth & ~3, off = p->out_offset;
  const int32_t lo = p->act_min, hi = p->act_max, qstep = p->per_channel ? 1 : 0;
  int32_t b, o, i;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *x = in + b * k;
    const int32_t *m = mult, *s = shift;
    for (o = 0; o < rows4; o += 4, out += 4) {
      int32_t acc[4] = {0, 0, 0, 0};
      if (bias) {
        acc[0] = bias[o]; acc[1] = bias[o + 1]; acc[2] = bias[o + 2]; acc[3] = bias[o + 3];
      }
      fc_rows4_w16(x, filt + o * k, k, acc);
      out[0] = edgec_requant_mode(acc[0], m[0], s[0], off, lo, hi, mode);
      out[1] = edgec_requant_mode(acc[1], m[qstep], s[qstep], off, lo, hi, mode);
      out[2] = edgec_requant_mode(acc[2], m[2 * qstep], s[2 * qstep], off, lo, hi, mode);
      out[3] = edgec_requant_mode(acc[3], m[3 * qstep], s[3 * qstep], off, lo, hi, mode);
      m += 4 * qstep;
      s += 4 * qstep;
    }
    for (; o < p->out_depth; ++o) {  /* the last out_depth % 4 rows, row after row */
      const int16_t *w = filt + o * k;
      int32_t acc = bias ? bias[o] : 0;
      for (i = 0; i < k; ++i) acc += x[i] * w[i];
      *out++ = edgec_requant_mode(acc, mult[o * qstep], shift[o * qstep], off, lo, hi, mode);
    }
  }
}

void edgec_fc_s8_w16(const edgec_fc_params *p, const int8_t *in, const int16_t *filt,
                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
#if defined(EDGEC_DSP_REQUANT)
  if (p->rq_mode == 2) {
    fc_s8_w16(p, in, filt, bias, mult, shift, out, 2);
    return;
  }
  if (p->rq_mode == 1) {
    fc_s8_w16(p, in, filt, bias, mult, shift, out, 1);
    return;
  }
#endif
  fc_s8_w16(p, in, filt, bias, mult, shift, out, 0);
}

int32_t edgec_dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset) {
  return dot1(x, w, n, x_offset);
}

void edgec_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                   int32_t n, int32_t acc[4]) {
  dot2x2(x0, x1, w0, w1, n, acc);
}

/* dot2x2 over a channel pair packed by the generator (ops.pack_conv_pairs): per 4-byte word of
 * the window, the first channel's word then the second's. `n` is a multiple of 4. */
#if defined(EDGEC_USE_MVE)
/* Byte offsets of the first channel's 16 weights in 32 packed bytes (the second's: + 4). */
static const uint8_t pair_offsets[16] = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};

static inline void dot2x2_packed(const int8_t *x0, const int8_t *x1, const int8_t *w, int32_t n,
                                 int32_t acc[4]) {
  const uint8x16_t oa = vldrbq_u8(pair_offsets), ob = vaddq_n_u8(oa, 4);
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  while (n > 0) {
    const mve_pred16_t p = vctp8q((uint32_t)n);
    const int8x16_t xa = vldrbq_z_s8(x0, p), xb = vldrbq_z_s8(x1, p);
    const int8x16_t wa = vldrbq_gather_offset_z_s8(w, oa, p), wb = vldrbq_gather_offset_z_s8(w, ob, p);
    a00 = vmladavaq_p_s8(a00, xa, wa, p);
    a01 = vmladavaq_p_s8(a01, xa, wb, p);
    a10 = vmladavaq_p_s8(a10, xb, wa, p);
    a11 = vmladavaq_p_s8(a11, xb, wb, p);
    x0 += 16; x1 += 16; w += 32;
    n -= 16;
  }
  acc[0] = a00; acc[1] = a01; acc[2] = a10; acc[3] = a11;
}
#else
static inline void dot2x2_packed(const int8_t *x0, const int8_t *x1, const int8_t *w, int32_t n,
                                 int32_t acc[4]) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  const int8_t *const end = x0 + n;
#define DOT2X2_PACKED_BYTE(j)                                              \
  {                                                                        \
    const int32_t xa = x0[j], xb = x1[j], wa = w[j], wb = w[4 + (j)];      \
    a00 += xa * wa;                                                        \
    a01 += xa * wb;                                                        \
    a10 += xb * wa;                                                        \
    a11 += xb * wb;                                                        \
  }
  for (; x0 != end; x0 += 4, x1 += 4, w += 8) {
    DOT2X2_PACKED_BYTE(0)
    DOT2X2_PACKED_BYTE(1)
    DOT2X2_PACKED_BYTE(2)
    DOT2X2_PACKED_BYTE(3)
  }
#undef DOT2X2_PACKED_BYTE
  acc[0] = a00; acc[1] = a01; acc[2] = a10; acc[3] = a11;
}
#endif

#if defined(EDGEC_X16)
/* Channel pairs per pass of x16_channels: the raw sums of a pass wait in 4 * 64 int32 on the stack. */
#define EDGEC_X16_PASS 64

/* The channel-pair loop of conv_channels over two windows expanded by expand2 or expand_windows:
 * every output channel of the two pixels, channel pairs packed (ops.pack_conv_pairs). Up to
 * EDGEC_X16_PASS pairs run back to back, only storing their four sums; then one loop requantizes
 * them channel by channel with that channel's constants read once for both pixels (after the
 * SMLAD loop GCC would otherwise spill and reload them per pair). Returns the number of channels
 * done (an odd last one is left to the caller). */
EDGEC_SPECIALIZE int32_t x16_channels(const edgec_conv_params *p, const int32_t *xs,
                                      const int8_t *filt, int32_t k, const int32_t *bias,
                                      const int32_t *mult, const int32_t *shift, int8_t *o0,
                                      int8_t *o1, const int mode) {
  const int32_t off = p->out_offset, lo = p->act_min, hi = p->act_max, pairs = p->out_c >> 1;
  const int32_t words = k >> 2;
  int32_t raw[4 * EDGEC_X16_PASS], first, n, i;
  for (first = 0; first < pairs; first += n) {
    const int32_t *r = raw;
    const int8_t *w = filt + 2 * first * k;
    n = pairs - first < EDGEC_X16_PASS ? pairs - first : EDGEC_X16_PASS;
    for (i = 0; i < n; ++i, w += 2 * k) {
      int32_t *acc = raw + 4 * i;
      acc[0] = acc[2] = bias[2 * (first + i)];
      acc[1] = acc[3] = bias[2 * (first + i) + 1];
      dot2x2_x16(xs, w, words, acc);
    }
    /* raw per pair: pixel 0 channel 0, pixel 0 channel 1, pixel 1 channel 0, pixel 1 channel 1 */
    for (i = 2 * first; i < 2 * (first + n); i += 2, r += 4) {
      const int32_t m0 = mult[i], m1 = mult[i + 1], s0 = shift[i], s1 = shift[i + 1];
      const int32_t r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
      o0[i] = edgec_requant_mode(r0, m0, s0, off, lo, hi, mode);
      o1[i] = edgec_requant_mode(r2, m0, s0, off, lo, hi, mode);
      o0[i + 1] = edgec_requant_mode(r1, m1, s1, off, lo, hi, mode);
      o1[i + 1] = edgec_requant_mode(r3, m1, s1, off, lo, hi, mode);
    }
  }
  return 2 * pairs;
}
#endif

/* edgec_conv_channels for one requantization path; `mode` is a constant at each call below, so
 * every path compiles to its own straight-line code. Windows whose length k is a multiple of 4
 * come with channel pairs packed (ops.pack_conv_pairs); other filters are row after row. Either
 * way an odd last channel sits row-major at filt + oc * k. */
EDGEC_SPECIALIZE void conv_channels(const edgec_conv_params *p, const int8_t *x0, const int8_t *x1,
                                  const int8_t *filt, int32_t k, const int32_t *bias,
                                  const int32_t *mult, const int32_t *shift, int8_t *o0,
                                  int8_t *o1, const int mode) {
  const int32_t off = p->out_offset, lo = p->act_min, hi = p->act_max, out_c = p->out_c;
  int32_t oc = 0;
  if ((k & 3) == 0) {
    /* A lone last pixel runs as a pair with itself, writing the same bytes twice. */
    if (!x1) {
      x1 = x0;
      o1 = o0;
    }
#if defined(EDGEC_X16)
    if (k <= EDGEC_X16_MAX_K) {
      int32_t xs[EDGEC_X16_MAX_K];
      expand2(x0, x1, k, xs);
      oc = x16_channels(p, xs, filt, k, bias, mult, shift, o0, o1, mode);
    }
#endif
    for (; oc + 2 <= out_c; oc += 2) {
      /* In locals: the int8 stores below may alias the tables, each would be read again. */
      const int32_t m0 = mult[oc], m1 = mult[oc + 1], s0 = shift[oc], s1 = shift[oc + 1];
      int32_t acc[4];
      acc[0] = acc[2] = bias[oc];
      acc[1] = acc[3] = bias[oc + 1];
      dot2x2_packed(x0, x1, filt + oc * k, k, acc);
      o0[oc] = edgec_requant_mode(acc[0], m0, s0, off, lo, hi, mode);
      o0[oc + 1] = edgec_requant_mode(acc[1], m1, s1, off, lo, hi, mode);
      o1[oc] = edgec_requant_mode(acc[2], m0, s0, off, lo, hi, mode);
      o1[oc + 1] = edgec_requant_mode(acc[3], m1, s1, off, lo, hi, mode);
    }
  } else if (x1) {
    for (; oc + 2 <= out_c; oc += 2) {
      const int8_t *f0 = filt + oc * k;
      const int32_t m0 = mult[oc], m1 = mult[oc + 1], s0 = shift[oc], s1 = shift[oc + 1];
      int32_t acc[4];
      acc[0] = acc[2] = bias[oc];
      acc[1] = acc[3] = bias[oc + 1];
      dot2x2(x0, x1, f0, f0 + k, k, acc);
      o0[oc] = edgec_requant_mode(acc[0], m0, s0, off, lo, hi, mode);
      o0[oc + 1] = edgec_requant_mode(acc[1], m1, s1, off, lo, hi, mode);
      o1[oc] = edgec_requant_mode(acc[2], m0, s0, off, lo, hi, mode);
      o1[oc + 1] = edgec_requant_mode(acc[3], m1, s1, off, lo, hi, mode);
    }
  }
  for (; oc < out_c; ++oc) {
    const int8_t *f0 = filt + oc * k;
    o0[oc] = edgec_requant_mode(bias[oc] + dot1(x0, f0, k, 0), mult[oc], shift[oc], off, lo, hi, mode);
    if (x1)
      o1[oc] = edgec_requant_mode(bias[oc] + dot1(x1, f0, k, 0), mult[oc], shift[oc], off, lo, hi,
                                  mode);
  }
}

void edgec_conv_channels(const edgec_conv_params *p, const int8_t *x0, const int8_t *x1,
                         const int8_t *filt, int32_t k, const int32_t *bias, const int32_t *mult,
                         const int32_t *shift, int8_t *o0, int8_t *o1) {
#if defined(EDGEC_DSP_REQUANT)
  if (p->rq_mode == 2) {
    conv_channels(p, x0, x1, filt, k, bias, mult, shift, o0, o1, 2);
    return;
  }
  if (p->rq_mode == 1) {
    conv_channels(p, x0, x1, filt, k, bias, mult, shift, o0, o1, 1);
    return;
  }
#endif
  conv_channels(p, x0, x1, filt, k, bias, mult, shift, o0, o1, 0);
}


/* Sign-extend the windows of output pixels q0 and q1 of image b straight from the input, as expand2
 * does from im2col copies: per 4-byte word of the window {x0 even bytes, x0 odd, x1 even, x1 odd};
 * taps in the padding read as the input zero point (the folded bias cancels them, see
 * conv_patch). `in_c` is a multiple of 4. */
#if defined(EDGEC_X16)
static void expand_windows(const edgec_conv_params *p, const int8_t *in, int32_t b, int32_t q0,
                           int32_t q1, int32_t *dst) {
  const int32_t in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, f_h = p->f_h, f_w = p->f_w;
  const int32_t oy0 = q0 / p->out_w, ox0 = q0 % p->out_w, oy1 = q1 / p->out_w, ox1 = q1 % p->out_w;
  const int32_t iy0 = oy0 * p->stride_h - p->pad_h, ix0 = ox0 * p->stride_w - p->pad_w;
  const int32_t iy1 = oy1 * p->stride_h - p->pad_h, ix1 = ox1 * p->stride_w - p->pad_w;
  const uint32_t zp = (uint8_t)(-p->in_offset) * 0x01010101u;
  const int32_t ze = __sxtb16((int32_t)zp), zo = sxtb16_ror8((int32_t)zp);
  const int8_t *const image = in + b * in_h * in_w * in_c;
  const int32_t run = f_w * in_c, span = (f_w - 1) * p->dil_w;
  /* Whole window rows inside the input for both pixels: one contiguous run each (dilation 1). */
  const int rows_inside = p->dil_w == 1 && ix0 >= 0 && ix0 + span < in_w && ix1 >= 0 && ix1 + span < in_w;
  int32_t ky, kx, c;
  for (ky = 0; ky < f_h; ++ky) {
    const int32_t ya = iy0 + ky * p->dil_h, yb = iy1 + ky * p->dil_h;
    if (rows_inside && ya >= 0 && ya < in_h && yb >= 0 && yb < in_h) {
      const int8_t *pa = image + (ya * in_w + ix0) * in_c, *pb = image + (yb * in_w + ix1) * in_c;
      const int8_t *const end = pa + run;
#define EXPAND_WORD(o)                         \
  {                                            \
    const int32_t va = load4(pa + (o)), vb = load4(pb + (o)); \
    dst[0] = __sxtb16(va);                     \
    dst[1] = sxtb16_ror8(va);                  \
    dst[2] = __sxtb16(vb);                     \
    dst[3] = sxtb16_ror8(vb);                  \
    dst += 4;                                  \
  }
      if (run & 4) {
        EXPAND_WORD(0)
        pa += 4;
        pb += 4;
      }
      for (; pa != end; pa += 8, pb += 8) {
        EXPAND_WORD(0)
        EXPAND_WORD(4)
      }
#undef EXPAND_WORD
      continue;
    }
    for (kx = 0; kx < f_w; ++kx) {
      const int32_t xa = ix0 + kx * p->dil_w, xb = ix1 + kx * p->dil_w;
      const int8_t *pa = ya >= 0 && ya < in_h && xa >= 0 && xa < in_w ? image + (ya * in_w + xa) * in_c : 0;
      const int8_t *pb = yb >= 0 && yb < in_h && xb >= 0 && xb < in_w ? image + (yb * in_w + xb) * in_c : 0;
      if (pa && pb) {
        for (c = 0; c < in_c; c += 4, dst += 4) {
          const int32_t va = load4(pa + c), vb = load4(pb + c);
          dst[0] = __sxtb16(va);
          dst[1] = sxtb16_ror8(va);
          dst[2] = __sxtb16(vb);
          dst[3] = sxtb16_ror8(vb);
        }
      } else {
        for (c = 0; c < in_c; c += 4, dst += 4) {
          const int32_t va = pa ? load4(pa + c) : 0, vb = pb ? load4(pb + c) : 0;
          dst[0] = pa ? __sxtb16(va) : ze;
          dst[1] = pa ? sxtb16_ror8(va) : zo;
          dst[2] = pb ? __sxtb16(vb) : ze;
          dst[3] = pb ? sxtb16_ror8(vb) : zo;
        }
      }
    }
  }
}

EDGEC_SPECIALIZE void conv_pixels(const edgec_conv_params *p, const int8_t *in, int32_t b,
                                  int32_t q0, int32_t q1, const int8_t *filt, int32_t k,
                                  const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                  int8_t *o0, int8_t *o1, const int mode) {
  int32_t xs[EDGEC_X16_MAX_K], oc;
  expand_windows(p, in, b, q0, q1, xs);
  oc = x16_channels(p, xs, filt, k, bias, mult, shift, o0, o1, mode);
  if (oc < p->out_c) {  /* an odd last channel, row-major after the pairs */
    const int32_t *x = xs;
    const int8_t *f = filt + oc * k;
    int32_t a0 = bias[oc], a1 = bias[oc], i;
    for (i = 0; i < k; i += 4, x += 4, f += 4) {
      const int32_t wv = load4(f), we = __sxtb16(wv), wo = sxtb16_ror8(wv);
      a0 = __smlad(x[1], wo, __smlad(x[0], we, a0));
      a1 = __smlad(x[3], wo, __smlad(x[2], we, a1));
    }
    o0[oc] = edgec_requant_mode(a0, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max, mode);
    o1[oc] = edgec_requant_mode(a1, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max, mode);
  }
}
#endif

int edgec_conv_pixels(const edgec_conv_params *p, const int8_t *in, int32_t b, int32_t q0,
                      int32_t q1, const int8_t *filt, const int32_t *bias, const int32_t *mult,
                      const int32_t *shift, int8_t *o0, int8_t *o1) {
#if defined(EDGEC_X16)
  const int32_t k = p->f_h * p->f_w * p->in_c;
  if ((p->in_c & 3) || k > EDGEC_X16_MAX_K) return 0;
#if defined(EDGEC_DSP_REQUANT)
  if (p->rq_mode == 2) {
    conv_pixels(p, in, b, q0, q1, filt, k, bias, mult, shift, o0, o1, 2);
    return 1;
  }
  if (p->rq_mode == 1) {
    conv_pixels(p, in, b, q0, q1, filt, k, bias, mult, shift, o0, o1, 1);
    return 1;
  }
#endif
  conv_pixels(p, in, b, q0, q1, filt, k, bias, mult, shift, o0, o1, 0);
  return 1;
#else
  (void)p; (void)in; (void)b; (void)q0; (void)q1; (void)filt; (void)bias; (void)mult; (void)shift;
  (void)o0; (void)o1;
  return 0;
#endif
}

#if defined(EDGEC_HAVE_DSP)
/* SXTAB16 of the word rotated by 8 (bytes 1 and 3) plus `a`, in one instruction (see sxtb16_ror8). */
static inline int32_t sxtab16_ror8(int32_t a, int32_t v) {
#if defined(__GNUC__)
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
  return r;
#else
  return __sxtab16(a, ror32((uint32_t)v, 8));
#endif
}

/* Valid filter columns [*k0, *k1) of output column ox (dilation 1 without a division). */
static inline void dw_cols(const edgec_conv_params *p, int32_t ox, int32_t *k0, int32_t *k1) {
  const int32_t ix0 = ox * p->stride_w - p->pad_w;
  if (p->dil_w == 1) {
    *k0 = ix0 < 0 ? -ix0 : 0;
    *k1 = p->in_w - ix0 < p->f_w ? p->in_w - ix0 : p->f_w;
  } else {
    *k0 = ix0 >= 0 ? 0 : (-ix0 + p->dil_w - 1) / p->dil_w;
    *k1 = p->in_w - ix0 <= 0 ? 0 : (p->in_w - ix0 - 1) / p->dil_w + 1;
    if (*k1 > p->f_w) *k1 = p->f_w;
  }
}

/* edgec_dw_row for one requantization path (`mode` constant at each call). Per group of four
 * channels the bias, multipliers and shifts are read once for the whole output row, then every
 * pixel of the row runs its valid taps: channels (0, 2) and (1, 3) sit in the halves of two
 * registers, one 16x16 MAC per channel and tap. Interior pixels (the whole window inside the input)
 * run without bounds, a 3x3 window fully unrolled; rows of 3 and 2 taps (the edges of a 3x3) are
 * unrolled too. The bias starts the sums (int32 addition is associative). The geometry is copied
 * into locals: the int8 output stores could alias *p, which GCC would then read again per pixel. */
EDGEC_SPECIALIZE void dw_row(const edgec_conv_params *p, const int8_t *x, const int8_t *w,
                             int32_t rows, const int32_t *bias, const int32_t *mult,
                             const int32_t *shift, int8_t *out, const int mode) {
  const uint32_t off2 = ((uint32_t)(uint16_t)p->in_offset << 16) | (uint16_t)p->in_offset;
  const int32_t off = p->out_offset, lo = p->act_min, hi = p->act_max, out_c = p->out_c;
  const int32_t in_c = p->in_c, in_w = p->in_w, f_w = p->f_w, dil_w = p->dil_w;
  const int32_t stride_w = p->stride_w, pad_w = p->pad_w, out_w = p->out_w;
  const int32_t x_col = in_c * dil_w, x_row = in_w * in_c * p->dil_h, w_col = out_c;
  const int32_t w_row = f_w * out_c, span = (f_w - 1) * dil_w;
  const int full3 = f_w == 3 && rows == 3;  /* interior pixels: all nine taps */
  /* Interior output columns [ox_a, ox_b): ox * stride_w - pad_w >= 0 and + span < in_w. */
  const int32_t ox_a = (pad_w + stride_w - 1) / stride_w;
  int32_t ox_b = in_w - 1 - span + pad_w < 0 ? 0 : (in_w - 1 - span + pad_w) / stride_w + 1;
  int32_t c, ox, r, k;
  if (ox_b > out_w) ox_b = out_w;
  if (ox_b < ox_a) ox_b = ox_a;
  for (c = 0; c < out_c; c += 4) {
    const int32_t b0 = bias ? bias[c] : 0, b1 = bias ? bias[c + 1] : 0;
    const int32_t b2 = bias ? bias[c + 2] : 0, b3 = bias ? bias[c + 3] : 0;
    const int32_t m0 = mult[c], m1 = mult[c + 1], m2 = mult[c + 2], m3 = mult[c + 3];
    const int32_t s0 = shift[c], s1 = shift[c + 1], s2 = shift[c + 2], s3 = shift[c + 3];
    const int8_t *const xc = x + c, *const wc = w + c;
    int8_t *o = out + c;
    for (ox = 0; ox < out_w; ++ox, o += out_c) {
      const int32_t ix0 = ox * stride_w - pad_w;
      int32_t k0 = 0, cols = f_w, a0 = b0, a1 = b1, a2 = b2, a3 = b3;
      const int8_t *xr, *wr;
      if (ox < ox_a || ox >= ox_b) {
        int32_t k1;
        dw_cols(p, ox, &k0, &k1);
        cols = k1 > k0 ? k1 - k0 : 0;
      }
      xr = xc + (ix0 + k0 * dil_w) * in_c;
      wr = wc + k0 * w_col;
#define DW_TAP(xp, wp)                                                   \
  {                                                                      \
    const int32_t xv = load4(xp), wv = load4(wp);                        \
    const int32_t xe = __sxtab16(off2, xv), xo = sxtab16_ror8(off2, xv); \
    const int32_t we = __sxtb16(wv), wo = sxtb16_ror8(wv);               \
    a0 = __smlabb(xe, we, a0);                                           \
    a2 = __smlatt(xe, we, a2);                                           \
    a1 = __smlabb(xo, wo, a1);                                           \
    a3 = __smlatt(xo, wo, a3);                                           \
  }
#define DW_TAP3(xp, wp)                    \
  {                                        \
    DW_TAP(xp, wp)                         \
    DW_TAP((xp) + x_col, (wp) + w_col)     \
    DW_TAP((xp) + 2 * x_col, (wp) + 2 * w_col) \
  }
      if (cols == 3) {
        if (full3) {
          DW_TAP3(xr, wr)
          DW_TAP3(xr + x_row, wr + w_row)
          DW_TAP3(xr + 2 * x_row, wr + 2 * w_row)
        } else {
          for (r = 0; r < rows; ++r, xr += x_row, wr += w_row) DW_TAP3(xr, wr)
        }
      } else if (cols == 2) {
        for (r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
          DW_TAP(xr, wr)
          DW_TAP(xr + x_col, wr + w_col)
        }
      } else {
        for (r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
          const int8_t *xp = xr, *wp = wr;
          for (k = 0; k < cols; ++k, xp += x_col, wp += w_col) DW_TAP(xp, wp)
        }
      }
#undef DW_TAP3
#undef DW_TAP
      o[0] = edgec_requant_mode(a0, m0, s0, off, lo, hi, mode);
      o[1] = edgec_requant_mode(a1, m1, s1, off, lo, hi, mode);
      o[2] = edgec_requant_mode(a2, m2, s2, off, lo, hi, mode);
      o[3] = edgec_requant_mode(a3, m3, s3, off, lo, hi, mode);
    }
  }
}

void edgec_dw_row(const edgec_conv_params *p, const int8_t *x, const int8_t *w, int32_t rows,
                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
#if defined(EDGEC_DSP_REQUANT)
  if (p->rq_mode == 2) {
    dw_row(p, x, w, rows, bias, mult, shift, out, 2);
    return;
  }
  if (p->rq_mode == 1) {
    dw_row(p, x, w, rows, bias, mult, shift, out, 1);
    return;
  }
#endif
  dw_row(p, x, w, rows, bias, mult, shift, out, 0);
}
#else
void edgec_dw_row(const edgec_conv_params *p, const int8_t *x, const int8_t *w, int32_t rows,
                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
  const int32_t x_row = p->in_w * p->in_c * p->dil_h;
  int32_t ox, c, r, k, j;
  for (ox = 0; ox < p->out_w; ++ox) {
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    int32_t k0 = 0, k1 = p->f_w;
    while (k0 < k1 && ix0 + k0 * p->dil_w < 0) ++k0;
    while (k1 > k0 && ix0 + (k1 - 1) * p->dil_w >= p->in_w) --k1;
    for (c = 0; c < p->out_c; c += 4) {
      int32_t acc[4] = {0, 0, 0, 0};
      for (r = 0; r < rows; ++r)
        for (k = k0; k < k1; ++k) {
          const int8_t *xp = x + r * x_row + (ix0 + k * p->dil_w) * p->in_c + c;
          const int8_t *wp = w + (r * p->f_w + k) * p->out_c + c;
          for (j = 0; j < 4; ++j) acc[j] += ((int32_t)xp[j] + p->in_offset) * (int32_t)wp[j];
        }
      for (j = 0; j < 4; ++j)
        out[ox * p->out_c + c + j] = edgec_requant(acc[j] + (bias ? bias[c + j] : 0), mult[c + j],
                                                   shift[c + j], p->out_offset, p->act_min, p->act_max);
    }
  }
}
#endif

/* ---------------------------------------------------------------- convolution, 16-bit weights */

/* CONV_2D over weights the generator widened to int16 (ops.pack_conv_pairs16), four output pixels
 * at a time: the windows of the four pixels are sign-extended once into `xs` (per 4-byte word of
 * the window: the four pixels' even bytes {0, 2}, then their odd bytes {1, 3}, the SMLAD operands
 * SXTB16 makes), and every channel pair then streams its ready-made weights against them. Per half
 * word (16 multiply-accumulates) two weight words and four pixel words are loaded in two chains of
 * pipelined loads and feed 8 SMLAD: 16 cycles on the Cortex-M4 in 14 registers, against 20 for
 * two pixels with int8 weights (dot2x2_x16). Twice the weight flash of the int8 layout. */
#if defined(EDGEC_USE_DSP) && defined(__GNUC__) && defined(__OPTIMIZE__)
#define EDGEC_QUAD 1
/* Longest window (taps, a multiple of 4) edgec_conv_quad expands on the stack: 8 * 576 bytes. */
#define EDGEC_QUAD_MAX_K 576

#define QUAD_HALF                                 \
  "ldr    %[wa], [%[w]], #4\n\t"                  \
  "ldr    %[wb], [%[w]], #4\n\t"                  \
  "ldr    %[xa], [%[x]], #4\n\t"                  \
  "ldr    %[xb], [%[x]], #4\n\t"                  \
  "smlad  %[a00], %[xa], %[wa], %[a00]\n\t"       \
  "smlad  %[a01], %[xa], %[wb], %[a01]\n\t"       \
  "smlad  %[a10], %[xb], %[wa], %[a10]\n\t"       \
  "smlad  %[a11], %[xb], %[wb], %[a11]\n\t"       \
  "ldr    %[xa], [%[x]], #4\n\t"                  \
  "ldr    %[xb], [%[x]], #4\n\t"                  \
  "smlad  %[a20], %[xa], %[wa], %[a20]\n\t"       \
  "smlad  %[a21], %[xa], %[wb], %[a21]\n\t"       \
  "smlad  %[a30], %[xb], %[wa], %[a30]\n\t"       \
  "smlad  %[a31], %[xb], %[wb], %[a31]\n\t"

#define QUAD_OPERANDS                                                                             \
  : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [a20] "+r"(a20),          \
    [a21] "+r"(a21), [a30] "+r"(a30), [a31] "+r"(a31), [x] "+r"(x), [w] "+r"(w), [wa] "=&r"(wa),  \
    [wb] "=&r"(wb), [xa] "=&r"(xa), [xb] "=&r"(xb)

/* Requantize one channel's four sums into dst[0], dst[step], dst[2 * step], dst[3 * step]. For
 * rq_mode 1 and 2 the sums are doubled (the generator doubled the weights and the bias, see
 * ops.pack_conv_pairs16), so edgec_mbqm_dsp's 2 * acc is the sum itself: one SMMULR, then the
 * rounding shift, whose rounding constant also carries the output offset (out << r) when that
 * cannot overflow (r <= 22: |y| < 2^30 and 128 << 22 = 2^29). */
EDGEC_SPECIALIZE void quad_requant4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t m, int32_t s,
                                    int32_t off, int32_t lo, int32_t hi, int8_t *dst, int32_t step,
                                    const int mode) {
#if defined(EDGEC_DSP_REQUANT)
  if (mode != 0) {
    const int32_t r = -s;
    int32_t k = 1 << ~s, o = off, y0, y1, y2, y3;
    if (r <= 22) {
      k += off * (1 << r);
      o = 0;
    }
    __asm__("smmulr %0, %1, %2" : "=r"(y0) : "r"(a0), "r"(m));
    __asm__("smmulr %0, %1, %2" : "=r"(y1) : "r"(a1), "r"(m));
    __asm__("smmulr %0, %1, %2" : "=r"(y2) : "r"(a2), "r"(m));
    __asm__("smmulr %0, %1, %2" : "=r"(y3) : "r"(a3), "r"(m));
    y0 = ((y0 + (y0 >> 31) + k) >> r) + o;
    y1 = ((y1 + (y1 >> 31) + k) >> r) + o;
    y2 = ((y2 + (y2 >> 31) + k) >> r) + o;
    y3 = ((y3 + (y3 >> 31) + k) >> r) + o;
    if (mode == 2) {
      dst[0] = (int8_t)__ssat(y0, 8);
      dst[step] = (int8_t)__ssat(y1, 8);
      dst[2 * step] = (int8_t)__ssat(y2, 8);
      dst[3 * step] = (int8_t)__ssat(y3, 8);
    } else {
      dst[0] = (int8_t)edgec_clamp(y0, lo, hi);
      dst[step] = (int8_t)edgec_clamp(y1, lo, hi);
      dst[2 * step] = (int8_t)edgec_clamp(y2, lo, hi);
      dst[3 * step] = (int8_t)edgec_clamp(y3, lo, hi);
    }
    return;
  }
#endif
  dst[0] = edgec_requant(a0, m, s, off, lo, hi);
  dst[step] = edgec_requant(a1, m, s, off, lo, hi);
  dst[2 * step] = edgec_requant(a2, m, s, off, lo, hi);
  dst[3 * step] = edgec_requant(a3, m, s, off, lo, hi);
}

/* Channel pairs per pass of quad_channels: a pass's raw sums wait in 8 * 32 int32 on the stack. */
#define EDGEC_QUAD_PASS 32

/* Every output channel of the four pixels whose windows `xs` holds (k taps, a multiple of 4). Up
 * to EDGEC_QUAD_PASS channel pairs run back to back, only storing their eight sums (GCC spills
 * everything around the 14-register loop, so the requantization is kept out of it); then one loop
 * requantizes them channel by channel with that channel's constants read once for four pixels. */
EDGEC_SPECIALIZE void quad_channels(const edgec_conv_params *p, const int32_t *xs, const int16_t *filt,
                                    int32_t k, const int32_t *bias, const int32_t *mult,
                                    const int32_t *shift, const int32_t *rq, int8_t *const o[4],
                                    const int mode) {
  const int32_t off = p->out_offset, lo = p->act_min, hi = p->act_max, out_c = p->out_c;
  const int32_t groups = k >> 2, pairs = out_c >> 1;
  int8_t *const o0 = o[0], *const o1 = o[1], *const o2 = o[2], *const o3 = o[3];
  const int16_t *w = filt;
  const int32_t *const end = xs + 8 * groups;
  int32_t raw[8 * EDGEC_QUAD_PASS], first, n, i, c;
  int8_t staged[4 * 2 * EDGEC_QUAD_PASS];
#if defined(EDGEC_DSP_REQUANT)
  if (mode == 2 && rq) {
    /* The whole channel pair in one block of assembly, so that nothing is spilled around it: the
     * bias starts the eight sums, the words % 8 and the eight-word loop run, and the sums are
     * requantized from the registers (per channel its three constants of ops.conv_rq_table, then
     * per pixel SMMULR, the rounding shift with the output offset folded in, SSAT) into the
     * staging rows (pixel j at j * 2 * EDGEC_QUAD_PASS), copied out once per pass. The pointers
     * that move from pair to pair live on the stack. */
    const int32_t *bp = bias, *tp = rq;
    const int16_t *wp = filt;
    const int32_t rem = groups & 7;
    int8_t *sp8;  /* at function scope: GCC then addresses it from SP like the others */
    for (first = 0; first < pairs; first += n) {
      sp8 = staged;
      n = pairs - first < EDGEC_QUAD_PASS ? pairs - first : EDGEC_QUAD_PASS;
      for (i = 0; i < n; ++i) {
        int32_t a00, a01, a10, a11, a20, a21, a30, a31, wa, wb, xa, xb;
        const int32_t *x;
        const int16_t *w;
#define QUAD_REQ(a, o)                                 \
  "smmulr %[" #a "], %[" #a "], %[wb]\n\t"              \
  "add    %[" #a "], %[" #a "], %[" #a "], asr #31\n\t" \
  "add    %[" #a "], %[" #a "], %[xa]\n\t"              \
  "asr    %[" #a "], %[" #a "], %[xb]\n\t"              \
  "ssat   %[" #a "], #8, %[" #a "]\n\t"                 \
  "strb   %[" #a "], [%[x], #" #o "]\n\t"
        __asm__ volatile(
            "ldr    %[wa], %[bp]\n\t"
            "ldr    %[a00], [%[wa]], #4\n\t"
            "ldr    %[a01], [%[wa]], #4\n\t"
            "str    %[wa], %[bp]\n\t"
            "mov    %[a10], %[a00]\n\t"
            "mov    %[a20], %[a00]\n\t"
            "mov    %[a30], %[a00]\n\t"
            "mov    %[a11], %[a01]\n\t"
            "mov    %[a21], %[a01]\n\t"
            "mov    %[a31], %[a01]\n\t"
            "ldr    %[x], %[xs]\n\t"
            "ldr    %[w], %[wp]\n\t"
            "ldr    %[wa], %[rem]\n\t"
            "tst    %[wa], #1\n\t"
            "beq    2f\n\t"
            QUAD_HALF QUAD_HALF
            "ldr    %[wa], %[rem]\n"
            "2:\n\t"
            "tst    %[wa], #2\n\t"
            "beq    3f\n\t"
            QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
            "ldr    %[wa], %[rem]\n"
            "3:\n\t"
            "tst    %[wa], #4\n\t"
            "beq    4f\n\t"
            QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
            "4:\n\t"
            "ldr    %[wa], %[end]\n\t"
            "cmp    %[x], %[wa]\n\t"
            "beq    6f\n"
            "5:\n\t"
            QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
            QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
            "ldr    %[wa], %[end]\n\t"
            "cmp    %[x], %[wa]\n\t"
            "bne    5b\n"
            "6:\n\t"
            "str    %[w], %[wp]"
            : [a00] "=&r"(a00), [a01] "=&r"(a01), [a10] "=&r"(a10), [a11] "=&r"(a11), [a20] "=&r"(a20),
              [a21] "=&r"(a21), [a30] "=&r"(a30), [a31] "=&r"(a31), [x] "=&r"(x), [w] "=&r"(w),
              [wa] "=&r"(wa), [wb] "=&r"(wb), [xa] "=&r"(xa), [xb] "=&r"(xb), [bp] "+m"(bp), [wp] "+m"(wp)
            : [xs] "m"(xs), [end] "m"(end), [rem] "m"(rem)
            : "cc", "memory");
        /* 13 registers: GCC keeps one for the address of the staging pointer */
        __asm__ volatile(
            "ldr    %[wa], %[tp]\n\t"
            "ldr    %[x], %[sp8]\n\t"
            "ldr    %[wb], [%[wa]], #4\n\t"
            "ldr    %[xa], [%[wa]], #4\n\t"
            "ldr    %[xb], [%[wa]], #4\n\t"
            QUAD_REQ(a00, 0) QUAD_REQ(a10, 64) QUAD_REQ(a20, 128) QUAD_REQ(a30, 192)
            "ldr    %[wb], [%[wa]], #4\n\t"
            "ldr    %[xa], [%[wa]], #4\n\t"
            "ldr    %[xb], [%[wa]], #4\n\t"
            QUAD_REQ(a01, 1) QUAD_REQ(a11, 65) QUAD_REQ(a21, 129) QUAD_REQ(a31, 193)
            "str    %[wa], %[tp]\n\t"
            "add    %[x], %[x], #2\n\t"
            "str    %[x], %[sp8]"
            : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [a20] "+r"(a20),
              [a21] "+r"(a21), [a30] "+r"(a30), [a31] "+r"(a31), [x] "=&r"(x), [wa] "=&r"(wa),
              [wb] "=&r"(wb), [xa] "=&r"(xa), [xb] "=&r"(xb), [tp] "+m"(tp), [sp8] "+m"(sp8)
            :
            : "memory");
#undef QUAD_REQ
      }
      memcpy(o0 + 2 * first, staged, (size_t)(2 * n));
      memcpy(o1 + 2 * first, staged + 2 * EDGEC_QUAD_PASS, (size_t)(2 * n));
      memcpy(o2 + 2 * first, staged + 4 * EDGEC_QUAD_PASS, (size_t)(2 * n));
      memcpy(o3 + 2 * first, staged + 6 * EDGEC_QUAD_PASS, (size_t)(2 * n));
    }
    w = wp;
    c = 2 * pairs;
    goto odd;
  }
#endif
  for (first = 0; first < pairs; first += n) {
    const int32_t *r = raw;
    n = pairs - first < EDGEC_QUAD_PASS ? pairs - first : EDGEC_QUAD_PASS;
    for (i = 0; i < n; ++i) {
      int32_t a00 = bias[2 * (first + i)], a01 = bias[2 * (first + i) + 1], a10 = a00, a11 = a01,
              a20 = a00, a21 = a01, a30 = a00, a31 = a01, wa, wb, xa, xb;
      const int32_t *x = xs;
      int32_t *acc = raw + 8 * i;
      /* groups % 8 first, then eight groups (sixteen halves, 256 multiply-accumulates) per
       * iteration; the loop's end is read from the stack (all 14 registers are operands). */
      if (groups & 1)
        __asm__(QUAD_HALF QUAD_HALF QUAD_OPERANDS : : "memory");
      if (groups & 2)
        __asm__(QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_OPERANDS : : "memory");
      if (groups & 4)
        __asm__(QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
                QUAD_OPERANDS : : "memory");
      if (x != end)
        __asm__("1:\n\t" QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
                QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF QUAD_HALF
                "ldr    %[wa], %[end]\n\t"
                "cmp    %[x], %[wa]\n\t"
                "bne    1b"
                QUAD_OPERANDS
                : [end] "m"(end)
                : "cc", "memory");
      acc[0] = a00; acc[1] = a10; acc[2] = a20; acc[3] = a30;
      acc[4] = a01; acc[5] = a11; acc[6] = a21; acc[7] = a31;
    }
    /* raw per pair: the first channel's four pixels, then the second's. The outputs wait in
     * `staged` (pixel after pixel) so that the loop holds no output pointer per pixel. */
    {
      const int32_t count = 2 * n;
#if defined(EDGEC_DSP_REQUANT)
      if (mode != 0 && rq) {  /* the generator's constants (ops.conv_rq_table) */
        int8_t *const p0 = o0 + 2 * first, *const p1 = o1 + 2 * first, *const p2 = o2 + 2 * first,
               *const p3 = o3 + 2 * first;
        const int32_t *t = rq + 3 * 2 * first;
        for (c = 0; c < count; ++c, r += 4, t += 3) {
          const int32_t m = t[0], kr = t[1], sr = t[2];
          int32_t y0 = r[0], y1 = r[1], y2 = r[2], y3 = r[3];  /* one chain of pipelined loads */
          __asm__("smmulr %0, %0, %1" : "+r"(y0) : "r"(m));
          __asm__("smmulr %0, %0, %1" : "+r"(y1) : "r"(m));
          __asm__("smmulr %0, %0, %1" : "+r"(y2) : "r"(m));
          __asm__("smmulr %0, %0, %1" : "+r"(y3) : "r"(m));
          y0 = edgec_ssat8((y0 + (y0 >> 31) + kr) >> sr);
          y1 = edgec_ssat8((y1 + (y1 >> 31) + kr) >> sr);
          y2 = edgec_ssat8((y2 + (y2 >> 31) + kr) >> sr);
          y3 = edgec_ssat8((y3 + (y3 >> 31) + kr) >> sr);
          if (mode == 1) {
            y0 = edgec_clamp(y0, lo, hi);
            y1 = edgec_clamp(y1, lo, hi);
            y2 = edgec_clamp(y2, lo, hi);
            y3 = edgec_clamp(y3, lo, hi);
          }
          p0[c] = (int8_t)y0;
          p1[c] = (int8_t)y1;
          p2[c] = (int8_t)y2;
          p3[c] = (int8_t)y3;
        }
        continue;  /* written in place: nothing staged */
      }
#endif
      for (c = 0; c < count; ++c, r += 4)
        quad_requant4(r[0], r[1], r[2], r[3], mult[2 * first + c], shift[2 * first + c], off, lo, hi,
                      staged + c, 2 * EDGEC_QUAD_PASS, mode);
      memcpy(o0 + 2 * first, staged, (size_t)count);
      memcpy(o1 + 2 * first, staged + 2 * EDGEC_QUAD_PASS, (size_t)count);
      memcpy(o2 + 2 * first, staged + 4 * EDGEC_QUAD_PASS, (size_t)count);
      memcpy(o3 + 2 * first, staged + 6 * EDGEC_QUAD_PASS, (size_t)count);
    }
  }
  c = 2 * pairs;
  w = filt + 2 * pairs * k;
#if defined(EDGEC_DSP_REQUANT)
odd:
#endif
  if (c < out_c) {  /* an odd last channel: per word its even weights, then its odd ones */
    int32_t a0 = bias[c], a1 = a0, a2 = a0, a3 = a0, g;
    const int32_t *x = xs;
    for (g = 0; g < groups; ++g, x += 8, w += 4) {
      int32_t we, wo;
      memcpy(&we, w, 4);
      memcpy(&wo, w + 2, 4);
      a0 = __smlad(x[4], wo, __smlad(x[0], we, a0));
      a1 = __smlad(x[5], wo, __smlad(x[1], we, a1));
      a2 = __smlad(x[6], wo, __smlad(x[2], we, a2));
      a3 = __smlad(x[7], wo, __smlad(x[3], we, a3));
    }
    {
      int8_t out4[4];
      quad_requant4(a0, a1, a2, a3, mult[c], shift[c], off, lo, hi, out4, 1, mode);
      o0[c] = out4[0];
      o1[c] = out4[1];
      o2[c] = out4[2];
      o3[c] = out4[3];
    }
  }
}
#undef QUAD_OPERANDS
#undef QUAD_HALF

/* quad_channels per requantization path, each its own function: its stack frame stays small, so
 * the loop's end (an "m" operand, all registers being taken) is within reach of SP; the window
 * buffer lives in the caller's frame. */
#define QUAD_CHANNELS_MODE(m)                                                                       \
  static __attribute__((noinline)) void quad_channels##m(                                          \
      const edgec_conv_params *p, const int32_t *xs, const int16_t *filt, int32_t k,               \
      const int32_t *bias, const int32_t *mult, const int32_t *shift, const int32_t *rq,           \
      int8_t *const o[4]) {                                                                        \
    quad_channels(p, xs, filt, k, bias, mult, shift, rq, o, m);                                    \
  }
QUAD_CHANNELS_MODE(0)
#if defined(EDGEC_DSP_REQUANT)
QUAD_CHANNELS_MODE(1)
QUAD_CHANNELS_MODE(2)
#endif
#undef QUAD_CHANNELS_MODE

/* Sign-extend `words` words of `src` into the quad layout at `dst` (one pixel's slot). */
static inline int32_t *quad_words(const int8_t *src, int32_t words, int32_t *dst) {
  for (; words >= 4; words -= 4, src += 16, dst += 32) {  /* a chain of four pipelined loads */
    const int32_t v0 = load4(src), v1 = load4(src + 4), v2 = load4(src + 8), v3 = load4(src + 12);
    dst[0] = __sxtb16(v0);
    dst[4] = sxtb16_ror8(v0);
    dst[8] = __sxtb16(v1);
    dst[12] = sxtb16_ror8(v1);
    dst[16] = __sxtb16(v2);
    dst[20] = sxtb16_ror8(v2);
    dst[24] = __sxtb16(v3);
    dst[28] = sxtb16_ror8(v3);
  }
  for (; words > 0; --words, src += 4, dst += 8) {
    const int32_t v = load4(src);
    dst[0] = __sxtb16(v);
    dst[4] = sxtb16_ror8(v);
  }
  return dst;
}

/* The window of output pixel q of `image` (in_c a multiple of 4) into its slot of the quad layout;
 * taps in the padding read as the input zero point (the folded bias cancels them, see conv_patch). */
static void quad_window(const edgec_conv_params *p, const int8_t *image, int32_t q, int32_t *dst) {
  const int32_t in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, f_h = p->f_h, f_w = p->f_w;
  const int32_t iy0 = q / p->out_w * p->stride_h - p->pad_h, ix0 = q % p->out_w * p->stride_w - p->pad_w;
  const uint32_t zp = (uint8_t)(-p->in_offset) * 0x01010101u;
  const int32_t ze = __sxtb16((int32_t)zp), zo = sxtb16_ror8((int32_t)zp), words = in_c >> 2;
  const int rows_inside = p->dil_w == 1 && ix0 >= 0 && ix0 + f_w <= in_w;
  int32_t ky, kx, i;
  for (ky = 0; ky < f_h; ++ky) {
    const int32_t y = iy0 + ky * p->dil_h;
    if (y >= 0 && y < in_h && rows_inside) {
      dst = quad_words(image + (y * in_w + ix0) * in_c, f_w * words, dst);
      continue;
    }
    for (kx = 0; kx < f_w; ++kx) {
      const int32_t xx = ix0 + kx * p->dil_w;
      if (y >= 0 && y < in_h && xx >= 0 && xx < in_w) {
        dst = quad_words(image + (y * in_w + xx) * in_c, words, dst);
      } else {
        for (i = 0; i < words; ++i, dst += 8) {
          dst[0] = ze;
          dst[4] = zo;
        }
      }
    }
  }
}

int edgec_conv_quad(const edgec_conv_params *p, const int8_t *in, int32_t b, const int32_t q[4],
                    const int16_t *filt, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                    const int32_t *rq, int8_t *const o[4], int8_t *scratch) {
  const int32_t taps = p->f_h * p->f_w * p->in_c, k = (taps + 3) & ~3;
  int32_t xs[2 * EDGEC_QUAD_MAX_K], j;
  if (k > EDGEC_QUAD_MAX_K) return 0;
  if ((p->in_c & 3) == 0) {
    const int8_t *const image = in + b * p->in_h * p->in_w * p->in_c;
    for (j = 0; j < 4; ++j) quad_window(p, image, q[j], xs + j);
  } else {
    /* Taps that straddle words. Window rows that are whole words (f_w * in_c % 4 == 0, e.g. KWS's
     * 10x4 first layer over one channel) and lie inside the input come straight from it (rows
     * above or below read as the zero point); other windows go through im2col, zero-padded to k. */
    const int32_t run = p->f_w * p->in_c;
    const uint32_t zp = (uint8_t)(-p->in_offset) * 0x01010101u;
    const int32_t ze = __sxtb16((int32_t)zp), zo = sxtb16_ror8((int32_t)zp);
    for (j = 0; j < 4; ++j) {
      const int32_t iy0 = q[j] / p->out_w * p->stride_h - p->pad_h;
      const int32_t ix0 = q[j] % p->out_w * p->stride_w - p->pad_w;
      if ((run & 3) == 0 && p->dil_w == 1 && ix0 >= 0 && ix0 + p->f_w <= p->in_w) {
        const int8_t *const image = in + b * p->in_h * p->in_w * p->in_c;
        int32_t *dst = xs + j, ky, i;
        for (ky = 0; ky < p->f_h; ++ky) {
          const int32_t y = iy0 + ky * p->dil_h;
          if (y >= 0 && y < p->in_h) {
            dst = quad_words(image + (y * p->in_w + ix0) * p->in_c, run >> 2, dst);
          } else {
            for (i = 0; i < run >> 2; ++i, dst += 8) {
              dst[0] = ze;
              dst[4] = zo;
            }
          }
        }
      } else {
        quad_words(edgec_conv_patch(p, in, b, q[j], scratch), k >> 2, xs + j);
      }
    }
  }
#if defined(EDGEC_DSP_REQUANT)
  if (p->rq_mode == 2) {
    quad_channels2(p, xs, filt, k, bias, mult, shift, rq, o);
    return 1;
  }
  if (p->rq_mode == 1) {
    quad_channels1(p, xs, filt, k, bias, mult, shift, rq, o);
    return 1;
  }
#endif
  quad_channels0(p, xs, filt, k, bias, mult, shift, rq, o);
  return 1;
}
#else
int edgec_conv_quad(const edgec_conv_params *p, const int8_t *in, int32_t b, const int32_t q[4],
                    const int16_t *filt, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                    const int32_t *rq, int8_t *const o[4], int8_t *scratch) {
  (void)p; (void)in; (void)b; (void)q; (void)filt; (void)bias; (void)mult; (void)shift; (void)rq;
  (void)o; (void)scratch;
  return 0;
}
#endif

/* ---------------------------------------------------------------- average pooling */

/* AVERAGE_POOL_2D with channels % 4 == 0 and windows of at most 256 pixels: four channels at a
 * time, summed in the 16-bit halves of two registers (SXTAB16: |sum| <= 256 * 128 fits), then the
 * reference's rounding division per channel. 1 when done, 0 when not applicable. */
int edgec_avgpool_fast(const edgec_pool_params *p, const int8_t *in, int8_t *out) {
#if defined(EDGEC_HAVE_DSP)
  const int32_t ch = p->channels;
  int32_t b, oy, ox, c, fy, fx;
  if ((ch & 3) || p->f_h * p->f_w > 256) return 0;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t iy = oy * p->stride_h - p->pad_h, ix = ox * p->stride_w - p->pad_w;
        const int32_t y0 = iy < 0 ? 0 : iy, y1 = iy + p->f_h < p->in_h ? iy + p->f_h : p->in_h;
        const int32_t x0 = ix < 0 ? 0 : ix, x1 = ix + p->f_w < p->in_w ? ix + p->f_w : p->in_w;
        int32_t count = (y1 - y0) * (x1 - x0);
        if (count <= 0) count = 1;  /* the reference rejects empty windows; never generated */
        for (c = 0; c < ch; c += 4) {
          int32_t se = 0, so = 0, j;
          for (fy = y0; fy < y1; ++fy) {
            const int8_t *px = in + ((b * p->in_h + fy) * p->in_w + x0) * ch + c;
            for (fx = x0; fx < x1; ++fx, px += ch) {
              const int32_t v = load4(px);
              se = __sxtab16(se, v);
              so = sxtab16_ror8(so, v);
            }
          }
          for (j = 0; j < 4; ++j) {
            const int32_t half = (j & 1) ? so : se;
            int32_t acc = (j & 2) ? half >> 16 : (int32_t)(int16_t)half;
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
            *out++ = (int8_t)edgec_clamp(acc, p->act_min, p->act_max);
          }
        }
      }
  return 1;
#else
  (void)p; (void)in; (void)out;
  return 0;
#endif
}
