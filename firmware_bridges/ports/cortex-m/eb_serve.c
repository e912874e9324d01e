/* The bare Cortex-M ports' main loop: the UART interrupt queues received bytes, the core
 * hands them to the bridge and sleeps in WFI while there are none (an idle board draws
 * less, an idle emulator leaves the host core alone). */
#include "eb_bridge.h"
#include "eb_cortex_m.h"

#define RX_QUEUE 1024U /* a power of two */

static volatile uint8_t eb_rx_queue[RX_QUEUE];
static volatile uint32_t eb_rx_head, eb_rx_tail;

void eb_rx_push(uint8_t byte)
{
    if (eb_rx_head - eb_rx_tail < RX_QUEUE) { /* full: dropped (commands are far shorter) */
        eb_rx_queue[eb_rx_head % RX_QUEUE] = byte;
        ++eb_rx_head;
    }
}

void eb_serve_forever(eb_timing_t mode)
{
    eb_bridge_init(mode);
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (eb_rx_head == eb_rx_tail) {
            __asm volatile("wfi\n\tcpsie i" ::: "memory"); /* wakes on the pending IRQ */
            continue;
        }
        __asm volatile("cpsie i" ::: "memory");
        while (eb_rx_head != eb_rx_tail) {
            const uint8_t byte = eb_rx_queue[eb_rx_tail % RX_QUEUE];
            ++eb_rx_tail;
            if (eb_bridge_receive(byte)) {
                eb_bridge_execute();
            }
        }
    }
}
