/* int8 kernels with TFLM's reference semantics, one per op the bundled suite uses. */
#ifndef EB_KERNELS_H
#define EB_KERNELS_H

#include "eb_model.h"

void eb_conv_2d(const eb_layer_t *layer, const int8_t *input, int8_t *output);
void eb_depthwise_conv_2d(const eb_layer_t *layer, const int8_t *input, int8_t *output);
void eb_fully_connected(const eb_layer_t *layer, const int8_t *input, int8_t *output);
void eb_add(const eb_layer_t *layer, const int8_t *input, const int8_t *input2, int8_t *output);
void eb_average_pool_2d(const eb_layer_t *layer, const int8_t *input, int8_t *output);
void eb_softmax(const eb_layer_t *layer, const int8_t *input, int8_t *output);

#endif
