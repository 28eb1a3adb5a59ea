/* MEAN int8 over any of 4 axes (reference_ops::QuantizedMeanOrSum: the sum minus count * zero point, then one
   MultiplyByQuantizedMultiplier whose multiplier already holds the division by the count). Inlined: the
   compiler turns the constant shape's index arithmetic into strides. */
#ifndef TE_MEAN_H
#define TE_MEAN_H

#include "te_fixed_point.h"
#include "te_kernels.h"

TE_INLINE void te_mean(const te_mean_params *p, const int8_t *input, int8_t *output) {
    const int n0 = p->r0 ? 1 : p->d0, n1 = p->r1 ? 1 : p->d1, n2 = p->r2 ? 1 : p->d2, n3 = p->r3 ? 1 : p->d3;
    const int m0 = p->r0 ? p->d0 : 1, m1 = p->r1 ? p->d1 : 1, m2 = p->r2 ? p->d2 : 1, m3 = p->r3 ? p->d3 : 1;
    int8_t *out = output;
    for (int i0 = 0; i0 < n0; ++i0)
        for (int i1 = 0; i1 < n1; ++i1)
            for (int i2 = 0; i2 < n2; ++i2)
                for (int i3 = 0; i3 < n3; ++i3) {
                    int32_t sum = 0;
                    for (int j0 = 0; j0 < m0; ++j0)
                        for (int j1 = 0; j1 < m1; ++j1)
                            for (int j2 = 0; j2 < m2; ++j2)
                                for (int j3 = 0; j3 < m3; ++j3) {
                                    const long index = (((long)(i0 + j0) * p->d1 + (i1 + j1)) * p->d2 + (i2 + j2)) *
                                                       p->d3 + (i3 + j3);
                                    sum += input[index];
                                }
                    const int32_t value = te_mbqm(sum - p->input_zp * p->count, p->multiplier, p->shift) + p->output_zp;
                    *out++ = (int8_t)te_clamp(value, -128, 127);
                }
}

#endif
