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

/* te_conv_row3: a convolution of one input channel, 3 taps wide at stride and dilation 1 across (the first layer of
   an image model), without im2col. Gathering a pixel's taps would cost as much as its few channels' MACs, so each
   pass takes a block of output pixels (two neighbours of a row, or a pool window of pairs), reads every input row
   it spans once as one word of 4 bytes per pair (the pair's 4 columns), widened to (v0, v2) and (v1, v3), and keeps
   those for every output channel: per kernel row, the left pixel is SMLAD((v0, v2), (w0, w2)) + SMLABB(v1, w1),
   the right one SMLAD((v1, v3), (w0, w2)) + SMLATB(v2, w1), weights pre-widened by the generator. Each channel's
   weights, bias, multiplier and shift are one record (p->channels), so that one pointer steps through them. The
   plain C build does the same sums one product at a time. The generator (generate.py's _row3) keeps a block within
   TE_ROW3_ROWS input rows and 2 pairs across. */
#define TE_ROW3_ROWS 8

/* The 4 input bytes of a row from column x0, the zero point outside the image (x + input_offset = 0 there). */
typedef struct {
#ifdef __ARM_FEATURE_DSP
    uint32_t even, odd;   /* (v0, v2), (v1, v3) as int16 halves */
#else
    int32_t v[4];
#endif
} te_row4;

#ifdef __ARM_FEATURE_DSP
/* The word of a row's 4 bytes from column x0 where some are outside the row (zero: the zero point 4 times): the
   row's first or last word shifted in line, the zero point shifted in (x0 - xc within a word), else byte by byte. */
TE_INLINE uint32_t te_edge_word(const int8_t *row, int x0, int in_w, uint32_t zero) {
    const int xc = x0 < 0 ? 0 : in_w - 4, d = x0 - xc;
    if (in_w >= 4 && d < 0 && d > -4) {
        return te_load32(row) << (-8 * d) | zero >> (32 + 8 * d);
    }
    if (in_w >= 4 && d > 0 && d < 4) {
        return te_load32(row + xc) >> (8 * d) | zero << (32 - 8 * d);
    }
    uint32_t x = 0;
    TE_UNROLL
    for (int i = 0; i < 4; ++i) {
        x |= (x0 + i >= 0 && x0 + i < in_w ? (uint8_t)row[x0 + i] : zero & 0xFFu) << (8 * i);
    }
    return x;
}
#endif

/* inside: the 4 bytes are in the image, nothing is tested. */
TE_INLINE te_row4 te_row4_load(const te_conv_params *p, const int8_t *input, int y, int x0, int inside) {
    const int8_t zero = (int8_t)-p->input_offset;
    const int row_in = inside || (y >= 0 && y < p->in_h);
    const int cols_in = inside || (x0 >= 0 && x0 + 4 <= p->in_w);
    const int8_t *row = input + (row_in ? (long)y * p->in_w : 0);
    te_row4 r;
#ifdef __ARM_FEATURE_DSP
    const uint32_t zeros = (uint8_t)zero * 0x01010101u;
    const uint32_t x = !row_in ? zeros : (cols_in ? te_load32(row + x0) : te_edge_word(row, x0, p->in_w, zeros));
    r.even = (uint32_t)__sxtb16(x);
    r.odd = (uint32_t)te_sxtb16_hi(x);
#else
    TE_UNROLL
    for (int i = 0; i < 4; ++i) {
        r.v[i] = row_in && (cols_in || (x0 + i >= 0 && x0 + i < p->in_w)) ? row[x0 + i] : zero;
    }
#endif
    return r;
}

/* The rows' words of a block: rows[r * 2 + j] = input row y0 + r at pair j (columns x0 + 2j ..), r < span. */
TE_INLINE void te_row3_rows(const te_conv_params *p, const int8_t *input, int y0, int x0, int span, int pairs,
                            te_row4 *rows) {
    if (y0 >= 0 && y0 + span <= p->in_h && x0 >= 0 && x0 + 2 * pairs + 2 <= p->in_w) {
        TE_UNROLL
        for (int r = 0; r < span; ++r) {
            TE_UNROLL
            for (int j = 0; j < pairs; ++j) {
                rows[r * 2 + j] = te_row4_load(p, input, y0 + r, x0 + 2 * j, 1);
            }
        }
        return;
    }
    TE_UNROLL
    for (int r = 0; r < span; ++r) {
        TE_UNROLL
        for (int j = 0; j < pairs; ++j) {
            rows[r * 2 + j] = te_row4_load(p, input, y0 + r, x0 + 2 * j, 0);
        }
    }
}

