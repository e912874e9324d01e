/* Reset and the vector table for a bare Cortex-M4: no vendor SDK, no CMSIS. */
#include <stdint.h>

extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;
extern int main(void);
void eb_reset_handler(void);
void eb_systick_handler(void);
void eb_uart0_rx_handler(void);

static void eb_default_handler(void)
{
    for (;;) {
    }
}

void eb_reset_handler(void)
{
    uint32_t *source = &_data_load;
    uint32_t *target;
    for (target = &_data_start; target < &_data_end;) {
        *target++ = *source++;
    }
    for (target = &_bss_start; target < &_bss_end;) {
        *target++ = 0;
    }
    main();
    eb_default_handler();
}

typedef void (*eb_vector_t)(void);

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
