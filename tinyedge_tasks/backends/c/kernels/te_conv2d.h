/* CONV_2D int8 (TFLM reference_integer_ops::ConvPerChannel; per-tensor models share one multiplier), inlined
   into each layer with its shapes as constants.
   The bias already holds input_offset * (sum of the channel's weights), so a tap outside the image must add
   w * zero_point (x + input_offset = 0 there, as TFLite skips it): the gathering writes the input zero point for
   the padding, which is never stored in the arena. Two output pixels' windows are gathered straight into int16
   (im2col without an int8 copy), the order
   within every 4 taps being (0, 2, 1, 3): the order SXTB16 unpacks 4 int8 weights into two int16 pairs, so one
   SMLAD does two multiply-accumulates. Each pass computes 2 output channels x 2 pixels; each output is
   requantized once. A 1x1 stride-1 convolution skips the gathering: its input pixel is the column.
   A max pool taken in (generate.py's fuse) keeps the largest sum over its window and requantizes that alone.
   The plain C build (host, ESP32) does the same integer sums one product at a time. */
#ifndef TE_CONV2D_H
#define TE_CONV2D_H

#include "te_fixed_point.h"
#include "te_kernels.h"

#ifdef __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

/* Slot of tap t in a widened column: (0, 2, 1, 3) within every 4, the order SXTB16 unpacks a word in. */
TE_INLINE int te_slot(int t) {
    const int r = t & 3;
    return t - r + (r == 1 ? 2 : (r == 2 ? 1 : r));
}

/* 4 int8 (at src, or the zero point 4 times when src is NULL) widened into col, (0, 2, 1, 3). */
TE_INLINE void te_widen4(const int8_t *src, int8_t zero, int16_t *col) {
#ifdef __ARM_FEATURE_DSP
    const uint32_t x = src ? te_load32(src) : (uint8_t)zero * 0x01010101u;
    te_store32(col, (uint32_t)__sxtb16(x));
    te_store32(col + 2, (uint32_t)te_sxtb16_hi(x));
#else
    col[0] = src ? src[0] : zero;
    col[1] = src ? src[2] : zero;
    col[2] = src ? src[1] : zero;
    col[3] = src ? src[3] : zero;
#endif
}

/* depth int8 values -> int16, (0, 2, 1, 3) within every 4. */
TE_INLINE void te_widen(const int8_t *src, int16_t *col, int depth) {
    for (int k = 0; k < depth; k += 4) {
        te_widen4(src + k, 0, col + k);
    }
}

/* Kernel row ky of the window at (y0, x0) widened into column (its k_w * in_c taps, from tap ky * k_w * in_c): the
   zero point outside the image (x + input_offset = 0 there, as TFLite skips the tap). Whole words over the row
   where its taps are contiguous in 4s (dil_w 1, k_w * in_c a multiple of 4) and inside or outside the image
   together, else pixel by pixel: words when in_c is a multiple of 4, else tap by tap. inside: the whole window is
   inside the image, nothing is tested. */
TE_INLINE void te_gather_row(const te_conv_params *p, const int8_t *input, int y0, int x0, int ky, int inside,
                             int16_t *column) {
    const int in_c = p->in_c, n = p->k_w * in_c, t0 = ky * n, y = y0 + ky * p->dil_h;
    const int8_t zero = (int8_t)-p->input_offset;
    const int row_in = inside || (y >= 0 && y < p->in_h);
    const int cols_in = inside || (x0 >= 0 && x0 + (p->k_w - 1) * p->dil_w < p->in_w);
    const int8_t *row = input + (row_in ? (long)y * p->in_w * in_c : 0);
    if (p->dil_w == 1 && n % 4 == 0 && (cols_in || !row_in)) {
        for (int k = 0; k < n; k += 4) {
            te_widen4(row_in ? row + (long)x0 * in_c + k : NULL, zero, column + t0 + k);
        }
        return;
    }
    TE_UNROLL
    for (int kx = 0; kx < p->k_w; ++kx) {
        const int x = x0 + kx * p->dil_w, t = t0 + kx * in_c;
        const int in = row_in && (inside || (x >= 0 && x < p->in_w));
        if (in_c % 4 == 0) {
            for (int k = 0; k < in_c; k += 4) {
                te_widen4(in ? row + (long)x * in_c + k : NULL, zero, column + t + k);
            }
            continue;
        }
        TE_UNROLL
        for (int ci = 0; ci < in_c; ++ci) {
            column[te_slot(t + ci)] = in ? row[(long)x * in_c + ci] : zero;
        }
    }
}

