/* DEPTHWISE_CONV_2D 3x3, stride 1, dilation 1, depth multiplier 1, channels % 4 == 0, on cores
 * with the DSP extension (Cortex-M4/M7/M33): edgec_depthwise_s8_w16's row kernel.
 *
 * Weights: per output channel one block of 10 words (ops.pack_dw3x3): for each filter row r the
 * pairs WA_r = {w[r][0], w[r][1]} and WB_r = {w[r][1], w[r][2]} as int16 halves, then the bias and
 * the requantization constants m, k, r of ops.conv_rq_table; weights and bias doubled for the
 * requantization's 2 * acc.
 *
 * Input: each input row is sign-extended once, with the input offset added, into one of three
 * slots of the scratch (row iy in slot iy mod 3; rows outside the input as zeros), as pairs of
 * padded columns P[j] = {x[2j], x[2j+1]} (padding columns 0) per channel: per group of four
 * channels, per pair j, per slot, the four channels' words (word 12 * j + 4 * slot + channel % 4
 * of the group's 12 * np, np = ceil((out_w + 2) / 2) pairs). With taps in pairs a dual 16-bit
 * multiply-accumulate (SMLAD) does two: output pixel 2i takes P[i] . WA + P[i+1].lo * w2, pixel
 * 2i+1 P[i].hi * w0 + P[i+1] . WB.
 *
 * The row loop (assembly, edgec_dw3x3_v<v>m<mode>) runs channel by channel, four output pixels at
 * a time: per filter row three pixel words and two weight words feed 8 multiply-accumulate
 * instructions (12 MACs) in 15 cycles on the Cortex-M4, then the four sums are requantized from
 * registers with the channel's constants, about 8 cycles an output. A row of 4q + 1 pixels ends
 * in one block of five (rq_mode 2, where r12 is free), others in one to three. The slot of filter
 * row r rotates with the output row (v = (oy - pad_h) mod 3, slot (v + r) mod 3); one copy of the
 * loop per rotation and requantization path keeps every offset an immediate. */
#include "edgec_kernels.h"

#include <string.h>

#if !defined(EDGEC_PORTABLE) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__) && \
    !(defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1))
#include <arm_acle.h>

/* The row loop's arguments (offsets fixed: the assembly reads them). */
typedef struct {
  const int32_t *x;   /*  0: expanded rows, channel 0, pair 0, slot 0 */
  const int32_t *blk; /*  4: channel 0's block of 10 words */
  int8_t *out;        /*  8: output row, pixel 0, channel 0 */
  int32_t out_c;      /* 12: bytes between output pixels */
  int32_t quads;      /* 16: out_w / 4 */
  int32_t tail;       /* 20: out_w % 4, or 5: the last quad and one pixel as one block (mode 2) */
  int32_t channels;   /* 24 */
  int32_t x_skip;     /* 28: bytes from x after a channel's quads to the next channel's pairs */
  int32_t lo, hi;     /* 32, 36: activation bounds (mode 1) */
  int32_t x_group;    /* 40: the same to the next group's first channel */
  int32_t o_skip;     /* 44: bytes from the output pointer after a channel to the next one's */
} dw3x3_args;

/* Register use: r0 x, r1 out, r2 block, r3 out_c, r4-r7 the four sums (r12 a fifth in mode 2),
 * r8 r9 pixel words, r10 a weight word (while requantizing r8 m, r9 k then a store address, r10
 * the shift), r11 quads left, r12 lr the bounds (mode 1). */
