/* int8 kernels following TFLM's reference kernels step for step (accumulation order does not
 * matter for int32 sums, but every rounding does). Layouts are NHWC with batch 1; filters are
 * OHWI for CONV_2D, 1HWO for DEPTHWISE_CONV_2D and [units][depth] for FULLY_CONNECTED. */
#include "eb_kernels.h"

#include "eb_fixedpoint.h"

static int8_t eb_clamp(int32_t value, int32_t low, int32_t high)
{
    if (value < low) {
        value = low;
    }
    if (value > high) {
        value = high;
    }
    return (int8_t)value;
}

static int32_t eb_requantize(const eb_layer_t *layer, int32_t acc, int32_t channel)
{
    const int32_t index = layer->multiplier_count > 1 ? channel : 0;
    if (layer->bias) {
        acc += layer->bias[channel];
    }
    acc = eb_multiply_by_quantized_multiplier(acc, layer->multiplier[index], layer->shift[index]);
    return acc + layer->output_offset;
}

void eb_conv_2d(const eb_layer_t *l, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, oc, fy, fx, ic;
    for (oy = 0; oy < l->out_h; ++oy) {
        for (ox = 0; ox < l->out_w; ++ox) {
            const int32_t y0 = oy * l->stride_h - l->pad_h;
            const int32_t x0 = ox * l->stride_w - l->pad_w;
            for (oc = 0; oc < l->out_c; ++oc) {
                int32_t acc = 0;
                for (fy = 0; fy < l->filter_h; ++fy) {
                    const int32_t iy = y0 + l->dilation_h * fy;
                    if (iy < 0 || iy >= l->in_h) {
                        continue;
                    }
                    for (fx = 0; fx < l->filter_w; ++fx) {
                        const int32_t ix = x0 + l->dilation_w * fx;
                        const int8_t *in_px;
                        const int8_t *f_px;
                        if (ix < 0 || ix >= l->in_w) {
                            continue;
                        }
                        in_px = input + (iy * l->in_w + ix) * l->in_c;
                        f_px = l->filter + ((oc * l->filter_h + fy) * l->filter_w + fx) * l->in_c;
                        for (ic = 0; ic < l->in_c; ++ic) {
                            acc += (int32_t)f_px[ic] * ((int32_t)in_px[ic] + l->input_offset);
                        }
                    }
                }
                output[(oy * l->out_w + ox) * l->out_c + oc] =
                    eb_clamp(eb_requantize(l, acc, oc), l->act_min, l->act_max);
            }
        }
    }
}

void eb_depthwise_conv_2d(const eb_layer_t *l, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, ic, m, fy, fx;
    for (oy = 0; oy < l->out_h; ++oy) {
        for (ox = 0; ox < l->out_w; ++ox) {
            const int32_t y0 = oy * l->stride_h - l->pad_h;
            const int32_t x0 = ox * l->stride_w - l->pad_w;
            for (ic = 0; ic < l->in_c; ++ic) {
                for (m = 0; m < l->depth_multiplier; ++m) {
                    const int32_t oc = ic * l->depth_multiplier + m;
                    int32_t acc = 0;
                    for (fy = 0; fy < l->filter_h; ++fy) {
                        const int32_t iy = y0 + l->dilation_h * fy;
                        if (iy < 0 || iy >= l->in_h) {
                            continue;
                        }
                        for (fx = 0; fx < l->filter_w; ++fx) {
                            const int32_t ix = x0 + l->dilation_w * fx;
                            if (ix < 0 || ix >= l->in_w) {
                                continue;
                            }
                            acc += (int32_t)l->filter[(fy * l->filter_w + fx) * l->out_c + oc] *
                                   ((int32_t)input[(iy * l->in_w + ix) * l->in_c + ic] +
                                    l->input_offset);
                        }
                    }
                    output[(oy * l->out_w + ox) * l->out_c + oc] =
                        eb_clamp(eb_requantize(l, acc, oc), l->act_min, l->act_max);
                }
            }
        }
    }
}

void eb_fully_connected(const eb_layer_t *l, const int8_t *input, int8_t *output)
{
    const int32_t depth = l->in_h * l->in_w * l->in_c;
    int32_t unit, d;
    for (unit = 0; unit < l->out_c; ++unit) {
        const int8_t *row = l->filter + unit * depth;
        int32_t acc = 0;
        for (d = 0; d < depth; ++d) {
            acc += ((int32_t)row[d] + l->filter_offset) * ((int32_t)input[d] + l->input_offset);
        }
        output[unit] = eb_clamp(eb_requantize(l, acc, unit), l->act_min, l->act_max);
    }
}

void eb_add(const eb_layer_t *l, const int8_t *input, const int8_t *input2, int8_t *output)
{
    const int32_t count = l->out_h * l->out_w * l->out_c;
    int32_t i;
    for (i = 0; i < count; ++i) {
        const int32_t a = (l->input_offset + input[i]) * (1 << l->left_shift);
        const int32_t b = (l->input2_offset + input2[i]) * (1 << l->left_shift);
        const int32_t scaled_a = eb_multiply_by_quantized_multiplier(a, l->input_multiplier,
                                                                     l->input_shift);
        const int32_t scaled_b = eb_multiply_by_quantized_multiplier(b, l->input2_multiplier,
                                                                     l->input2_shift);
        const int32_t sum = eb_multiply_by_quantized_multiplier(
                                scaled_a + scaled_b, l->output_multiplier, l->output_shift) +
                            l->output_offset;
        output[i] = eb_clamp(sum, l->act_min, l->act_max);
    }
}