/* Output pixel `pixel`'s window widened into column, then zeros up to depth (their weights are 0). */
TE_INLINE void te_gather_window(const te_conv_params *p, const int8_t *input, int y0, int x0, int inside,
                                int16_t *column) {
    TE_UNROLL
    for (int ky = 0; ky < p->k_h; ++ky) {
        te_gather_row(p, input, y0, x0, ky, inside, column);
    }
    for (int t = p->k_h * p->k_w * p->in_c; t < p->depth; ++t) {
        column[te_slot(t)] = 0;
    }
}

/* Two words: 4 weights of one row widened for te_mac4 (bytes 0, 2 in lo and 1, 3 in hi, as int16 pairs), or
   4 int16 of a widened column, on DSP cores; the plain C te_mac4 reads the int8 weights and the column itself. */
typedef struct {
    uint32_t lo, hi;
} te_words;

TE_INLINE te_words te_load_weights4(const int8_t *w) {
    te_words widened = {0, 0};
#ifdef __ARM_FEATURE_DSP
    const uint32_t x = te_load32(w);
    widened.lo = (uint32_t)__sxtb16(x);
    widened.hi = (uint32_t)te_sxtb16_hi(x);
#else
    (void)w;
#endif
    return widened;
}

/* 4 int16 of a column at col + offset (word aligned: the arena's offsets and depth are multiples of 4), one LDRD on
   DSP cores (gcc makes two LDRs of two word loads); a constant offset within LDRD's reach is its immediate. */
TE_INLINE te_words te_load_column4(const int16_t *col, long offset) {
    te_words x = {0, 0};
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
    if (__builtin_constant_p(offset) && offset >= 0 && offset <= 510) {   /* bytes 0..1020 */
        __asm__("ldrd %0, %1, [%2, %3]" : "=r"(x.lo), "=r"(x.hi)
                : "r"(col), "i"(2 * offset), "m"(*(const struct { int16_t v[4]; } *)(col + offset)));
    } else {
        __asm__("ldrd %0, %1, [%2]" : "=r"(x.lo), "=r"(x.hi)
                : "r"(col + offset), "m"(*(const struct { int16_t v[4]; } *)(col + offset)));
    }
#elif defined(__ARM_FEATURE_DSP)
    x.lo = te_load32(col + offset);
    x.hi = te_load32(col + offset + 2);
#else
    (void)col;
    (void)offset;
#endif
    return x;
}

/* 4 taps of one weight row (w, widened) against one widened column (x, at col). */
TE_INLINE int32_t te_mac4(int32_t acc, te_words w, te_words x, const int16_t *col, const int8_t *row) {
#ifdef __ARM_FEATURE_DSP
    (void)col;
    (void)row;
    acc = __smlad((int16x2_t)w.lo, (int16x2_t)x.lo, acc);
    return __smlad((int16x2_t)w.hi, (int16x2_t)x.hi, acc);
#else
    (void)w;
    (void)x;
    return acc + row[0] * col[0] + row[2] * col[1] + row[1] * col[2] + row[3] * col[3];
#endif
}

/* The sums of output channels oc (a) and oc + 1 (b, when two_ch) for the pixels of columns c0 (0) and c1, the next
   one (1, when two_px). */
typedef struct {
    int32_t a0, a1, b0, b1;
} te_sums;