__asm__(
    ".syntax unified\n"
    ".thumb\n"
    /* Four pixels' multiplies by WA (r10) of pixel words P[i] (r8) and P[i+1] (r9); with `first`
     * the sums start from the bias in register `bias`. */
    ".macro DW3_WA4 first, bias\n"
    "  .if \\first\n"
    "  smlad  r4, r8, r10, \\bias\n"
    "  smlatb r5, r8, r10, \\bias\n"
    "  smlad  r6, r9, r10, \\bias\n"
    "  smlatb r7, r9, r10, \\bias\n"
    "  .else\n"
    "  smlad  r4, r8, r10, r4\n"
    "  smlatb r5, r8, r10, r5\n"
    "  smlad  r6, r9, r10, r6\n"
    "  smlatb r7, r9, r10, r7\n"
    "  .endif\n"
    ".endm\n"
    /* Four pixels' multiplies by WB (r10) of P[i+1] (r9) and P[i+2] (r8). */
    ".macro DW3_WB4\n"
    "  smlabt r4, r9, r10, r4\n"
    "  smlad  r5, r9, r10, r5\n"
    "  smlabt r6, r8, r10, r6\n"
    "  smlad  r7, r8, r10, r7\n"
    ".endm\n"
    /* Filter row r (slot s) for four pixels; `first`: the sums start from the bias (in r7). */
    ".macro DW3_QSLOT s, r, first\n"
    "  .if \\first\n"
    "  ldr    r7, [r2, #24]\n"
    "  .endif\n"
    "  ldr    r8, [r0, #(16 * \\s)]\n"
    "  ldr    r9, [r0, #(48 + 16 * \\s)]\n"
    "  ldr    r10, [r2, #(8 * \\r)]\n"
    "  DW3_WA4 \\first, r7\n"
    "  ldr    r10, [r2, #(8 * \\r + 4)]\n"
    "  ldr    r8, [r0, #(96 + 16 * \\s)]\n"
    "  DW3_WB4\n"
    ".endm\n"
    /* Filter row r (slot s) for two pixels (sums r4 r5; the bias in r5 when `first`). */
    ".macro DW3_PSLOT s, r, first\n"
    "  .if \\first\n"
    "  ldr    r5, [r2, #24]\n"
    "  .endif\n"
    "  ldr    r8, [r0, #(16 * \\s)]\n"
    "  ldr    r9, [r0, #(48 + 16 * \\s)]\n"
    "  ldr    r10, [r2, #(8 * \\r)]\n"
    "  .if \\first\n"
    "  smlad  r4, r8, r10, r5\n"
    "  smlatb r5, r8, r10, r5\n"
    "  .else\n"
    "  smlad  r4, r8, r10, r4\n"
    "  smlatb r5, r8, r10, r5\n"
    "  .endif\n"
    "  ldr    r10, [r2, #(8 * \\r + 4)]\n"
    "  smlabt r4, r9, r10, r4\n"
    "  smlad  r5, r9, r10, r5\n"
    ".endm\n"
    /* Filter row r (slot s) for one pixel (sum r4, from the bias when `first`). */
    ".macro DW3_SSLOT s, r, first\n"
    "  .if \\first\n"
    "  ldr    r4, [r2, #24]\n"
    "  .endif\n"
    "  ldr    r8, [r0, #(16 * \\s)]\n"
    "  ldr    r9, [r0, #(48 + 16 * \\s)]\n"
    "  ldr    r10, [r2, #(8 * \\r)]\n"
    "  smlad  r4, r8, r10, r4\n"
    "  ldr    r10, [r2, #(8 * \\r + 4)]\n"
    "  smlabt r4, r9, r10, r4\n"
    ".endm\n"
    /* Requantize sum register `a` with m r8, k r9, shift r10; clamp to [r12, lr] in mode 1. */
    ".macro DW3_RQ a, mode\n"
    "  add    \\a, \\a, \\a, asr #31\n"
    "  add    \\a, \\a, r9\n"
    "  asr    \\a, \\a, r10\n"
    "  ssat   \\a, #8, \\a\n"
    "  .if \\mode == 1\n"
    "  cmp    \\a, r12\n"
    "  it     lt\n"
    "  movlt  \\a, r12\n"
    "  cmp    \\a, lr\n"
    "  it     gt\n"
    "  movgt  \\a, lr\n"
    "  .endif\n"
    ".endm\n"
    ".macro DW3_CONSTS\n"
    "  ldr    r8, [r2, #28]\n"
    "  ldr    r9, [r2, #32]\n"
    "  ldr    r10, [r2, #36]\n"
    ".endm\n"
    /* Filter row r (slot s) for five pixels (sums r4-r7 and r12; the bias in r12 when `first`). */
    ".macro DW3_VSLOT s, r, first\n"
    "  .if \\first\n"
    "  ldr    r12, [r2, #24]\n"
    "  .endif\n"
    "  ldr    r8, [r0, #(16 * \\s)]\n"
    "  ldr    r9, [r0, #(48 + 16 * \\s)]\n"
    "  ldr    r10, [r2, #(8 * \\r)]\n"
    "  DW3_WA4 \\first, r12\n"
    "  ldr    r8, [r0, #(96 + 16 * \\s)]\n"
    "  smlad  r12, r8, r10, r12\n"
    "  ldr    r10, [r2, #(8 * \\r + 4)]\n"
    "  DW3_WB4\n"
    "  ldr    r9, [r0, #(144 + 16 * \\s)]\n"
    "  smlabt r12, r9, r10, r12\n"
    ".endm\n"
    /* The whole function for rotation v and requantization mode. Stack: [sp] bytes from the output
     * pointer after a channel to the next channel's first output, [sp, #4] channels left, [sp, #8]
     * x_skip, [sp, #12] quads, [sp, #16] the address of the code for the last pixels, [sp, #20]
     * x_group. */
    ".macro DW3_FN name, v, mode\n"
    "  .section .text.\\name,\"ax\",%progbits\n"
    "  .global \\name\n"
    "  .type   \\name, %function\n"
    "  .thumb_func\n"
    "  .p2align 2\n"
    "\\name:\n"
    "  push   {r4-r11, lr}\n"
    "  sub    sp, sp, #24\n"
    "  ldr    r1, [r0, #24]\n"
    "  str    r1, [sp, #4]\n"
    "  ldr    r1, [r0, #28]\n"
    "  str    r1, [sp, #8]\n"
    "  ldr    r1, [r0, #16]\n"
    "  str    r1, [sp, #12]\n"
    "  ldr    r1, [r0, #40]\n"
    "  str    r1, [sp, #20]\n"
    "  ldr    r1, [r0, #44]\n"
    "  str    r1, [sp, #0]\n"
    "  ldr    r1, [r0, #20]\n"
    "  adr    r8, 4f\n"
    "  cmp    r1, #1\n"
    "  bne    11f\n"
    "  adr    r8, 5f\n"
    "11:\n"
    "  cmp    r1, #2\n"
    "  bne    12f\n"
    "  adr    r8, 6f\n"
    "12:\n"
    "  cmp    r1, #3\n"
    "  bne    13f\n"
    "  adr    r8, 7f\n"
    "13:\n"
    "  .if \\mode == 2\n"
    "  cmp    r1, #5\n"
    "  bne    14f\n"
    "  adr    r8, 9f\n"
    "14:\n"
    "  .endif\n"
    "  orr    r8, r8, #1\n"
    "  str    r8, [sp, #16]\n"
    "  .if \\mode == 1\n"
    "  ldr    r12, [r0, #32]\n"
    "  ldr    lr, [r0, #36]\n"
    "  .endif\n"
    "  ldr    r3, [r0, #12]\n"
    "  ldr    r2, [r0, #4]\n"
    "  ldr    r1, [r0, #8]\n"
    "  ldr    r0, [r0, #0]\n"
    "1:\n" /* a channel: its quads, then the code for the last pixels */
    "  ldr    r11, [sp, #12]\n"
    "  cmp    r11, #0\n"
    "  bne    2f\n"
    "  ldr    pc, [sp, #16]\n"
    "2:\n" /* four pixels */
    "  DW3_QSLOT 0, ((3 - \\v) % 3), 1\n"
    "  DW3_QSLOT 1, ((4 - \\v) % 3), 0\n"
    "  DW3_QSLOT 2, ((5 - \\v) % 3), 0\n"
    "  DW3_CONSTS\n"
    "  add    r0, r0, #96\n"
    "  smmulr r4, r4, r8\n"
    "  smmulr r5, r5, r8\n"
    "  smmulr r6, r6, r8\n"
    "  smmulr r7, r7, r8\n"
    "  DW3_RQ r4, \\mode\n"
    "  DW3_RQ r5, \\mode\n"
    "  DW3_RQ r6, \\mode\n"
    "  DW3_RQ r7, \\mode\n"
    "  add    r9, r1, r3, lsl #1\n"
    "  strb   r4, [r1]\n"
    "  strb   r5, [r1, r3]\n"
    "  strb   r6, [r9]\n"
    "  strb   r7, [r9, r3]\n"
    "  add    r1, r9, r3, lsl #1\n"
    "  subs   r11, r11, #1\n"
    "  bne    2b\n"
    "  ldr    pc, [sp, #16]\n"
    "4:\n" /* next channel: the next word of the group, or the next group's first */
    "  ldr    r8, [sp, #0]\n"
    "  ldr    r9, [sp, #4]\n"
    "  add    r1, r1, r8\n"
    "  add    r2, r2, #40\n"
    "  subs   r9, r9, #1\n"
    "  beq    8f\n"
    "  str    r9, [sp, #4]\n"
    "  tst    r9, #3\n"
    "  ite    eq\n"
    "  ldreq  r8, [sp, #20]\n"
    "  ldrne  r8, [sp, #8]\n"
    "  add    r0, r0, r8\n"
    "  b      1b\n"
    "8:\n"
    "  add    sp, sp, #24\n"
    "  pop    {r4-r11, pc}\n"
    "5:\n" /* one pixel */
    "  DW3_SSLOT 0, ((3 - \\v) % 3), 1\n"
    "  DW3_SSLOT 1, ((4 - \\v) % 3), 0\n"
    "  DW3_SSLOT 2, ((5 - \\v) % 3), 0\n"
    "  DW3_CONSTS\n"
    "  smmulr r4, r4, r8\n"
    "  DW3_RQ r4, \\mode\n"
    "  strb   r4, [r1]\n"
    "  b      4b\n"
    "6:\n" /* two pixels */
    "  DW3_PSLOT 0, ((3 - \\v) % 3), 1\n"
    "  DW3_PSLOT 1, ((4 - \\v) % 3), 0\n"
    "  DW3_PSLOT 2, ((5 - \\v) % 3), 0\n"
    "  DW3_CONSTS\n"
    "  smmulr r4, r4, r8\n"
    "  smmulr r5, r5, r8\n"
    "  DW3_RQ r4, \\mode\n"
    "  DW3_RQ r5, \\mode\n"
    "  strb   r4, [r1]\n"
    "  strb   r5, [r1, r3]\n"
    "  b      4b\n"
    "7:\n" /* three pixels: the four-pixel sums, three stored */
    "  DW3_QSLOT 0, ((3 - \\v) % 3), 1\n"
    "  DW3_QSLOT 1, ((4 - \\v) % 3), 0\n"
    "  DW3_QSLOT 2, ((5 - \\v) % 3), 0\n"
    "  DW3_CONSTS\n"
    "  smmulr r4, r4, r8\n"
    "  smmulr r5, r5, r8\n"
    "  smmulr r6, r6, r8\n"
    "  DW3_RQ r4, \\mode\n"
    "  DW3_RQ r5, \\mode\n"
    "  DW3_RQ r6, \\mode\n"
    "  add    r9, r1, r3, lsl #1\n"
    "  strb   r4, [r1]\n"
    "  strb   r5, [r1, r3]\n"
    "  strb   r6, [r9]\n"
    "  b      4b\n"
    "  .if \\mode == 2\n"
    "9:\n" /* five pixels (the last quad and one more; mode 2 only: r12 is free) */
    "  DW3_VSLOT 0, ((3 - \\v) % 3), 1\n"
    "  DW3_VSLOT 1, ((4 - \\v) % 3), 0\n"
    "  DW3_VSLOT 2, ((5 - \\v) % 3), 0\n"
    "  DW3_CONSTS\n"
    "  smmulr r4, r4, r8\n"
    "  smmulr r5, r5, r8\n"
    "  smmulr r6, r6, r8\n"
    "  smmulr r7, r7, r8\n"
    "  smmulr r12, r12, r8\n"
    "  DW3_RQ r4, \\mode\n"
    "  DW3_RQ r5, \\mode\n"
    "  DW3_RQ r6, \\mode\n"
    "  DW3_RQ r7, \\mode\n"
    "  DW3_RQ r12, \\mode\n"
    "  add    r9, r1, r3, lsl #1\n"
    "  strb   r4, [r1]\n"
    "  strb   r5, [r1, r3]\n"
    "  strb   r6, [r9]\n"
    "  strb   r7, [r9, r3]\n"
    "  add    r9, r9, r3, lsl #1\n"
    "  strb   r12, [r9]\n"
    "  b      4b\n"
    "  .endif\n"
    "  .size  \\name, . - \\name\n"
    ".endm\n"
    "DW3_FN edgec_dw3x3_v0m1, 0, 1\n"
    "DW3_FN edgec_dw3x3_v1m1, 1, 1\n"
    "DW3_FN edgec_dw3x3_v2m1, 2, 1\n"
    "DW3_FN edgec_dw3x3_v0m2, 0, 2\n"
    "DW3_FN edgec_dw3x3_v1m2, 1, 2\n"
    "DW3_FN edgec_dw3x3_v2m2, 2, 2\n"
    ".purgem DW3_FN\n"
    ".purgem DW3_CONSTS\n"
    ".purgem DW3_RQ\n"
    ".purgem DW3_SSLOT\n"
    ".purgem DW3_PSLOT\n"
    ".purgem DW3_QSLOT\n"
    ".purgem DW3_WB4\n"
    ".purgem DW3_WA4\n"
    ".purgem DW3_VSLOT\n"
    ".text\n");