/* A channel's sums (its record c) for the pair at block row r0 (its first input row), column pair j. */
TE_INLINE te_sums te_row3_pair(const te_conv_params *p, const te_row4 *rows, int r0, int j, const int32_t *c) {
    te_sums s = {c[2 * p->k_h], c[2 * p->k_h], 0, 0};
    TE_UNROLL
    for (int ky = 0; ky < p->k_h; ++ky) {
        const te_row4 x = rows[(r0 + ky * p->dil_h) * 2 + j];
        const int32_t *w = c + 2 * ky;
#ifdef __ARM_FEATURE_DSP
        s.a0 = __smlabb((int16x2_t)x.odd, (int16x2_t)w[1], __smlad((int16x2_t)x.even, (int16x2_t)w[0], s.a0));
        s.a1 = __smlatb((int16x2_t)x.even, (int16x2_t)w[1], __smlad((int16x2_t)x.odd, (int16x2_t)w[0], s.a1));
#else
        const int32_t w0 = (int16_t)(w[0] & 0xffff), w2 = w[0] >> 16, w1 = w[1];
        s.a0 += w0 * x.v[0] + w1 * x.v[1] + w2 * x.v[2];
        s.a1 += w0 * x.v[1] + w1 * x.v[2] + w2 * x.v[3];
#endif
    }
    return s;
}

/* One pass: the block of output pixels from (oy, ox), block_h rows of block_w (1 x 2 without a pool; a pool window
   with one), every channel. Without a pool both pixels are written (the right one when two); with one, the largest
   sum over the window, requantized once and clamped to the pool's range. */
TE_INLINE void te_row3_block(const te_conv_params *p, const int8_t *input, int8_t *out, int oy, int ox,
                             int block_h, int block_w, int two) {
    const int pairs = (block_w + 1) / 2, out_c = p->out_c;
    te_row4 rows[TE_ROW3_ROWS * 2];
    te_row3_rows(p, input, oy * p->stride_h - p->pad_h, ox - p->pad_w,
                 (block_h - 1) * p->stride_h + (p->k_h - 1) * p->dil_h + 1, pairs, rows);
    const int32_t *c = p->channels;
    for (int oc = 0; oc < out_c; ++oc, c += 2 * p->k_h + 3) {
        const int32_t multiplier = c[2 * p->k_h + 1], shift = c[2 * p->k_h + 2];
        if (!p->pool_h) {
            const te_sums s = te_row3_pair(p, rows, 0, 0, c);
            out[oc] = te_output(s.a0, multiplier, shift, p->fast, p->output_offset, p->act_min, p->act_max);
            if (two) {
                out[out_c + oc] = te_output(s.a1, multiplier, shift, p->fast, p->output_offset, p->act_min,
                                            p->act_max);
            }
            continue;
        }
        int32_t m = INT32_MIN;
        TE_UNROLL
        for (int i = 0; i < block_h; ++i) {
            TE_UNROLL
            for (int j = 0; j < pairs; ++j) {
                const te_sums s = te_row3_pair(p, rows, i * p->stride_h, j, c);
                m = te_max(m, 2 * j + 1 < block_w ? te_max(s.a0, s.a1) : s.a0);
            }
        }
        out[oc] = (int8_t)te_clamp(te_output(m, multiplier, shift, p->fast, p->output_offset, p->act_min,
                                             p->act_max), p->pool_min, p->pool_max);
    }
}

TE_INLINE void te_conv_row3(const te_conv_params *p, const int8_t *input, int8_t *output) {
    if (p->pool_h) {
        for (int qy = 0; qy < p->pool_out_h; ++qy) {
            for (int qx = 0; qx < p->pool_out_w; ++qx) {
                te_row3_block(p, input, output + ((long)qy * p->pool_out_w + qx) * p->out_c, qy * p->pool_h,
                              qx * p->pool_w, p->pool_h, p->pool_w, 0);
            }
        }
        return;
    }
    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ox += 2) {
            te_row3_block(p, input, output + ((long)oy * p->out_w + ox) * p->out_c, oy, ox, 1, 2,
                          ox + 1 < p->out_w);
        }
    }
}

/* col: scratch of widened columns (depth int16 each), one per pixel gathered in a pass (generate.py's _gathered:
   two, or a pool window's). With a pool
   taken in (generate.py's fuse), each pass makes one pooled pixel. A direct 1x1 convolution may write over its own
   input (generate.py's overlap): each pass widens its two pixels into col before writing, and with reverse (a
   wider output) the pixels go last to first, so no pass overwrites a pixel still to be read. */
TE_INLINE void te_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output, int16_t *col) {
    const int pixels = p->out_h * p->out_w;
    if (p->channels) {
        te_conv_row3(p, input, output);
        return;
    }
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
