/* Fixed-point primitives with the exact rounding of TFLM's reference kernels (which take
 * them from gemmlowp). Every kernel result depends on these being identical, bit for bit. */
#ifndef EB_FIXEDPOINT_H
#define EB_FIXEDPOINT_H

#include <stdint.h>

static inline int32_t eb_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31));
}

static inline int32_t eb_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^(shift - 31), rounded as TFLM does without TFLITE_SINGLE_ROUNDING. */
static inline int32_t eb_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return eb_rounding_divide_by_pot(
        eb_sat_rounding_doubling_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int32_t eb_saturating_left_shift(int32_t x, int exponent)
{
    const int64_t wide = (int64_t)x * (1LL << exponent);
    if (wide > INT32_MAX) {
        return INT32_MAX;
    }
    if (wide < INT32_MIN) {
        return INT32_MIN;
    }
    return (int32_t)wide;
}

/* gemmlowp's SaturatingRoundingMultiplyByPOT for a run-time exponent. */
static inline int32_t eb_multiply_by_pot(int32_t x, int exponent)
{
    if (exponent > 0) {
        return eb_saturating_left_shift(x, exponent);
    }
    if (exponent < 0) {
        return eb_rounding_divide_by_pot(x, -exponent);
    }
    return x;
}

#endif
