/* MAX_POOL_2D and AVERAGE_POOL_2D int8 (reference_integer_ops pooling: the window is clipped to the image,
   the average divides by the number of pixels inside it, rounding halves away from zero).
   Each output is written after its window is read, and never before an input a later output reads when the
   padding is 0: the generator may then give the output the input's bytes. Inlined into each layer, whose
   constant window lets the compiler unroll it. */
#ifndef TE_POOL_H
#define TE_POOL_H

#include "te_fixed_point.h"
#include "te_kernels.h"

TE_INLINE void te_pool(const te_pool_params *p, const int8_t *input, int8_t *output, int average) {
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int y0 = oy * p->stride_h - p->pad_h;
        const int ky0 = y0 < 0 ? -y0 : 0;
        const int ky1 = p->in_h - y0 < p->k_h ? p->in_h - y0 : p->k_h;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int x0 = ox * p->stride_w - p->pad_w;
            const int kx0 = x0 < 0 ? -x0 : 0;
            const int kx1 = p->in_w - x0 < p->k_w ? p->in_w - x0 : p->k_w;
            for (int c = 0; c < p->channels; ++c) {
                int32_t acc = average ? 0 : -128;
                int count = 0;
                TE_UNROLL
                for (int ky = ky0; ky < ky1; ++ky) {
                    TE_UNROLL
                    for (int kx = kx0; kx < kx1; ++kx) {
                        const int32_t v = input[((long)(y0 + ky) * p->in_w + (x0 + kx)) * p->channels + c];
                        if (average) {
                            acc += v;
                        } else if (v > acc) {
                            acc = v;
                        }
                        ++count;
                    }
                }
                if (average && count > 0) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                output[((long)oy * p->out_w + ox) * p->channels + c] = (int8_t)te_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}

TE_INLINE void te_max_pool(const te_pool_params *p, const int8_t *input, int8_t *output) {
    te_pool(p, input, output, 0);
}

TE_INLINE void te_average_pool(const te_pool_params *p, const int8_t *input, int8_t *output) {
    te_pool(p, input, output, 1);
}

#endif
