/* TFLite's fixed-point primitives (gemmlowp semantics, double rounding as in the PyPI tflite-micro build) and
   the window clipping the convolutions share.
   Right shifts of negative values are arithmetic on every compiler tinyedge supports (gcc, arm-none-eabi-gcc). */
#ifndef TE_FIXED_POINT_H
#define TE_FIXED_POINT_H

#include <stdint.h>

/* round(a * b / 2^31), saturating the one overflow case (INT32_MIN * INT32_MIN). */
static inline int32_t te_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, halves away from zero. */
static inline int32_t te_rounding_divide_by_pot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), as TFLite rounds it. */
static inline int32_t te_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return te_rounding_divide_by_pot(te_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* The taps [first, last) of a window starting at origin with this dilation that fall inside 0 .. size - 1. */
static inline void te_window(int origin, int dilation, int taps, int size, int *first, int *last) {
    int a = origin < 0 ? (-origin + dilation - 1) / dilation : 0;
    int b = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
    b = b < taps ? b : taps;
    *first = a < b ? a : b;
    *last = b;
}

static inline int32_t te_clamp(int32_t value, int32_t low, int32_t high) {
    return value < low ? low : (value > high ? high : value);
}

#endif
