/* TFLite's fixed-point primitives (gemmlowp semantics, double rounding as in the PyPI tflite-micro build), the
   requantization and output narrowing the kernels share, and word loads.
   Right shifts of negative values are arithmetic on every compiler tinyedge supports (gcc, arm-none-eabi-gcc). */
#ifndef TE_FIXED_POINT_H
#define TE_FIXED_POINT_H

#include <stdint.h>
#include <string.h>

#ifdef __ARM_FEATURE_SAT
#include <arm_acle.h>
#endif

#ifdef __GNUC__   /* the per-layer kernels are inlined into each layer, where every shape is a constant */
#define TE_INLINE static inline __attribute__((always_inline))
#define TE_UNROLL _Pragma("GCC unroll 8")
#else
#define TE_INLINE static inline
#define TE_UNROLL
/* Unaligned 32-bit loads and stores (one LDR/STR on the Cortex-M4/M7/M33). */
TE_INLINE uint32_t te_load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

TE_INLINE void te_store32(void *p, uint32_t v) {
    memcpy(p, &v, 4);
}

#endif

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

/* te_mbqm for a right shift (shift < 0) and |x| < 2^30, which the generator proves per layer (`fast`): the
   rounded doubling high product is round(2x * multiplier / 2^32), and rounding x / 2^e halves away from zero is
   ((x - (x < 0)) >> (e - 1) + 1) >> 1 (e - 1 = ~shift). Equal to te_mbqm for every such input, in ~7 instructions. */
TE_INLINE int32_t te_requantize(int32_t x, int32_t multiplier, int32_t shift, int fast) {
    if (!fast) {
        return te_mbqm(x, multiplier, shift);
    }
    int32_t y = (int32_t)(((int64_t)(x * 2) * multiplier + ((int64_t)1 << 31)) >> 32);
    y = (y + (y >> 31)) >> ~shift;
    return (y + 1) >> 1;
}

static inline int32_t te_clamp(int32_t value, int32_t low, int32_t high) {
    return value < low ? low : (value > high ? high : value);
}

/* A requantized value + the output offset, clamped to the activation range (within int8) and narrowed: one
   SSAT where the range is the whole int8 range (constant in an inlined kernel). */
TE_INLINE int8_t te_output(int32_t value, int32_t offset, int32_t low, int32_t high) {
    value += offset;
#ifdef __ARM_FEATURE_SAT
    value = __ssat(value, 8);
    value = low > -128 && value < low ? low : value;
    return (int8_t)(high < 127 && value > high ? high : value);
#else
    return (int8_t)te_clamp(value, low, high);
#endif
}

/* Unaligned 32-bit loads and stores (one LDR/STR on the Cortex-M4/M7/M33). */
TE_INLINE uint32_t te_load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

TE_INLINE void te_store32(void *p, uint32_t v) {
    memcpy(p, &v, 4);
}

#endif
