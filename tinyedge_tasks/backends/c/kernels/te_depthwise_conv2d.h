/* DEPTHWISE_CONV_2D int8 (TFLM reference_integer_ops::DepthwiseConvPerChannel), inlined into each layer with its
   shapes as constants. As in te_conv2d.h the bias holds input_offset * (sum of the channel's weights), so a tap
   outside the image counts as the input zero point: interior pixels run without any bounds test, border pixels
   test each tap, and no padded copy exists. Two horizontally adjacent output pixels per pass share their
   weight loads and, at stride 1, two of their three input columns; each output is requantized once. */
#ifndef TE_DEPTHWISE_CONV2D_H
#define TE_DEPTHWISE_CONV2D_H

#include "te_fixed_point.h"
#include "te_kernels.h"

/* Input tap (y0 + dy, x0 + dx) of channel c, or the zero point outside the image (only tested when check); at is
   the tap's pixel, addressed from the window's corner so that interior taps are constant offsets. */
TE_INLINE int32_t te_dw_tap(const te_conv_params *p, const int8_t *input, int y0, int x0, int dy, int dx, int c,
                            int check) {
    if (check) {
        const int y = y0 + dy, x = x0 + dx;
        if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
            return -p->input_offset;
        }
        return input[((long)y * p->in_w + x) * p->in_c + c];
    }
    return input[((long)y0 * p->in_w + x0) * p->in_c + c + (dy * p->in_w + dx) * p->in_c];
}

/* Output pixel (oy, ox), and (oy, ox + 1) when two. */
TE_INLINE void te_dw_pixels(const te_conv_params *p, const int8_t *input, int8_t *output, int oy, int ox, int two,
                            int check) {
    const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w, out_c = p->out_c;
    int8_t *out = output + ((long)oy * p->out_w + ox) * out_c;
    for (int c = 0; c < out_c; ++c) {
        const int ic = c / p->depth_multiplier;
        int32_t a0 = p->bias[c], a1 = a0;
        TE_UNROLL
        for (int ky = 0; ky < p->k_h; ++ky) {
            TE_UNROLL
            for (int kx = 0; kx < p->k_w; ++kx) {
                const int dy = ky * p->dil_h, dx = kx * p->dil_w;
                const int32_t w = p->weights[(ky * p->k_w + kx) * out_c + c];
                a0 += w * te_dw_tap(p, input, y0, x0, dy, dx, ic, check);
                if (two) {
                    a1 += w * te_dw_tap(p, input, y0, x0, dy, dx + p->stride_w, ic, check);
                }
            }
        }
        const int q = p->per_channel ? c : 0;
        const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;
        const int32_t m = p->multipliers[q], s = p->shifts[q];
        out[c] = te_output(a0, m, s, p->fast, off, lo, hi);
        if (two) {
            out[out_c + c] = te_output(a1, m, s, p->fast, off, lo, hi);
        }
    }
}

TE_INLINE void te_depthwise_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output) {
    const int span_h = (p->k_h - 1) * p->dil_h, span_w = (p->k_w - 1) * p->dil_w;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int y0 = oy * p->stride_h - p->pad_h;
        const int rows_inside = y0 >= 0 && y0 + span_h < p->in_h;
        int ox = 0;
        for (; ox + 1 < p->out_w; ox += 2) {
            const int x0 = ox * p->stride_w - p->pad_w;
            if (rows_inside && x0 >= 0 && x0 + p->stride_w + span_w < p->in_w) {
                te_dw_pixels(p, input, output, oy, ox, 1, 0);
            } else {
                te_dw_pixels(p, input, output, oy, ox, 1, 1);
            }
        }
        if (p->out_w & 1) {
            te_dw_pixels(p, input, output, oy, ox, 0, 1);
        }
    }
}

#endif
