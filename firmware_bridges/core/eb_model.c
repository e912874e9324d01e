/* Runs a converted model's layer table over the arena the board provides. */
#include "eb_model.h"

#include <string.h>

#include "eb_kernels.h"

void eb_model_invoke(const eb_model_t *model)
{
    int8_t *arena = model->arena;
    uint32_t i;
    for (i = 0; i < model->layer_count; ++i) {
        const eb_layer_t *l = &model->layers[i];
        const int8_t *in = arena + l->input;
        int8_t *out = arena + l->output;
        switch (l->op) {
        case EB_OP_CONV_2D:
            eb_conv_2d(l, in, out);
            break;
        case EB_OP_DEPTHWISE_CONV_2D:
            eb_depthwise_conv_2d(l, in, out);
            break;
        case EB_OP_FULLY_CONNECTED:
            eb_fully_connected(l, in, out);
            break;
        case EB_OP_ADD:
            eb_add(l, in, arena + l->input2, out);
            break;
        case EB_OP_AVERAGE_POOL_2D:
            eb_average_pool_2d(l, in, out);
            break;
        case EB_OP_SOFTMAX:
            eb_softmax(l, in, out);
            break;
        case EB_OP_RESHAPE:
            memmove(out, in, (size_t)(l->out_h * l->out_w * l->out_c));
            break;
        }
    }
}
