/* DEPTHWISE_CONV_2D int8 (TFLM reference_integer_ops::DepthwiseConvPerChannel), inlined into each layer with its
   shapes as constants. As in te_conv2d.h the bias holds input_offset * (sum of the channel's weights), so a tap
   outside the image counts as the input zero point: interior pixels run without any bounds test, border pixels
   test each tap, and no padded copy exists. Two horizontally adjacent output pixels per pass share their weight
   loads; each output is requantized once.
   On DSP cores, with depth multiplier 1, four channels go together (as CMSIS-NN's arm_depthwise_conv_s8_opt
   does, without its im2col copy): one word load gives a tap's 4 int8 inputs (or weights), SXTB16 widens bytes
   0, 2 and 1, 3 into int16 pairs, and SMLABB / SMLATT accumulate the bottom and top halves, one channel each.
   A border tap outside the image reads the zero point replicated in a word instead. Channels left over (out_c
   not a multiple of 4) and the plain C build (host, ESP32) go one channel at a time, the same integer sums. */
#ifndef TE_DEPTHWISE_CONV2D_H
#define TE_DEPTHWISE_CONV2D_H

#include "te_fixed_point.h"
#include "te_kernels.h"

#ifdef __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

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

/* Channels c_begin.. of output pixel (oy, ox), and (oy, ox + 1) when two, one channel at a time. */
TE_INLINE void te_dw_pixels(const te_conv_params *p, const int8_t *input, int8_t *output, int oy, int ox, int two,
                            int check, int c_begin) {
    const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w, out_c = p->out_c;
    int8_t *out = output + ((long)oy * p->out_w + ox) * out_c;
    for (int c = c_begin; c < out_c; ++c) {
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

#ifdef __ARM_FEATURE_DSP
/* The word at base + offset, a load that stays where it is written: gcc would else hoist every load of the
   unrolled window ahead and spill what it loaded (a volatile asm keeps its order among the others). A constant
   offset within LDR's 12 bits is its immediate. */
TE_INLINE uint32_t te_dw_load(const int8_t *base, long offset) {
#ifdef __GNUC__
    uint32_t v;
    if (__builtin_constant_p(offset) && offset >= 0 && offset < 4096) {
        __asm__ volatile("ldr %0, [%1, %2]" : "=r"(v) : "r"(base), "i"(offset) : "memory");
    } else {
        __asm__ volatile("ldr %0, [%1]" : "=r"(v) : "r"(base + offset) : "memory");
    }
    return v;
#else
    return te_load32(base + offset);
#endif
}

/* The 4 int8 inputs of tap (y0 + dy, x0 + dx), channels c..c + 3 (depth multiplier 1), or the zero point 4 times
   outside the image. check & 1 (a row whose window leaves the image): row and column tested, by a load from the
   nearest pixel inside and a select (no branch, no address outside the input). check 2 (a pass at either end of
   a row inside): x0 is a constant, so the column test is settled at compile time and the tap is a constant
   offset from the row's start (gcc would else keep a pointer per tap, spilled). */
TE_INLINE uint32_t te_dw_word(const te_conv_params *p, const int8_t *input, int y0, int x0, int dy, int dx, int c,
                              int check) {
    const uint32_t zero = (uint8_t)-p->input_offset * 0x01010101u;
    const int y = y0 + dy, x = x0 + dx;
    if (check & 1) {
        const int row = y < 0 ? 0 : (y >= p->in_h ? p->in_h - 1 : y);
        const int col = x < 0 ? 0 : (x >= p->in_w ? p->in_w - 1 : x);
        const uint32_t v = te_load32(input + ((long)row * p->in_w + col) * p->in_c + c);
        return row == y && col == x ? v : zero;
    }
    if (check) {
        return x < 0 || x >= p->in_w ? zero : te_dw_load(input + (long)y0 * p->in_w * p->in_c + c,
                                                         ((long)dy * p->in_w + x) * p->in_c);
    }
    return te_dw_load(input + ((long)y0 * p->in_w + x0) * p->in_c + c, ((long)dy * p->in_w + dx) * p->in_c);
}

/* The 4 accumulators of channels c..c + 3 (a struct: gcc keeps it in registers, an array it may not). */
typedef struct {
    int32_t c0, c1, c2, c3;
} te_acc4;

/* An input word (int8 x 4) widened: bytes 0, 2 and 1, 3 as int16 pairs. */
typedef struct {
    int16x2_t x02, x13;
} te_wide4;

TE_INLINE te_wide4 te_dw_widen(uint32_t x) {
    const te_wide4 wide = {__sxtb16(x), te_sxtb16_hi(x)};
    return wide;
}

/* acc += the 4 channels of weights (w: widened) times inputs x (widened). */
TE_INLINE te_acc4 te_dw_mac4(te_acc4 acc, te_wide4 w, te_wide4 x) {
    acc.c0 = __smlabb(w.x02, x.x02, acc.c0);
    acc.c2 = __smlatt(w.x02, x.x02, acc.c2);
    acc.c1 = __smlabb(w.x13, x.x13, acc.c1);
    acc.c3 = __smlatt(w.x13, x.x13, acc.c3);
    return acc;
}

/* Channels c..c + 3 of output pixel (oy, ox), and (oy, ox + 1) when two (sharing the weight words). Where the
   second pixel's tap kx is the first's kx + 1 (stride_w = dil_w), its widened input is carried over to the first
   pixel's next tap: k_w + 1 loads a row, not 2 * k_w. */
TE_INLINE void te_dw_pixels4(const te_conv_params *p, const int8_t *input, int8_t *output, int oy, int ox,
                             int two, int check, int c) {
    const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int carry = two && p->stride_w == p->dil_w;
    te_acc4 a = {p->bias[c], p->bias[c + 1], p->bias[c + 2], p->bias[c + 3]}, b = a;
    TE_UNROLL
    for (int ky = 0; ky < p->k_h; ++ky) {
        const int dy = ky * p->dil_h;
        te_wide4 next = {0, 0};
        TE_UNROLL
        for (int kx = 0; kx < p->k_w; ++kx) {
            const int dx = kx * p->dil_w;
            const te_wide4 w = te_dw_widen(te_dw_load(p->weights + c, (long)(ky * p->k_w + kx) * p->out_c));
            a = te_dw_mac4(a, w, carry && kx > 0 ? next : te_dw_widen(te_dw_word(p, input, y0, x0, dy, dx, c,
                                                                                  check)));
            if (two) {
                next = te_dw_widen(te_dw_word(p, input, y0, x0, dy, dx + p->stride_w, c, check));
                b = te_dw_mac4(b, w, next);
            }
#ifdef __GNUC__   /* at the border, the sums advance tap by tap: gcc would else finish one channel first, spilling */
            if (check) {
                __asm__("" : "+r"(a.c0), "+r"(a.c1), "+r"(a.c2), "+r"(a.c3));
            }
#endif
        }
    }
    int8_t *out = output + ((long)oy * p->out_w + ox) * p->out_c + c;
    const int32_t sums[2][4] = {{a.c0, a.c1, a.c2, a.c3}, {b.c0, b.c1, b.c2, b.c3}};
    TE_UNROLL
    for (int j = 0; j < 4; ++j) {
        const int q = p->per_channel ? c + j : 0;
        const int32_t m = p->multipliers[q], s = p->shifts[q];
        out[j] = te_output(sums[0][j], m, s, p->fast, p->output_offset, p->act_min, p->act_max);
        if (two) {
            out[p->out_c + j] = te_output(sums[1][j], m, s, p->fast, p->output_offset, p->act_min, p->act_max);
        }
    }
}
#endif

/* Output pixel (oy, ox), and (oy, ox + 1) when two: groups of 4 channels where the core has SIMD, then the rest. */
TE_INLINE void te_dw_all(const te_conv_params *p, const int8_t *input, int8_t *output, int oy, int ox, int two,
                         int check) {
#ifdef __ARM_FEATURE_DSP
    /* the groups' end as one expression of the constant shapes: gcc then knows where the rest begins (counted
       from a loop's exit it warned that a late iteration of the rest would read past the bias) */
    const int groups_end = p->depth_multiplier == 1 ? p->out_c & ~3 : 0;
    for (int c = 0; c < groups_end; c += 4) {
        te_dw_pixels4(p, input, output, oy, ox, two, check, c);
    }
#else
    const int groups_end = 0;
#endif
    te_dw_pixels(p, input, output, oy, ox, two, check, groups_end);
}

/* Output row oy, two pixels per pass. A row whose window leaves the image (check_y) tests rows and columns at
   run time; in the others the passes at either end sit at constant columns (an unrolled loop: every column test is
   settled at compile time) and those between run without a test. */
TE_INLINE void te_dw_row(const te_conv_params *p, const int8_t *input, int8_t *output, int oy, int check_y) {
    const int span_w = (p->k_w - 1) * p->dil_w, out_w = p->out_w;
    if (check_y) {
        for (int ox = 0; ox < out_w; ox += 2) {
            te_dw_all(p, input, output, oy, ox, ox + 1 < out_w, 3);
        }
        return;
    }
    const int first = (p->pad_w + p->stride_w - 1) / p->stride_w;   /* first ox whose window starts inside */
    const int room = p->in_w - 1 - span_w + p->pad_w;
    const int end = room < 0 ? 0 : room / p->stride_w + 1;           /* first ox whose window leaves the image */
    const int left = (first + 1) / 2 * 2 < out_w ? (first + 1) / 2 * 2 : out_w;
    const int right = end > left ? left + (((end < out_w ? end : out_w) - left) & ~1) : left;
    TE_UNROLL
    for (int ox = 0; ox < left; ox += 2) {
        te_dw_all(p, input, output, oy, ox, ox + 1 < out_w, 2);
    }
    for (int ox = left; ox < right; ox += 2) {
        te_dw_all(p, input, output, oy, ox, 1, 0);
    }
    TE_UNROLL
    for (int ox = right; ox < out_w; ox += 2) {
        te_dw_all(p, input, output, oy, ox, ox + 1 < out_w, 2);
    }
}

/* Rows whose window leaves the image test their rows; the others run without any test. */
TE_INLINE void te_depthwise_conv2d(const te_conv_params *p, const int8_t *input, int8_t *output) {
    const int span_h = (p->k_h - 1) * p->dil_h;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int y0 = oy * p->stride_h - p->pad_h;
        if (y0 >= 0 && y0 + span_h < p->in_h) {
            te_dw_row(p, input, output, oy, 0);
        } else {
            te_dw_row(p, input, output, oy, 1);
        }
    }
}

#endif
