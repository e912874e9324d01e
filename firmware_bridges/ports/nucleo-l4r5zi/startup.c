/* The vector table for the STM32L4R5 (flash at 0x08000000, aliased at 0 on boot). Reset is
 * the shared cortex-m/eb_reset.c, after eb_port_early_init (main.c) switches to HSI16. */
#include <stdint.h>

#include "eb_cortex_m.h"

extern uint32_t _stack_top;
void eb_lpuart1_handler(void);

#define FIRST_IRQ 16
#define LPUART1_VECTOR (FIRST_IRQ + 70)

__attribute__((section(".isr_vector"), used)) static const eb_vector_t
    eb_vectors[LPUART1_VECTOR + 1] = {
        [0] = (eb_vector_t)(uintptr_t)&_stack_top,
        [1] = eb_reset_handler,
        [2] = eb_default_handler, /* NMI */
        [3] = eb_default_handler, /* HardFault */
        [4] = eb_default_handler, /* MemManage */
        [5] = eb_default_handler, /* BusFault */
        [6] = eb_default_handler, /* UsageFault */
        [11] = eb_default_handler, /* SVCall */
        [12] = eb_default_handler, /* DebugMonitor */
        [14] = eb_default_handler, /* PendSV */
        [15] = eb_default_handler, /* SysTick (unused) */
        [LPUART1_VECTOR] = eb_lpuart1_handler,
};
