/* NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4): MLPerf Tiny's reference board, bare registers
 * from ST's reference manual (RM0432) and the NUCLEO-144 user manual (UM2179).
 * - Clock: HSI16, 16 MHz, as the system clock (zero flash wait states). The reference
 *   submissions run the PLL at 120 MHz: timings from this port are not comparable to them.
 * - Host link: LPUART1 on PG7 (TX) / PG8 (RX), alternate function 8, wired to the ST-LINK's
 *   virtual COM port; 115200 8N1 from HSI16. Port G's upper pins sit on VDDIO2, which must
 *   be declared valid (PWR_CR2.IOSV) before they work.
 * - Microseconds: TIM2, 32 bits, counting at 1 MHz (16 MHz / 16): wraps as the protocol's
 *   unsigned counter does.
 * - Timestamp pin: Arduino D7 (PF13), idle high; the meter sees the falling edge.
 * Not yet run on a board: docs/deploy.md says so. */
#include <stdint.h>

#include "eb_bridge.h"
#include "eb_cortex_m.h"
#include "eb_port.h"

#define RCC_BASE 0x40021000UL
#define RCC_CR EB_REG(RCC_BASE + 0x00)
#define RCC_CFGR EB_REG(RCC_BASE + 0x08)
#define RCC_AHB2ENR EB_REG(RCC_BASE + 0x4C)
#define RCC_APB1ENR1 EB_REG(RCC_BASE + 0x58)
#define RCC_APB1ENR2 EB_REG(RCC_BASE + 0x5C)
#define RCC_CCIPR EB_REG(RCC_BASE + 0x88)
#define RCC_CR_HSION (1UL << 8)
#define RCC_CR_HSIRDY (1UL << 10)
#define RCC_CFGR_SW_HSI16 1UL
#define RCC_AHB2ENR_GPIOF (1UL << 5)
#define RCC_AHB2ENR_GPIOG (1UL << 6)
#define RCC_APB1ENR1_TIM2 (1UL << 0)
#define RCC_APB1ENR1_PWR (1UL << 28)
#define RCC_APB1ENR2_LPUART1 (1UL << 0)
#define RCC_CCIPR_LPUART1SEL_SHIFT 10
#define RCC_CCIPR_LPUART1SEL_HSI16 2UL

#define PWR_CR2 EB_REG(0x40007004UL)
#define PWR_CR2_IOSV (1UL << 9)

#define GPIOF_BASE 0x48001400UL
#define GPIOG_BASE 0x48001800UL
#define GPIO_MODER(base) EB_REG((base) + 0x00)
#define GPIO_BSRR(base) EB_REG((base) + 0x18)
#define GPIO_AFRL(base) EB_REG((base) + 0x20)
#define GPIO_AFRH(base) EB_REG((base) + 0x24)
#define GPIO_MODE_OUTPUT 1UL
#define GPIO_MODE_ALTERNATE 2UL
#define PIN_TIMESTAMP 13 /* PF13 */
#define PIN_TX 7         /* PG7 */
#define PIN_RX 8         /* PG8 */
#define AF_LPUART1 8UL

#define LPUART1_BASE 0x40008000UL
#define LPUART_CR1 EB_REG(LPUART1_BASE + 0x00)
#define LPUART_BRR EB_REG(LPUART1_BASE + 0x0C)
#define LPUART_ISR EB_REG(LPUART1_BASE + 0x1C)
#define LPUART_ICR EB_REG(LPUART1_BASE + 0x20)
#define LPUART_RDR EB_REG(LPUART1_BASE + 0x24)
#define LPUART_TDR EB_REG(LPUART1_BASE + 0x28)
#define LPUART_CR1_UE (1UL << 0)
#define LPUART_CR1_RE (1UL << 2)
#define LPUART_CR1_TE (1UL << 3)
#define LPUART_CR1_RXNEIE (1UL << 5)
#define LPUART_ISR_ORE (1UL << 3)
#define LPUART_ISR_RXNE (1UL << 5)
#define LPUART_ISR_TXE (1UL << 7)
#define LPUART_ICR_ORECF (1UL << 3)
#define LPUART1_IRQ 70