void edgec_dw3x3_v0m1(const dw3x3_args *a);
void edgec_dw3x3_v1m1(const dw3x3_args *a);
void edgec_dw3x3_v2m1(const dw3x3_args *a);
void edgec_dw3x3_v0m2(const dw3x3_args *a);
void edgec_dw3x3_v1m2(const dw3x3_args *a);
void edgec_dw3x3_v2m2(const dw3x3_args *a);

static inline int32_t load4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4); /* unaligned-safe; one LDR on Cortex-M */
  return v;
}

/* SXTAB16 of the word rotated by 8: bytes 1 and 3, each plus the offset's half. */
static inline int32_t sxtab16_ror8(int32_t a, int32_t v) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
  return r;
}

/* {lo's low half, hi's low half} and {lo's high half, hi's high half}: one PKHBT / PKHTB each. */
static inline int32_t pack_low(int32_t lo, int32_t hi) {
  int32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
static inline int32_t pack_high(int32_t lo, int32_t hi) {
  int32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(hi), "r"(lo));
  return r;
}

/* Input row iy, offset added, into its slot (iy mod 3) of `x`: per group of four channels (12 * np
 * words) and pair of padded columns j, the slot's four words (one per channel) at word
 * 12 * j + 4 * slot. Rows outside the input become zeros. Pairs of padding columns only are
 * skipped: zero since the first row (edgec_dw3x3_row clears the scratch then). */