TE_INLINE te_sums te_conv_sums(const te_conv_params *p, const int16_t *c0, int oc, int two_px,
                               int two_ch) {
    const int depth = p->depth;
    const int8_t *wa = p->weights + (long)oc * depth, *wb = wa + depth;
    const int16_t *c1 = c0 + depth;
    te_sums s = {p->bias[oc], p->bias[oc], two_ch ? p->bias[oc + 1] : 0, two_ch ? p->bias[oc + 1] : 0};
#ifdef __ARM_FEATURE_DSP   /* one tap in the last 4 (a 3x3 window of one channel): SMLABB of its slot's bottom half */
    const int single = p->k_h * p->k_w * p->in_c % 4 == 1, words = single ? depth - 4 : depth;
    if (single) {
        const int16x2_t x0 = (int16x2_t)te_load32(c0 + words), x1 = two_px ? (int16x2_t)te_load32(c1 + words) : x0;
        s.a0 = __smlabb(wa[words], x0, s.a0);
        s.a1 = two_px ? __smlabb(wa[words], x1, s.a1) : s.a1;
        s.b0 = two_ch ? __smlabb(wb[words], x0, s.b0) : s.b0;
        s.b1 = two_ch && two_px ? __smlabb(wb[words], x1, s.b1) : s.b1;
    }
#else
    const int words = depth;
#endif
    for (int k = 0; k < words; k += 4) {
        const te_words x0 = te_load_column4(c0 + k, 0), x1 = two_px ? te_load_column4(c0 + k, depth) : x0;
        te_words w = te_load_weights4(wa + k);
        s.a0 = te_mac4(s.a0, w, x0, c0 + k, wa + k);
        if (two_px) {
            s.a1 = te_mac4(s.a1, w, x1, c1 + k, wa + k);
        }
        if (two_ch) {
            w = te_load_weights4(wb + k);
            s.b0 = te_mac4(s.b0, w, x0, c0 + k, wb + k);
            if (two_px) {
                s.b1 = te_mac4(s.b1, w, x1, c1 + k, wb + k);
            }
        }
    }
    return s;
}

/* Channel oc's sum requantized. */
TE_INLINE int8_t te_conv_out(const te_conv_params *p, int32_t acc, int oc) {
    const int q = p->per_channel ? oc : 0;
    return te_output(acc, p->multipliers[q], p->shifts[q], p->fast, p->output_offset, p->act_min, p->act_max);
}

/* A 1x1 stride-1 convolution whose input pixel is its column. */
TE_INLINE int te_direct(const te_conv_params *p) {
    return p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0 &&
           p->in_c == p->depth;
}

/* Output pixel `pixel`'s window widened into column: the input pixel itself when direct; a window inside the
   image without any test (its own copy of the code). */
TE_INLINE void te_gather(const te_conv_params *p, const int8_t *input, int pixel, int16_t *column) {
    if (te_direct(p)) {
        te_widen(input + (long)pixel * p->depth, column, p->depth);
        return;
    }
    const int y0 = pixel / p->out_w * p->stride_h - p->pad_h, x0 = pixel % p->out_w * p->stride_w - p->pad_w;
    if (y0 >= 0 && x0 >= 0 && y0 + (p->k_h - 1) * p->dil_h < p->in_h && x0 + (p->k_w - 1) * p->dil_w < p->in_w) {
        te_gather_window(p, input, y0, x0, 1, column);
    } else {
        te_gather_window(p, input, y0, x0, 0, column);
    }
}

