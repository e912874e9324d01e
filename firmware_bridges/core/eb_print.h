/* Reply formatting without printf: many embedded C libraries lack %f, and results must print
 * the same digits a host-side printf("%.Nf") would. */
#ifndef EB_PRINT_H
#define EB_PRINT_H

#include <stddef.h>
#include <stdint.h>

void eb_print(const char *text);
void eb_print_u32(uint32_t value);
/* value with `decimals` (0..6) digits after the point, rounded half to even on its exact
 * binary value, as glibc's and Python's formatting do. */
void eb_print_float(double value, int decimals);
void eb_print_hex_byte(uint8_t value);

#endif
