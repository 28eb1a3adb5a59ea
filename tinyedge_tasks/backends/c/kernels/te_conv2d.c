/* CONV_2D int8 (TFLM reference_integer_ops::ConvPerChannel; per-tensor models share one multiplier).
   TFLite sums w * (x + input_offset) over the taps inside the image. Here the bias already holds
   input_offset * (sum of all the channel's weights): the taps inside accumulate plain w * x (one contiguous run
   per filter row when the width is not dilated), and at the border the taps outside take input_offset * w back
   out. The same integer, computed with less work per tap. */
#include "te_fixed_point.h"
#include "te_kernels.h"

void te_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output) {
    const int in_c = p->in_c, k_w = p->k_w, row = k_w * in_c, taps = p->k_h * row;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int y0 = oy * p->stride_h - p->pad_h;
        int ky0, ky1;
        te_window(y0, p->dil_h, p->k_h, p->in_h, &ky0, &ky1);
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int x0 = ox * p->stride_w - p->pad_w;
            int kx0, kx1;
            te_window(x0, p->dil_w, k_w, p->in_w, &kx0, &kx1);
            const int clipped = ky0 > 0 || ky1 < p->k_h || kx0 > 0 || kx1 < k_w;
            /* a dense row: (kx1 - kx0) * in_c bytes in a run; dilated: in_c bytes per tap */
            const int run = p->dil_w == 1 ? (kx1 - kx0) * in_c : in_c;
            const int runs = p->dil_w == 1 ? (kx1 > kx0) : kx1 - kx0;
            int8_t *out = output + ((long)oy * p->out_w + ox) * p->out_c;
            for (int oc = 0; oc < p->out_c; ++oc) {
                const int8_t *filter = p->weights + (long)oc * taps;
                int32_t acc = p->bias[oc];
                for (int ky = ky0; ky < ky1; ++ky) {
                    const int y = y0 + p->dil_h * ky;
                    for (int r = 0; r < runs; ++r) {
                        const int kx = kx0 + r;
                        const int8_t *in = input + ((long)y * p->in_w + x0 + p->dil_w * kx) * in_c;
                        const int8_t *w = filter + (long)ky * row + kx * in_c;
                        int32_t sum = 0;
                        for (int i = 0; i < run; ++i) {
                            sum += (int32_t)w[i] * in[i];
                        }
                        acc += sum;
                    }
                }
                if (clipped) {
                    int32_t outside = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        for (int kx = 0; kx < k_w; ++kx) {
                            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                                continue;
                            }
                            const int8_t *w = filter + (long)ky * row + kx * in_c;
                            for (int ic = 0; ic < in_c; ++ic) {
                                outside += w[ic];
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
