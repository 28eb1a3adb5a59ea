/* CONV_2D int8 (TFLM reference_integer_ops::ConvPerChannel; per-tensor models share one multiplier), inlined
   into each layer with its shapes as constants.
   The bias already holds input_offset * (sum of the channel's weights), so a tap outside the image must add
   w * zero_point (x + input_offset = 0 there, as TFLite skips it): im2col writes the input zero point for the
   padding, which is never stored in the arena. Two output pixels are gathered (im2col) into int16, the order
   within every 4 taps being (0, 2, 1, 3): the order SXTB16 unpacks 4 int8 weights into two int16 pairs, so one
   SMLAD does two multiply-accumulates. Each pass computes 2 output channels x 2 pixels; each output is
   requantized once. A 1x1 stride-1 convolution skips the gathering: its input pixel is the column.
   The plain C build (host, ESP32) does the same integer sums one product at a time. */
#ifndef TE_CONV2D_H
#define TE_CONV2D_H

#include "te_fixed_point.h"
#include "te_kernels.h"

#ifdef __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

/* One pixel's window (k_h * k_w * in_c int8 values, row by row) into stage: the zero point where it leaves the
   image, then zeros up to depth (their weights are 0). */
TE_INLINE void te_im2col(const te_conv_params *p, const int8_t *input, int pixel, int8_t *stage) {
    const int oy = pixel / p->out_w, ox = pixel % p->out_w, in_c = p->in_c;
    const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int8_t zero = (int8_t)-p->input_offset;
    int8_t *d = stage;
    TE_UNROLL
    for (int ky = 0; ky < p->k_h; ++ky) {
        const int y = y0 + ky * p->dil_h;
        if (y < 0 || y >= p->in_h) {
            memset(d, zero, (size_t)(p->k_w * in_c));
            d += p->k_w * in_c;
            continue;
        }
        const int8_t *row = input + (long)y * p->in_w * in_c;
        if (p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w) {
            memcpy(d, row + (long)x0 * in_c, (size_t)(p->k_w * in_c));
            d += p->k_w * in_c;
            continue;
        }
        TE_UNROLL
        for (int kx = 0; kx < p->k_w; ++kx, d += in_c) {
            const int x = x0 + kx * p->dil_w;
            if (x < 0 || x >= p->in_w) {
                memset(d, zero, (size_t)in_c);
            } else {
                memcpy(d, row + (long)x * in_c, (size_t)in_c);
            }
        }
    }
    memset(d, 0, (size_t)(p->depth - p->k_h * p->k_w * in_c));
}

/* depth int8 values -> int16, (0, 2, 1, 3) within every 4. */
TE_INLINE void te_widen(const int8_t *src, int16_t *col, int depth) {
    for (int k = 0; k < depth; k += 4) {
#ifdef __ARM_FEATURE_DSP
        const uint32_t x = te_load32(src + k);
        te_store32(col + k, (uint32_t)__sxtb16(x));
        te_store32(col + k + 2, (uint32_t)te_sxtb16_hi(x));
#else
        col[k] = src[k];
        col[k + 1] = src[k + 2];
        col[k + 2] = src[k + 1];
        col[k + 3] = src[k + 3];
#endif
    }
}

/* 4 weights of one row widened for te_mac4: bytes 0, 2 (lo) and 1, 3 (hi) as int16 pairs on DSP cores; the plain
   C te_mac4 reads the int8 weights themselves. */
typedef struct {
    uint32_t lo, hi;
} te_weights4;

TE_INLINE te_weights4 te_load_weights4(const int8_t *w) {
    te_weights4 widened = {0, 0};
#ifdef __ARM_FEATURE_DSP
    const uint32_t x = te_load32(w);
    widened.lo = (uint32_t)__sxtb16(x);
    widened.hi = (uint32_t)te_sxtb16_hi(x);
#else
    (void)w;
#endif
    return widened;
}

/* 4 taps of one weight row against one widened column. */
TE_INLINE int32_t te_mac4(int32_t acc, uint32_t w_lo, uint32_t w_hi, const int16_t *col, const int8_t *w) {
#ifdef __ARM_FEATURE_DSP
    (void)w;
    acc = __smlad((int16x2_t)w_lo, (int16x2_t)te_load32(col), acc);
    return __smlad((int16x2_t)w_hi, (int16x2_t)te_load32(col + 2), acc);
#else
    (void)w_lo;
    (void)w_hi;
    return acc + w[0] * col[0] + w[2] * col[1] + w[1] * col[2] + w[3] * col[3];
#endif
}

