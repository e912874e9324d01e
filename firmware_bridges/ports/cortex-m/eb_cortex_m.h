/* The bare Cortex-M ports' shared start-up (eb_reset.c) and register access. */
#ifndef EB_CORTEX_M_H
#define EB_CORTEX_M_H

#include <stdint.h>

#include "eb_bridge.h"

#define EB_REG(address) (*(volatile uint32_t *)(address))

typedef void (*eb_vector_t)(void);

/* Runs first out of reset, before .data and .bss exist: registers only, no globals. */
void eb_port_early_init(void);
void eb_reset_handler(void);
void eb_default_handler(void);

/* From the UART receive interrupt: one byte for the bridge. */
void eb_rx_push(uint8_t byte);
/* The bridge in `mode`, fed from the queue for ever; main() ends here. */
__attribute__((noreturn)) void eb_serve_forever(eb_timing_t mode);

#endif