/* Output pixels px (and px + 1 when two_px): gather, widen, then every channel pair. */
TE_INLINE void te_conv_pixels(const te_conv_params *p, const int8_t *input, int8_t *output, int16_t *col,
                              int px, int two_px) {
    const int depth = p->depth, out_c = p->out_c;
    for (int j = 0; j <= two_px; ++j) {
        te_gather(p, input, px + j, col + j * depth);
    }
    int8_t *out = output + (long)px * out_c;
    int oc = 0;
    for (; oc + 1 < out_c; oc += 2) {
        const te_sums s = te_conv_sums(p, col, oc, two_px, 1);
        out[oc] = te_conv_out(p, s.a0, oc);
        out[oc + 1] = te_conv_out(p, s.b0, oc + 1);
        if (two_px) {
            out[out_c + oc] = te_conv_out(p, s.a1, oc);
            out[out_c + oc + 1] = te_conv_out(p, s.b1, oc + 1);
        }
    }
    if (out_c & 1) {
        const te_sums s = te_conv_sums(p, col, oc, two_px, 0);
        out[oc] = te_conv_out(p, s.a0, oc);
        if (two_px) {
            out[out_c + oc] = te_conv_out(p, s.a1, oc);
        }
    }
}

TE_INLINE int32_t te_max(int32_t a, int32_t b) {
    return a > b ? a : b;
}

/* Channels oc (and oc + 1 when two_ch) of pooled pixel out: the largest sum over the window's columns (col, in
   pairs), requantized once and clamped to the pool's range. */
TE_INLINE void te_conv_pooled_channels(const te_conv_params *p, const int16_t *col, int8_t *out, int oc,
                                       int two_ch) {
    const int depth = p->depth, window = p->pool_h * p->pool_w;
    te_sums m = te_conv_sums(p, col, oc, window > 1, two_ch);
    if (window > 1) {
        m.a0 = te_max(m.a0, m.a1);
        m.b0 = te_max(m.b0, m.b1);
    }
    TE_UNROLL
    for (int j = 2; j < window; j += 2) {
        const int two = j + 1 < window;
        const te_sums s = te_conv_sums(p, col + j * depth, oc, two, two_ch);
        m.a0 = te_max(m.a0, two ? te_max(s.a0, s.a1) : s.a0);
        m.b0 = te_max(m.b0, two ? te_max(s.b0, s.b1) : s.b0);
    }
    out[oc] = (int8_t)te_clamp(te_conv_out(p, m.a0, oc), p->pool_min, p->pool_max);
    if (two_ch) {
        out[oc + 1] = (int8_t)te_clamp(te_conv_out(p, m.b0, oc + 1), p->pool_min, p->pool_max);
    }
}

/* Pooled output pixel q: its window's output pixels gathered, then every channel pair. */
TE_INLINE void te_conv_pooled(const te_conv_params *p, const int8_t *input, int8_t *output, int16_t *col, int q) {
    const int depth = p->depth, window = p->pool_h * p->pool_w;
    const int y = q / p->pool_out_w * p->pool_h, x = q % p->pool_out_w * p->pool_w;
    TE_UNROLL
    for (int j = 0; j < window; ++j) {
        te_gather(p, input, (y + j / p->pool_w) * p->out_w + x + j % p->pool_w, col + j * depth);
    }
    int8_t *out = output + (long)q * p->out_c;
    int oc = 0;
    for (; oc + 1 < p->out_c; oc += 2) {
        te_conv_pooled_channels(p, col, out, oc, 1);
    }
    if (p->out_c & 1) {
        te_conv_pooled_channels(p, col, out, oc, 0);
    }
}

/* col: scratch of widened columns (depth int16 each), one per pixel gathered in a pass (generate.py's _gathered:
   two, or a pool window's). With a pool
   taken in (generate.py's fuse), each pass makes one pooled pixel. A direct 1x1 convolution may write over its own
   input (generate.py's overlap): each pass widens its two pixels into col before writing, and with reverse (a
   wider output) the pixels go last to first, so no pass overwrites a pixel still to be read. */
TE_INLINE void te_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output, int16_t *col) {
    const int pixels = p->out_h * p->out_w;
    if (p->pool_h) {
        for (int q = 0; q < p->pool_out_h * p->pool_out_w; ++q) {
            te_conv_pooled(p, input, output, col, q);
        }
        return;
    }
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