/* 1 or 2 output channels (oc, oc + 1) x 1 or 2 pixels (columns c0, c1) -> out, out + out_c. */
TE_INLINE void te_conv_tile(const te_conv_params *p, const int16_t *c0, const int16_t *c1, int oc, int8_t *out,
                            int two_px, int two_ch) {
    const int depth = p->depth;
    const int8_t *wa = p->weights + (long)oc * depth, *wb = wa + depth;
    int32_t a00 = p->bias[oc], a01 = a00, a10 = two_ch ? p->bias[oc + 1] : 0, a11 = a10;
    for (int k = 0; k < depth; k += 4) {
        te_weights4 w = te_load_weights4(wa + k);
        a00 = te_mac4(a00, w.lo, w.hi, c0 + k, wa + k);
        if (two_px) {
            a01 = te_mac4(a01, w.lo, w.hi, c1 + k, wa + k);
        }
        if (two_ch) {
            w = te_load_weights4(wb + k);
            a10 = te_mac4(a10, w.lo, w.hi, c0 + k, wb + k);
            if (two_px) {
                a11 = te_mac4(a11, w.lo, w.hi, c1 + k, wb + k);
            }
        }
    }
    const int qa = p->per_channel ? oc : 0, qb = p->per_channel ? oc + 1 : 0;
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int32_t ma = p->multipliers[qa], sa = p->shifts[qa];
    out[oc] = te_output(a00, ma, sa, p->fast, off, lo, hi);
    if (two_px) {
        out[p->out_c + oc] = te_output(a01, ma, sa, p->fast, off, lo, hi);
    }
    if (two_ch) {
        const int32_t mb = p->multipliers[qb], sb = p->shifts[qb];
        out[oc + 1] = te_output(a10, mb, sb, p->fast, off, lo, hi);
        if (two_px) {
            out[p->out_c + oc + 1] = te_output(a11, mb, sb, p->fast, off, lo, hi);
        }
    }
}

/* Output pixels px (and px + 1 when two_px): gather, widen, then every channel pair. */
TE_INLINE void te_conv_pixels(const te_conv_params *p, const int8_t *input, int8_t *output, int16_t *col,
                              int px, int two_px) {
    const int depth = p->depth;
    const int direct = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 &&
                       p->pad_w == 0 && p->in_c == depth;
    int8_t *stage = (int8_t *)(col + 2 * depth);
    for (int j = 0; j <= two_px; ++j) {
        const int8_t *src = input + (long)(px + j) * depth;
        if (!direct) {
            te_im2col(p, input, px + j, stage + j * depth);
            src = stage + j * depth;
        }
        te_widen(src, col + j * depth, depth);
    }
    int8_t *out = output + (long)px * p->out_c;
    int oc = 0;
    for (; oc + 1 < p->out_c; oc += 2) {
        te_conv_tile(p, col, col + depth, oc, out, two_px, 1);
    }
    if (p->out_c & 1) {
        te_conv_tile(p, col, col + depth, oc, out, two_px, 0);
    }
}

/* col: 3 * depth int16 of scratch (two widened columns, then two int8 windows). A direct 1x1 convolution may
   write over its own input (generate.py's overlap): each pass widens its two pixels into col before writing, and
   with reverse (a wider output) the pixels go last to first, so no pass overwrites a pixel still to be read. */
TE_INLINE void te_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output, int16_t *col) {
    const int pixels = p->out_h * p->out_w;
    if (p->reverse) {
        int last = pixels;
        if (pixels & 1) {
            te_conv_pixels(p, input, output, col, --last, 0);
        }
        for (last -= 2; last >= 0; last -= 2) {
            te_conv_pixels(p, input, output, col, last, 1);
        }
        return;
    }
    int px = 0;
    for (; px + 1 < pixels; px += 2) {
        te_conv_pixels(p, input, output, col, px, 1);
    }
    if (pixels & 1) {
        te_conv_pixels(p, input, output, col, px, 0);
    }
}

#endif
