/* DEPTHWISE_CONV_2D int8 (TFLM reference_integer_ops::DepthwiseConvPerChannel). As in te_conv2d.c, the bias
   holds input_offset * (sum of the channel's weights): the taps inside the image accumulate w * x, and at the
   border the taps outside take input_offset * w back out. */
#include "te_fixed_point.h"
#include "te_kernels.h"

void te_depthwise_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output) {
    const int out_c = p->out_c, in_c = p->in_c;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int y0 = oy * p->stride_h - p->pad_h;
        int ky0, ky1;
        te_window(y0, p->dil_h, p->k_h, p->in_h, &ky0, &ky1);
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int x0 = ox * p->stride_w - p->pad_w;
            int kx0, kx1;
            te_window(x0, p->dil_w, p->k_w, p->in_w, &kx0, &kx1);
            const int clipped = ky0 > 0 || ky1 < p->k_h || kx0 > 0 || kx1 < p->k_w;
            int8_t *out = output + ((long)oy * p->out_w + ox) * out_c;
            for (int oc = 0; oc < out_c; ++oc) {
                const int8_t *in = input + oc / p->depth_multiplier;
                const int8_t *filter = p->weights + oc;
                int32_t acc = p->bias[oc];
                for (int ky = ky0; ky < ky1; ++ky) {
                    const int8_t *in_row = in + (long)(y0 + p->dil_h * ky) * p->in_w * in_c;
                    const int8_t *w_row = filter + (long)ky * p->k_w * out_c;
                    for (int kx = kx0; kx < kx1; ++kx) {
                        acc += (int32_t)w_row[kx * out_c] * in_row[(long)(x0 + p->dil_w * kx) * in_c];
                    }
                }
                if (clipped) {
                    int32_t outside = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            if (!(ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1)) {
                                outside += filter[((long)ky * p->k_w + kx) * out_c];
                            }
                        }
                    }
                    acc -= outside * p->input_offset;
                }
                const int q = p->per_channel ? oc : 0;
                acc = te_mbqm(acc, p->multipliers[q], p->shifts[q]) + p->output_offset;
                out[oc] = (int8_t)te_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}
