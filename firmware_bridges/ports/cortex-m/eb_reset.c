/* What every bare Cortex-M port does before main(): copy .data from flash, clear .bss.
 * The port's own startup file holds its vector table, whose reset entry is
 * eb_reset_handler, and may run eb_port_early_init() first (clocks, FPU). */
#include <stdint.h>

#include "eb_cortex_m.h"

extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end;
extern int main(void);

void eb_default_handler(void)
{
    for (;;) {
    }
}

void eb_reset_handler(void)
{
    uint32_t *source = &_data_load;
    uint32_t *target;
    eb_port_early_init();
    for (target = &_data_start; target < &_data_end;) {
        *target++ = *source++;
    }
    for (target = &_bss_start; target < &_bss_end;) {
        *target++ = 0;
    }
    main();
    eb_default_handler();
}
