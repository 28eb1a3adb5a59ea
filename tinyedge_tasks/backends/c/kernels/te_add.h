/* ADD int8, equal shapes (reference_integer_ops::AddElementwise): both inputs shifted left 20 bits, rescaled to a
   common scale, summed, rescaled to the output. Element i is read before it is written: may run in place.
   Inlined: the shifts are constants. */
#ifndef TE_ADD_H
#define TE_ADD_H

#include "te_fixed_point.h"
#include "te_kernels.h"

TE_INLINE int32_t te_smaller_than_one(int32_t x, int32_t multiplier, int32_t shift) {
    return te_rounding_divide_by_pot(te_srdhm(x, multiplier), -shift);
}

TE_INLINE void te_add(const te_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
    for (int i = 0; i < p->size; ++i) {
        const int32_t a = (int32_t)((uint32_t)(p->input1_offset + input1[i]) << p->left_shift);
        const int32_t b = (int32_t)((uint32_t)(p->input2_offset + input2[i]) << p->left_shift);
        const int32_t sum = te_smaller_than_one(a, p->input1_multiplier, p->input1_shift) +
                            te_smaller_than_one(b, p->input2_multiplier, p->input2_shift);
        const int32_t value = te_smaller_than_one(sum, p->output_multiplier, p->output_shift) + p->output_offset;
        output[i] = (int8_t)te_clamp(value, p->act_min, p->act_max);
    }
}

#endif
