/* The vector table for the MPS2 AN386 under QEMU: no vendor SDK, no CMSIS. Reset is the
 * shared cortex-m/eb_reset.c; nothing to set up before it (QEMU's clocks need none). */
#include <stdint.h>

#include "eb_cortex_m.h"

extern uint32_t _stack_top;
void eb_systick_handler(void);
void eb_uart0_rx_handler(void);

void eb_port_early_init(void)
{
}

/* 16 system exceptions, then the external interrupts (UART0 RX is IRQ 0 on the MPS2). */
__attribute__((section(".isr_vector"), used)) static const eb_vector_t eb_vectors[48] = {
    (eb_vector_t)(uintptr_t)&_stack_top,
    eb_reset_handler,
    eb_default_handler, /* NMI */
    eb_default_handler, /* HardFault */
    eb_default_handler, /* MemManage */
    eb_default_handler, /* BusFault */
    eb_default_handler, /* UsageFault */
    0, 0, 0, 0,
    eb_default_handler, /* SVCall */
    eb_default_handler, /* DebugMonitor */
    0,
    eb_default_handler, /* PendSV */
    eb_systick_handler,
    eb_uart0_rx_handler, /* IRQ 0 */
};