static void dw3x3_expand(const edgec_conv_params *p, const int8_t *in, int32_t iy, int32_t np, int32_t *x) {
  const int32_t off2 = (int32_t)(((uint32_t)(uint16_t)p->in_offset << 16) | (uint16_t)p->in_offset);
  const int32_t in_c = p->in_c, in_w = p->in_w, groups = in_c >> 2, gw = 12 * np;
  const int outside = iy < 0 || iy >= p->in_h;
  const int8_t *row = in + (outside ? 0 : iy) * in_w * in_c;
  int32_t j, g;
  for (j = 0; j < np; ++j) {
    const int32_t ia = 2 * j - p->pad_w, ib = ia + 1;
    const int va = ia >= 0 && ia < in_w, vb = ib >= 0 && ib < in_w;
    const int8_t *pa = va ? row + ia * in_c : row, *pb = vb ? row + ib * in_c : row;
    int32_t *d = x + 4 * ((iy + 3) % 3) + 12 * j;
    if (!va && !vb) continue;
    if (outside) {
      for (g = 0; g < groups; ++g, d += gw) d[0] = d[1] = d[2] = d[3] = 0;
    } else if (va && vb) {
      for (g = 0; g < groups; ++g, pa += 4, pb += 4, d += gw) {
        const int32_t a = load4(pa), b = load4(pb);
        const int32_t a02 = __sxtab16(off2, a), a13 = sxtab16_ror8(off2, a);
        const int32_t b02 = __sxtab16(off2, b), b13 = sxtab16_ror8(off2, b);
        d[0] = pack_low(a02, b02);
        d[1] = pack_low(a13, b13);
        d[2] = pack_high(a02, b02);
        d[3] = pack_high(a13, b13);
      }
    } else if (va) { /* the pair's odd column is padding */
      for (g = 0; g < groups; ++g, pa += 4, d += gw) {
        const int32_t a = load4(pa);
        const uint32_t a02 = (uint32_t)__sxtab16(off2, a), a13 = (uint32_t)sxtab16_ror8(off2, a);
        d[0] = (int32_t)(a02 & 0xFFFFu);
        d[1] = (int32_t)(a13 & 0xFFFFu);
        d[2] = (int32_t)(a02 >> 16);
        d[3] = (int32_t)(a13 >> 16);
      }
    } else { /* its even column is padding */
      for (g = 0; g < groups; ++g, pb += 4, d += gw) {
        const int32_t b = load4(pb);
        const uint32_t b02 = (uint32_t)__sxtab16(off2, b), b13 = (uint32_t)sxtab16_ror8(off2, b);
        d[0] = (int32_t)(b02 << 16);
        d[1] = (int32_t)(b13 << 16);
        d[2] = (int32_t)(b02 & 0xFFFF0000u);
        d[3] = (int32_t)(b13 & 0xFFFF0000u);
      }
    }
  }
}

