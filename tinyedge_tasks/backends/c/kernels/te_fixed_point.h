/* TFLite's fixed-point primitives (gemmlowp semantics, double rounding as in the PyPI tflite-micro build), the
   requantization and output narrowing the kernels share, and word loads.
   Right shifts of negative values are arithmetic on every compiler tinyedge supports (gcc, arm-none-eabi-gcc). */
#ifndef TE_FIXED_POINT_H
#define TE_FIXED_POINT_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_SAT) || defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

#ifdef __GNUC__   /* the per-layer kernels are inlined into each layer, where every shape is a constant */
#define TE_INLINE static inline __attribute__((always_inline))
#define TE_UNROLL _Pragma("GCC unroll 8")
#else
#define TE_INLINE static inline
#define TE_UNROLL
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

static inline int32_t te_clamp(int32_t value, int32_t low, int32_t high) {
    return value < low ? low : (value > high ? high : value);
}

/* An accumulator requantized (te_mbqm), plus the output offset, clamped to the activation range (within int8).
   fast, which the generator proves per layer (every shift negative, |acc| < 2^30), takes shift as e - 1 (e = -the
   TFLite shift) and gives the same value in ~8 instructions: the rounded doubling high product is
   round(2acc * multiplier / 2^32), the high word of one SMULL plus the low word's top bit (one SMMULR
   on DSP cores); x / 2^e rounded half
   away from zero is ((x - (x < 0)) >> (e - 1) + 1) >> 1, and the offset joins before the last halving, doubled.
   Where the range starts at or above the offset (a ReLU), the - (x < 0) goes: every x < 0 gives at most the
   offset either way, and the clamp makes that low.
   On cores with saturation one SSAT narrows where the range is all of int8 (constants in an inlined kernel). */
TE_INLINE int8_t te_output(int32_t acc, int32_t multiplier, int32_t shift, int fast, int32_t offset, int32_t low,
                           int32_t high) {
    int32_t value;
    if (fast) {
        int32_t x;
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)   /* SMMULR: the same high word, rounded, one instruction */
        __asm__("smmulr %0, %1, %2" : "=r"(x) : "r"(acc * 2), "r"(multiplier));
#else
        const int64_t product = (int64_t)(acc * 2) * multiplier;
        x = (int32_t)(product >> 32) + (int32_t)((uint32_t)product >> 31);
#endif
        if (low < offset) {   /* at or above the zero point (ReLU) a negative x clamps to low with either rounding */
            x += x >> 31;
        }
        x >>= shift;
        value = (x + 1 + 2 * offset) >> 1;
    } else {
        value = te_mbqm(acc, multiplier, shift) + offset;
    }
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

#ifdef __ARM_FEATURE_DSP
/* Bytes 1 and 3 of x sign-extended into two int16 halves: SXTB16 with its rotation, one instruction (gcc does not
   fold a shift into __sxtb16). */
TE_INLINE int16x2_t te_sxtb16_hi(uint32_t x) {
#ifdef __GNUC__
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
#else
    return __sxtb16(x >> 8);
#endif
}
#endif

#endif
