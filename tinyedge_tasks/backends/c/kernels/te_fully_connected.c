/* FULLY_CONNECTED int8, per-channel (FullyConnectedPerChannel) and per-tensor (FullyConnected) weights. The bias
   holds input_offset * (sum of the row's weights), so the loop sums plain w * x: the same integer as TFLite's. */
#include "te_fixed_point.h"
#include "te_kernels.h"

void te_fully_connected(const te_fully_connected_params *p, const int8_t *input, int8_t *output) {
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in = input + (long)b * p->in_depth;
        for (int o = 0; o < p->out_depth; ++o) {
            const int8_t *w = p->weights + (long)o * p->in_depth;
            int32_t acc = 0;
            for (int d = 0; d < p->in_depth; ++d) {
                acc += (int32_t)w[d] * in[d];
            }
            acc += p->bias[o];
            const int q = p->per_channel ? o : 0;
            acc = te_mbqm(acc, p->multipliers[q], p->shifts[q]) + p->output_offset;
            output[(long)b * p->out_depth + o] = (int8_t)te_clamp(acc, p->act_min, p->act_max);
        }
    }
}