int edgec_dw3x3_row(const edgec_conv_params *p, const int8_t *in, const int32_t *blk, int32_t oy,
                    int8_t *out, int8_t *scratch) {
  static void (*const loops[2][3])(const dw3x3_args *) = {
      {edgec_dw3x3_v0m1, edgec_dw3x3_v1m1, edgec_dw3x3_v2m1},
      {edgec_dw3x3_v0m2, edgec_dw3x3_v1m2, edgec_dw3x3_v2m2}};
  const int32_t np = (p->out_w + 3) >> 1, iy0 = oy - p->pad_h;
  int32_t *const x = (int32_t *)(void *)scratch;
  dw3x3_args a;
  if (p->rq_mode != 1 && p->rq_mode != 2) return 0;
  /* Rows come in order: the first output row clears the scratch and expands its window's first
   * two rows, every row the window's last. */
  if (oy == 0) {
    memset(x, 0, (size_t)(12 * np * p->in_c));
    dw3x3_expand(p, in, iy0, np, x);
    dw3x3_expand(p, in, iy0 + 1, np, x);
  }
  dw3x3_expand(p, in, iy0 + 2, np, x);
  a.x = x;
  a.blk = blk;
  a.out = out;
  a.out_c = p->out_c;
  a.quads = p->out_w >> 2;
  a.tail = p->out_w & 3;
  if (a.tail == 1 && a.quads > 0 && p->rq_mode == 2) { /* five pixels in one block */
    a.quads -= 1;
    a.tail = 5;
  }
  a.channels = p->out_c;
  a.x_skip = 4 - 96 * a.quads;
  a.x_group = 48 * np - 12 - 96 * a.quads;
  a.o_skip = 1 - 4 * p->out_c * a.quads;
  a.lo = p->act_min;
  a.hi = p->act_max;
  loops[p->rq_mode - 1][(iy0 + 3) % 3](&a);
  return 1;
}
#else
int edgec_dw3x3_row(const edgec_conv_params *p, const int8_t *in, const int32_t *blk, int32_t oy,
                    int8_t *out, int8_t *scratch) {
  (void)p; (void)in; (void)blk; (void)oy; (void)out; (void)scratch;
  return 0;
}
#endif
