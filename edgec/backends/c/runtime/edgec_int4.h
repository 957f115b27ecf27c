/* int4-weight kernels of edgec's generated C: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with
 * weights stored as TFLite's INT4 tensors (two per byte, the first in the low nibble). Each nibble is
 * sign-extended in a register as it is multiplied; no unpacked copy of the weights exists anywhere.
 * Bit-exact with TFLite Micro's reference kernels, which unpack the nibbles to int8 and then run the
 * int8 kernel: int32 sums of the same products. The bias is the raw int32 bias (not folded) and the
 * input offset is added to each input, as the reference does, so padded taps are simply skipped. */
#ifndef EDGEC_INT4_H
#define EDGEC_INT4_H

#include <stdint.h>
#include "edgec_kernels.h"

void edgec_conv_s4(const edgec_conv_params *p, const int8_t *in, const uint8_t *filt,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
void edgec_depthwise_s4(const edgec_conv_params *p, const int8_t *in, const uint8_t *filt,
                        const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
void edgec_fc_s4(const edgec_fc_params *p, const int8_t *in, const uint8_t *filt,
                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);

#endif /* EDGEC_INT4_H */
