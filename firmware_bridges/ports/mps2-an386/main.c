/* Cortex-M4 port for the MPS2 AN386 board as QEMU emulates it (qemu-system-arm -M
 * mps2-an386): CMSDK UART0 for the host, SysTick on the 1 MHz reference clock for
 * microseconds, CMSDK GPIO0 bit 0 as the timestamp pin. Received bytes are queued by the
 * UART interrupt and the core sleeps in WFI between commands (cortex-m/eb_serve.c), so an
 * idle emulator does not keep a host core busy.
 *
 * Under QEMU's -icount the timer counts emulated instructions, not a real chip's cycles:
 * timings from this port are functional checks, never performance figures. */
#include <stdint.h>

#include "eb_bridge.h"
#include "eb_cortex_m.h"
#include "eb_port.h"

#define UART0_BASE 0x40004000UL
#define UART_DATA EB_REG(UART0_BASE + 0x00)
#define UART_STATE EB_REG(UART0_BASE + 0x04)
#define UART_CTRL EB_REG(UART0_BASE + 0x08)
#define UART_INTCLEAR EB_REG(UART0_BASE + 0x0C)
#define UART_BAUDDIV EB_REG(UART0_BASE + 0x10)
#define UART_STATE_TX_FULL 1U
#define UART_STATE_RX_FULL 2U
#define UART_CTRL_TX_RX_RXIRQ 0x0BU

#define GPIO0_DATAOUT EB_REG(0x40010004UL)
#define GPIO0_OUTENSET EB_REG(0x40010010UL)

#define SYST_CSR EB_REG(0xE000E010UL)
#define SYST_RVR EB_REG(0xE000E014UL)
#define SYST_CVR EB_REG(0xE000E018UL)
#define SCB_ICSR EB_REG(0xE000ED04UL)
#define ICSR_PENDSTSET (1UL << 26)
#define NVIC_ISER0 EB_REG(0xE000E100UL)
#define SYSTICK_MAX 0xFFFFFFUL

static volatile uint32_t eb_systick_wraps;

const char *eb_port_vendor(void)
{
    return "edgebench mps2-an386";
}

void eb_port_write(const char *data, size_t length)
{
    size_t i;
    for (i = 0; i < length; ++i) {
        while (UART_STATE & UART_STATE_TX_FULL) {
        }
        UART_DATA = (uint8_t)data[i];
    }
}

void eb_systick_handler(void)
{
    ++eb_systick_wraps;
}

void eb_uart0_rx_handler(void)
{
    /* Acknowledge before draining: a byte landing after the last check then raises the
     * interrupt again instead of sitting in the data register with its interrupt cleared. */
    UART_INTCLEAR = 2U;
    while (UART_STATE & UART_STATE_RX_FULL) {
        eb_rx_push((uint8_t)UART_DATA);
    }
}

uint32_t eb_port_micros(void)
{
    uint32_t wraps, count;
    __asm volatile("cpsid i" ::: "memory");
    wraps = eb_systick_wraps;
    count = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* wrapped, interrupt not yet taken */
        count = SYST_CVR;
        ++wraps;
    }
    __asm volatile("cpsie i" ::: "memory");
    return wraps * (SYSTICK_MAX + 1) + (SYSTICK_MAX - count);
}

void eb_port_timestamp_pin(int level)
{
    GPIO0_DATAOUT = level ? 1U : 0U;
}

int main(void)
{
    GPIO0_OUTENSET = 1U;
    UART_BAUDDIV = 16;
    UART_CTRL = UART_CTRL_TX_RX_RXIRQ;
    NVIC_ISER0 = 1U; /* UART0 RX */
    SYST_RVR = SYSTICK_MAX;
    SYST_CVR = 0;
    SYST_CSR = 3U; /* enable + interrupt, 1 MHz reference clock */
    while (SYST_CVR == 0) {
        /* the counter reads 0 until its first reload */
    }
    eb_serve_forever(EB_TIMING_PERFORMANCE);
}
