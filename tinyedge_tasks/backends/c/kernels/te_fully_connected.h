/* FULLY_CONNECTED int8, per-channel (FullyConnectedPerChannel) and per-tensor (FullyConnected) weights, inlined
   into each layer. The bias holds input_offset * (sum of the row's weights), so the loop sums plain w * x: the
   same integer as TFLite's. Two output rows per pass share each input word; on DSP cores SXTB16 unpacks both
   sides into int16 pairs (bytes 0, 2 and 1, 3), so one SMLAD does two multiply-accumulates. */
#ifndef TE_FULLY_CONNECTED_H
#define TE_FULLY_CONNECTED_H

#include "te_fixed_point.h"
#include "te_kernels.h"

#ifdef __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

/* Rows o (and o + 1 when two) of batch b. */
TE_INLINE void te_fc_rows(const te_fully_connected_params *p, const int8_t *in, int8_t *out, int o, int two) {
    const int depth = p->in_depth;
    const int8_t *wa = p->weights + (long)o * depth, *wb = wa + depth;
    int32_t a = p->bias[o], b = two ? p->bias[o + 1] : 0;
    int d = 0;
#ifdef __ARM_FEATURE_DSP
    for (; d + 4 <= depth; d += 4) {
        const uint32_t x = te_load32(in + d);
        const int16x2_t x_lo = __sxtb16(x), x_hi = te_sxtb16_hi(x);
        const uint32_t w = te_load32(wa + d);
        a = __smlad(__sxtb16(w), x_lo, __smlad(te_sxtb16_hi(w), x_hi, a));
        if (two) {
            const uint32_t v = te_load32(wb + d);
            b = __smlad(__sxtb16(v), x_lo, __smlad(te_sxtb16_hi(v), x_hi, b));
        }
    }
#endif
    for (; d < depth; ++d) {
        a += wa[d] * in[d];
        if (two) {
            b += wb[d] * in[d];
        }
    }
    const int qa = p->per_channel ? o : 0, qb = p->per_channel ? o + 1 : 0;
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;
    out[o] = te_output(a, p->multipliers[qa], p->shifts[qa], p->fast, off, lo, hi);
    if (two) {
        out[o + 1] = te_output(b, p->multipliers[qb], p->shifts[qb], p->fast, off, lo, hi);
    }
}

TE_INLINE void te_fully_connected(const te_fully_connected_params *p, const int8_t *input, int8_t *output) {
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in = input + (long)b * p->in_depth;
        int8_t *out = output + (long)b * p->out_depth;
        int o = 0;
        for (; o + 1 < p->out_depth; o += 2) {
            te_fc_rows(p, in, out, o, 1);
        }
        if (p->out_depth & 1) {
            te_fc_rows(p, in, out, o, 0);
        }
    }
}

#endif
