/* PAD / PADV2 int8 on up to 4 dimensions: the output filled with the pad value, the input copied inside. */
#include "te_kernels.h"

void te_pad(const te_pad_params *p, const int8_t *input, int8_t *output) {
    const int o1 = p->before1 + p->d1 + p->after1, o2 = p->before2 + p->d2 + p->after2;
    const int o3 = p->before3 + p->d3 + p->after3, o0 = p->before0 + p->d0 + p->after0;
    for (long i = 0; i < (long)o0 * o1 * o2 * o3; ++i) {
        output[i] = p->value;
    }
    for (int i0 = 0; i0 < p->d0; ++i0)
        for (int i1 = 0; i1 < p->d1; ++i1)
            for (int i2 = 0; i2 < p->d2; ++i2)
                for (int i3 = 0; i3 < p->d3; ++i3) {
                    const long to = (((long)(i0 + p->before0) * o1 + (i1 + p->before1)) * o2 + (i2 + p->before2)) *
                                    o3 + (i3 + p->before3);
                    output[to] = input[(((long)i0 * p->d1 + i1) * p->d2 + i2) * p->d3 + i3];
                }
}