#define TIM2_BASE 0x40000000UL
#define TIM2_CR1 EB_REG(TIM2_BASE + 0x00)
#define TIM2_EGR EB_REG(TIM2_BASE + 0x14)
#define TIM2_CNT EB_REG(TIM2_BASE + 0x24)
#define TIM2_PSC EB_REG(TIM2_BASE + 0x28)
#define TIM2_ARR EB_REG(TIM2_BASE + 0x2C)

#define NVIC_ISER(n) EB_REG(0xE000E100UL + 4UL * (n))

#define HSI16_HZ 16000000UL
#define BAUD 115200UL

const char *eb_port_vendor(void)
{
    return "edgebench nucleo-l4r5zi";
}

void eb_port_early_init(void)
{
    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY)) {
    }
    RCC_CFGR = (RCC_CFGR & ~3UL) | RCC_CFGR_SW_HSI16;
    while (((RCC_CFGR >> 2) & 3UL) != RCC_CFGR_SW_HSI16) {
    }
}

void eb_port_write(const char *data, size_t length)
{
    size_t i;
    for (i = 0; i < length; ++i) {
        while (!(LPUART_ISR & LPUART_ISR_TXE)) {
        }
        LPUART_TDR = (uint8_t)data[i];
    }
}

void eb_lpuart1_handler(void)
{
    uint32_t status = LPUART_ISR;
    while (status & LPUART_ISR_RXNE) { /* reading RDR clears RXNE */
        eb_rx_push((uint8_t)LPUART_RDR);
        status = LPUART_ISR;
    }
    if (status & LPUART_ISR_ORE) { /* a byte was lost; the bridge's parser resynchronises */
        LPUART_ICR = LPUART_ICR_ORECF;
    }
}

uint32_t eb_port_micros(void)
{
    return TIM2_CNT;
}

void eb_port_timestamp_pin(int level)
{
    GPIO_BSRR(GPIOF_BASE) = level ? (1UL << PIN_TIMESTAMP) : (1UL << (PIN_TIMESTAMP + 16));
}

static void set_mode(uint32_t base, int pin, uint32_t mode)
{
    GPIO_MODER(base) = (GPIO_MODER(base) & ~(3UL << (2 * pin))) | (mode << (2 * pin));
}

int main(void)
{
    RCC_APB1ENR1 |= RCC_APB1ENR1_PWR | RCC_APB1ENR1_TIM2;
    RCC_APB1ENR2 |= RCC_APB1ENR2_LPUART1;
    RCC_AHB2ENR |= RCC_AHB2ENR_GPIOF | RCC_AHB2ENR_GPIOG;
    (void)RCC_AHB2ENR; /* the read-back gives the clocks their cycles before first use */
    PWR_CR2 |= PWR_CR2_IOSV;

    eb_port_timestamp_pin(1);
    set_mode(GPIOF_BASE, PIN_TIMESTAMP, GPIO_MODE_OUTPUT);

    GPIO_AFRL(GPIOG_BASE) = (GPIO_AFRL(GPIOG_BASE) & ~(0xFUL << 28)) | (AF_LPUART1 << 28);
    GPIO_AFRH(GPIOG_BASE) = (GPIO_AFRH(GPIOG_BASE) & ~0xFUL) | AF_LPUART1;
    set_mode(GPIOG_BASE, PIN_TX, GPIO_MODE_ALTERNATE);
    set_mode(GPIOG_BASE, PIN_RX, GPIO_MODE_ALTERNATE);
    RCC_CCIPR = (RCC_CCIPR & ~(3UL << RCC_CCIPR_LPUART1SEL_SHIFT)) |
                (RCC_CCIPR_LPUART1SEL_HSI16 << RCC_CCIPR_LPUART1SEL_SHIFT);
    LPUART_BRR = (uint32_t)((256ULL * HSI16_HZ + BAUD / 2) / BAUD);
    LPUART_CR1 = LPUART_CR1_TE | LPUART_CR1_RE | LPUART_CR1_RXNEIE | LPUART_CR1_UE;
    NVIC_ISER(LPUART1_IRQ / 32) = 1UL << (LPUART1_IRQ % 32);

    TIM2_PSC = HSI16_HZ / 1000000UL - 1;
    TIM2_ARR = 0xFFFFFFFFUL;
    TIM2_EGR = 1UL; /* load the prescaler now */
    TIM2_CR1 = 1UL;

    eb_serve_forever(EB_TIMING_PERFORMANCE);
}
