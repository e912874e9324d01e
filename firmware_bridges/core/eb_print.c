#include "eb_print.h"

#include <string.h>

#include "eb_port.h"

void eb_print(const char *text)
{
    eb_port_write(text, strlen(text));
}

void eb_print_u32(uint32_t value)
{
    char digits[11];
    int at = (int)sizeof digits;
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    eb_port_write(digits + at, sizeof digits - (size_t)at);
}

static void eb_print_u64_padded(uint64_t value, int width)
{
    char digits[21];
    int at = (int)sizeof digits;
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
        --width;
    } while (value || width > 0);
    eb_port_write(digits + at, sizeof digits - (size_t)at);
}

/* A 128-bit unsigned value as two halves, for the exact decimal scaling below. */
typedef struct {
    uint64_t high, low;
} eb_u128;

static eb_u128 eb_shift_right(eb_u128 x, unsigned bits)
{
    eb_u128 r = {0, 0};
    if (bits >= 128) {
        return r;
    }
    if (bits >= 64) {
        r.low = x.high >> (bits - 64);
        return r;
    }
    if (bits == 0) {
        return x;
    }
    r.low = (x.low >> bits) | (x.high << (64 - bits));
    r.high = x.high >> bits;
    return r;
}

/* round-half-even(m * power * 2^exponent) for m < 2^53, power <= 10^6, exponent < 0. */
static uint64_t eb_scaled_round(uint64_t m, int exponent, uint64_t power)
{
    const unsigned shift = (unsigned)-exponent;
    const uint64_t low_part = (m & 0xffffffffU) * power;
    const uint64_t high_part = (m >> 32) * power;
    eb_u128 product, remainder, half = {0, 0};
    uint64_t quotient;
    int above, tie;
    product.low = low_part + (high_part << 32);
    product.high = (high_part >> 32) + (product.low < low_part ? 1U : 0U);
    if (shift >= 128) {
        return 0; /* the product is below 2^73, so this is below 2^-55: zero */
    }
    quotient = eb_shift_right(product, shift).low;
    if (shift >= 64) {
        remainder.low = product.low;
        remainder.high = product.high & (((uint64_t)1 << (shift - 64)) - 1);
        if (shift == 64) {
            half.low = (uint64_t)1 << 63;
        } else {
            half.high = (uint64_t)1 << (shift - 65);
        }
    } else {
        remainder.high = 0;
        remainder.low = product.low & (((uint64_t)1 << shift) - 1);
        half.low = (uint64_t)1 << (shift - 1);
    }
    above = remainder.high > half.high || (remainder.high == half.high && remainder.low > half.low);
    tie = remainder.high == half.high && remainder.low == half.low;
    return quotient + ((above || (tie && (quotient & 1U))) ? 1U : 0U);
}

void eb_print_float(double value, int decimals)
{
    /* Digits exactly as a correctly rounded printf("%.*f") gives them: from the double's exact
     * binary value, ties to even, without floating-point steps that could round twice. */
    static const uint64_t powers[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    uint64_t bits;
    uint64_t mantissa;
    int exponent;
    uint64_t whole;
    if (decimals < 0) {
        decimals = 0;
    }
    if (decimals > 6) {
        decimals = 6;
    }
    if (value != value) {
        eb_print("nan");
        return;
    }
    if (value < 0) {
        eb_print("-");
        value = -value;
    }
    if (value >= 1e12) {
        eb_print("inf");
        return;
    }
    memcpy(&bits, &value, sizeof bits);
    exponent = (int)((bits >> 52) & 0x7ff);
    mantissa = bits & (((uint64_t)1 << 52) - 1);
    if (exponent == 0) {
        exponent = -1074;
    } else {
        mantissa |= (uint64_t)1 << 52;
        exponent -= 1075;
    }
    whole = exponent >= 0 ? (mantissa << exponent) * powers[decimals]
                          : eb_scaled_round(mantissa, exponent, powers[decimals]);
    eb_print_u64_padded(whole / powers[decimals], 1);
    if (decimals > 0) {
        eb_print(".");
        eb_print_u64_padded(whole % powers[decimals], decimals);
    }
}

void eb_print_hex_byte(uint8_t value)
{
    static const char hex[] = "0123456789abcdef";
    char text[2];
    text[0] = hex[value >> 4];
    text[1] = hex[value & 15];
    eb_port_write(text, 2);
}