void eb_average_pool_2d(const eb_layer_t *l, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, c, fy, fx;
    for (oy = 0; oy < l->out_h; ++oy) {
        for (ox = 0; ox < l->out_w; ++ox) {
            const int32_t y0 = oy * l->stride_h - l->pad_h;
            const int32_t x0 = ox * l->stride_w - l->pad_w;
            const int32_t fy_start = y0 < 0 ? -y0 : 0;
            const int32_t fx_start = x0 < 0 ? -x0 : 0;
            const int32_t fy_end = l->filter_h < l->in_h - y0 ? l->filter_h : l->in_h - y0;
            const int32_t fx_end = l->filter_w < l->in_w - x0 ? l->filter_w : l->in_w - x0;
            for (c = 0; c < l->in_c; ++c) {
                int32_t acc = 0;
                int32_t count = 0;
                for (fy = fy_start; fy < fy_end; ++fy) {
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        acc += input[((y0 + fy) * l->in_w + (x0 + fx)) * l->in_c + c];
                        ++count;
                    }
                }
                if (count > 0) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                output[(oy * l->out_w + ox) * l->out_c + c] =
                    eb_clamp(acc, l->act_min, l->act_max);
            }
        }
    }
}

/* --- softmax: gemmlowp's fixed-point exp and reciprocal, as TFLM's int8 softmax uses --- */

#define EB_SOFTMAX_DIFF_INTEGER_BITS 5
#define EB_SOFTMAX_ACCUM_INTEGER_BITS 12

static int32_t eb_add_wrapping(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* exp(a) for a in [-1/4, 0), a and result with 0 integer bits (Taylor series around -1/8). */
static int32_t eb_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = eb_add_wrapping(a, 1 << 28);
    const int32_t x2 = eb_sat_rounding_doubling_high_mul(x, x);
    const int32_t x3 = eb_sat_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = eb_sat_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = eb_rounding_divide_by_pot(x4, 2);
    const int32_t poly = eb_rounding_divide_by_pot(
        eb_add_wrapping(
            eb_sat_rounding_doubling_high_mul(eb_add_wrapping(x4_over_4, x3), one_third), x2),
        1);
    return eb_add_wrapping(constant_term,
                           eb_sat_rounding_doubling_high_mul(constant_term,
                                                             eb_add_wrapping(x, poly)));
}

/* exp(a) for a <= 0 given with 5 integer bits; result with 0 integer bits. */
static int32_t eb_exp_on_negative_values(int32_t a)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535,   720401,     242};
    const int fractional_bits = 31 - EB_SOFTMAX_DIFF_INTEGER_BITS;
    const int32_t one_quarter = 1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t mod_quarter = (a & mask) - one_quarter;
    int32_t result = eb_exp_quarter(eb_saturating_left_shift(mod_quarter, EB_SOFTMAX_DIFF_INTEGER_BITS));
    const int32_t remainder = eb_add_wrapping(mod_quarter, -a);
    int exponent;
    for (exponent = -2; exponent <= 4; ++exponent) {
        if (remainder & (int32_t)(1UL << (fractional_bits + exponent))) {
            result = eb_sat_rounding_doubling_high_mul(result, multipliers[exponent + 2]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), 0 integer bits in and out (Newton-Raphson, 3 steps). */
static int32_t eb_one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = eb_add_wrapping(1515870810,
                                eb_sat_rounding_doubling_high_mul(half_denominator, -1010580540));
    int step;
    for (step = 0; step < 3; ++step) {
        const int32_t product = eb_sat_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus = (1 << 29) - product;
        x = eb_add_wrapping(
            x, eb_saturating_left_shift(eb_sat_rounding_doubling_high_mul(x, one_minus), 2));
    }
    return eb_saturating_left_shift(x, 1);
}

static int eb_count_leading_zeros(uint32_t x)
{
    int count = 0;
    while (count < 32 && !(x & 0x80000000UL)) {
        x <<= 1;
        ++count;
    }
    return count;
}

void eb_softmax(const eb_layer_t *l, const int8_t *input, int8_t *output)
{
    const int32_t depth = l->out_c;
    const int32_t rows = l->out_h * l->out_w;
    int32_t row, c;
    for (row = 0; row < rows; ++row) {
        const int8_t *in = input + row * depth;
        int8_t *out = output + row * depth;
        int32_t max_value = -128;
        int32_t sum = 0;
        int32_t reciprocal;
        int bits_over_unit;
        int headroom;
        for (c = 0; c < depth; ++c) {
            max_value = in[c] > max_value ? in[c] : max_value;
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = in[c] - max_value;
            if (diff >= l->diff_min) {
                const int32_t scaled = eb_sat_rounding_doubling_high_mul(
                    diff * (1 << l->input_shift), l->input_multiplier);
                sum = eb_add_wrapping(
                    sum, eb_rounding_divide_by_pot(eb_exp_on_negative_values(scaled),
                                                   EB_SOFTMAX_ACCUM_INTEGER_BITS));
            }
        }
        headroom = eb_count_leading_zeros((uint32_t)sum);
        bits_over_unit = EB_SOFTMAX_ACCUM_INTEGER_BITS - headroom;
        reciprocal = eb_one_over_one_plus_x(
            (int32_t)(((uint32_t)sum << headroom) - (1UL << 31)));
        for (c = 0; c < depth; ++c) {
            const int32_t diff = in[c] - max_value;
            int32_t value = -128;
            if (diff >= l->diff_min) {
                const int32_t scaled = eb_sat_rounding_doubling_high_mul(
                    diff * (1 << l->input_shift), l->input_multiplier);
                const int32_t exp_value = eb_exp_on_negative_values(scaled);
                value = eb_rounding_divide_by_pot(
                            eb_sat_rounding_doubling_high_mul(reciprocal, exp_value),
                            bits_over_unit + 31 - 8) -
                        128;
            }
            out[c] = eb_clamp(value, -128, 127);
        }
    }
}
