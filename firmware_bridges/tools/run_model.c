/* Host check of the kernels: reads input tensors (raw int8, one after another) on stdin,
 * runs the compiled-in model on each and writes the raw int8 output tensors to stdout.
 * edgebench's tests compare these bytes with TFLM's for whole evaluation sets. */
#include <stdio.h>
#include <string.h>

#include "eb_model.h"

int main(void)
{
    int8_t *input = eb_model.arena + eb_model.input.offset;
    const int8_t *output = eb_model.arena + eb_model.output.offset;
    while (fread(input, 1, eb_model.input.bytes, stdin) == eb_model.input.bytes) {
        eb_model_invoke(&eb_model);
        if (fwrite(output, 1, eb_model.output.bytes, stdout) != eb_model.output.bytes) {
            return 1;
        }
    }
    return ferror(stdin) ? 1 : 0;
}
