/* A model as the converter (edgebench/firmware/model_to_c.py) emits it: a flat table of int8
 * layers whose quantization parameters were computed on the host exactly as TFLM's Prepare
 * step computes them, and a tensor arena plan with its storage: nothing is allocated at run
 * time. */
#ifndef EB_MODEL_H
#define EB_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    EB_OP_CONV_2D = 0,
    EB_OP_DEPTHWISE_CONV_2D,
    EB_OP_FULLY_CONNECTED,
    EB_OP_ADD,
    EB_OP_AVERAGE_POOL_2D,
    EB_OP_SOFTMAX,
    EB_OP_RESHAPE
} eb_op_t;

/* One layer. Fields an op does not use are zero. Offsets index the arena. */
typedef struct {
    eb_op_t op;
    uint32_t input, input2, output;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t depth_multiplier;
    int32_t input_offset, input2_offset, filter_offset, output_offset;
    int32_t act_min, act_max;
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *multiplier; /* per output channel, or one for the whole tensor */
    const int32_t *shift;
    int32_t multiplier_count;
    /* ADD: both inputs rescaled, summed, rescaled to the output; SOFTMAX: input scaling. */
    int32_t left_shift;
    int32_t input_multiplier, input_shift, input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t diff_min;
} eb_layer_t;

/* How the host's db bytes map to the model input (edgebench.protocol.tiny_models). */
typedef enum {
    EB_WIRE_INT8 = 0,            /* the int8 input tensor as it is (kws01, eb-*) */
    EB_WIRE_UINT8_MINUS_128,     /* uint8 pixels, minus 128 (ic01, vww01) */
    EB_WIRE_FLOAT32LE            /* float32 values quantized on the device (ad01) */
} eb_wire_t;

typedef struct {
    uint32_t offset; /* in the arena */
    uint32_t bytes;
    float scale;
    int32_t zero_point;
} eb_tensor_t;

typedef struct {
    const char *model_id;    /* what profile% reports: eb-kws, kws01, ... */
    const char *model_sha256; /* of the .tflite the tables came from */
    const eb_layer_t *layers;
    uint32_t layer_count;
    int8_t *arena; /* arena_bytes of scratch, defined by the generated source */
    uint32_t arena_bytes;
    eb_tensor_t input;
    eb_tensor_t output;
    eb_wire_t wire_format;
    uint8_t *wire_buffer; /* db load storage, wire_bytes long */
    uint32_t wire_bytes;
    int32_t anomaly;         /* 1: report the reconstruction error, not the output vector */
    int32_t result_decimals; /* digits printed after the point in m-results- */
} eb_model_t;

/* The model compiled into this image (generated source). */
extern const eb_model_t eb_model;

/* Runs every layer in order; the input must already be at arena + input.offset. */
void eb_model_invoke(const eb_model_t *model);

#endif
