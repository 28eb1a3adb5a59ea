/* SOFTMAX int8 -> int8 as TFLM runs it (reference_ops::Softmax with gemmlowp fixed point: exp_on_negative_values
   of the scaled difference to the row maximum, a Q12 sum, its reciprocal by Newton-Raphson). Output scale 1/256,
   zero point -128. */
#include "te_fixed_point.h"
#include "te_kernels.h"

#define TE_SCALED_DIFF_BITS 5   /* input differences in Q5.26 */
#define TE_ACCUM_BITS 12        /* sum of exponentials in Q12.19 */

/* Saturating x * 2^exponent for a positive exponent (gemmlowp SaturatingRoundingMultiplyByPOT). */
static int32_t shift_left_saturating(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), a and the result in Q0.31: Taylor series around -1/8. */
static int32_t exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);              /* a + 1/8 */
    const int32_t x2 = te_srdhm(x, x);
    const int32_t x3 = te_srdhm(x2, x);
    const int32_t x4 = te_srdhm(x2, x2);
    const int32_t x4_over_4 = te_rounding_divide_by_pot(x4, 2);
    const int32_t poly = te_rounding_divide_by_pot(te_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + te_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values): the remainder modulo 1/4 by
   the series, then one factor exp(-2^k) per set bit of the rest. */
static int32_t exp_on_negative_values(int32_t a) {
    static const int32_t factors[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - TE_SCALED_DIFF_BITS;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = exp_quarter(shift_left_saturating(a_mod_quarter_minus_quarter, TE_SCALED_DIFF_BITS));
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    for (int k = 0; k < 7; ++k) {                 /* exponents -2 .. +4 */
        if (remainder & ((int32_t)1 << (fractional_bits - 2 + k))) {
            result = te_srdhm(result, factors[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1) in Q0.31 (gemmlowp one_over_one_plus_x_for_x_in_0_1): Newton-Raphson in Q2.29. */
static int32_t one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + te_srdhm(half_denominator, -1010580540);   /* 48/17 - 32/17 * d */
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus_dx = ((int32_t)1 << 29) - te_srdhm(half_denominator, x);
        x = x + shift_left_saturating(te_srdhm(x, one_minus_dx), 2);
    }
    return shift_left_saturating(x, 1);
}

static int count_leading_zeros(uint32_t x) {
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

void te_softmax(const te_softmax_params *p, const int8_t *input, int8_t *output) {
    for (int row = 0; row < p->outer; ++row) {
        const int8_t *in = input + (long)row * p->depth;
        int8_t *out = output + (long)row * p->depth;
        int32_t max = -128;
        for (int c = 0; c < p->depth; ++c) {
            if (in[c] > max) {
                max = in[c];
            }
        }
        int32_t sum = 0;
        for (int c = 0; c < p->depth; ++c) {
            const int32_t diff = in[c] - max;
            if (diff >= p->diff_min) {
                const int32_t scaled = te_srdhm((int32_t)((uint32_t)diff << p->left_shift), p->multiplier);
                sum += te_rounding_divide_by_pot(exp_on_negative_values(scaled), TE_ACCUM_BITS);
            }
        }
        const int headroom = count_leading_zeros((uint32_t)sum);
        const int bits_over_unit = TE_ACCUM_BITS - headroom;
        const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);
        const int exponent = bits_over_unit + 31 - 8;
        for (int c = 0; c < p->depth; ++c) {
            const int32_t diff = in[c] - max;
            int32_t value = -128;
            if (diff >= p->diff_min) {
                const int32_t scaled = te_srdhm((int32_t)((uint32_t)diff << p->left_shift), p->multiplier);
                value = te_rounding_divide_by_pot(te_srdhm(shifted_scale, exp_on_negative_values(scaled)), exponent) - 128;
            }
            out[c] = (int8_t)te_clamp(value, -128, 127);
        }
    }
}
