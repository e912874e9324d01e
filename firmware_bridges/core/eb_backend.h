/* The inference hook: how the loaded bytes become the model input, one inference, and the
 * results. eb_backend_kernels.c implements it with the reference int8 kernels; a vendor with
 * its own runtime (TFLM + CMSIS-NN, a vendor NPU SDK) replaces that one file. */
#ifndef EB_BACKEND_H
#define EB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the host must send with db load (the model input in the model id's wire format). */
size_t eb_backend_input_bytes(void);

/* Where db load stores the wire bytes (eb_backend_input_bytes() long). */
uint8_t *eb_backend_wire_buffer(void);

/* Convert the loaded wire bytes into the model input (untimed, like th_load_tensor).
 * Returns 0, or -1 when the byte count is wrong. */
int eb_backend_load(const uint8_t *wire, size_t length);

/* One inference on the loaded input (the timed part). */
void eb_backend_infer(void);

/* The result vector of the last inference; returns how many were written. */
size_t eb_backend_results(double *values, size_t capacity);

/* Digits after the point when printing results (3 for MLPerf Tiny ids, 6 for edgebench's). */
int eb_backend_result_decimals(void);

/* Identity for profile% and the edgebench eb-info% extension. */
const char *eb_backend_model_id(void);
const char *eb_backend_model_sha256(void);

#endif
