/* The inference hook implemented with the reference int8 kernels and the converted model.
 * Load and results follow MLPerf Tiny's reference th_load_tensor / th_results, so firmware
 * built from this core answers exactly like theirs for the official model ids. */
#include "eb_backend.h"

#include <string.h>

#include "eb_model.h"

size_t eb_backend_input_bytes(void)
{
    return eb_model.wire_bytes;
}

uint8_t *eb_backend_wire_buffer(void)
{
    return eb_model.wire_buffer;
}

/* round(value / scale) + zero point, halves away from zero, clamped: the division in float
 * like the reference firmware, the rounding in double so no half is lost. */
static int8_t eb_quantize(float value, float scale, int32_t zero_point)
{
    const double ratio = (double)(value / scale);
    int32_t q = (int32_t)(ratio >= 0 ? ratio + 0.5 : ratio - 0.5) + zero_point;
    if (q < -128) {
        q = -128;
    }
    if (q > 127) {
        q = 127;
    }
    return (int8_t)q;
}

static float eb_wire_float(const uint8_t *bytes)
{
    const uint32_t bits = (uint32_t)bytes[0] | ((uint32_t)bytes[1] << 8) |
                          ((uint32_t)bytes[2] << 16) | ((uint32_t)bytes[3] << 24);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

int eb_backend_load(const uint8_t *wire, size_t length)
{
    int8_t *input = eb_model.arena + eb_model.input.offset;
    uint32_t i;
    if (length != eb_model.wire_bytes) {
        return -1;
    }
    for (i = 0; i < eb_model.input.bytes; ++i) {
        switch (eb_model.wire_format) {
        case EB_WIRE_INT8:
            input[i] = (int8_t)wire[i];
            break;
        case EB_WIRE_UINT8_MINUS_128:
            input[i] = (int8_t)((int32_t)wire[i] - 128);
            break;
        case EB_WIRE_FLOAT32LE:
            input[i] = eb_quantize(eb_wire_float(wire + 4 * i), eb_model.input.scale,
                                   eb_model.input.zero_point);
            break;
        }
    }
    return 0;
}

void eb_backend_infer(void)
{
    eb_model_invoke(&eb_model);
}

static float eb_dequantize(int8_t value, const eb_tensor_t *tensor)
{
    return ((float)value - (float)tensor->zero_point) * tensor->scale;
}

/* Mean squared error between the reconstruction and the input the DUT received. For ad01
 * (FP32 windows) in float, summed in order, as MLPerf Tiny's reference firmware does; for
 * edgebench's int8 eb-ad in double, as the host scores LoadGen runs of the same model. */
static double eb_reconstruction_error(void)
{
    const int8_t *output = eb_model.arena + eb_model.output.offset;
    const uint8_t *wire = eb_model.wire_buffer; /* the arena's input bytes are reused */
    const uint32_t count = eb_model.output.bytes;
    uint32_t i;
    if (eb_model.wire_format == EB_WIRE_FLOAT32LE) {
        float sum = 0.0f;
        for (i = 0; i < count; ++i) {
            const float diff = eb_dequantize(output[i], &eb_model.output) - eb_wire_float(wire + 4 * i);
            sum += diff * diff;
        }
        return sum / (float)count;
    } else {
        double sum = 0.0;
        for (i = 0; i < count; ++i) {
            const double original =
                ((double)(int8_t)wire[i] - eb_model.input.zero_point) * (double)eb_model.input.scale;
            const double reconstructed = ((double)output[i] - eb_model.output.zero_point) *
                                         (double)eb_model.output.scale;
            sum += (original - reconstructed) * (original - reconstructed);
        }
        return sum / count;
    }
}

size_t eb_backend_results(double *values, size_t capacity)
{
    const int8_t *output = eb_model.arena + eb_model.output.offset;
    size_t i;
    if (eb_model.anomaly) {
        if (capacity > 0) {
            values[0] = eb_reconstruction_error();
        }
        return capacity > 0 ? 1 : 0;
    }
    for (i = 0; i < eb_model.output.bytes && i < capacity; ++i) {
        values[i] = eb_dequantize(output[i], &eb_model.output);
    }
    return i;
}

int eb_backend_result_decimals(void)
{
    return eb_model.result_decimals;
}

const char *eb_backend_model_id(void)
{
    return eb_model.model_id;
}

const char *eb_backend_model_sha256(void)
{
    return eb_model.model_sha256;
}
