/* STM32F405/407 clock tree and USART1 (RM0090, the STM32F405/407 reference manual).
 *
 * board_init runs the core at 168 MHz from the internal 16 MHz HSI through the main PLL
 * (M=16, N=336, P=2: 168 MHz; Q=7: 48 MHz for USB), so no board's crystal (8, 12 or 25 MHz)
 * is assumed. Flash gets 5 wait states first (168 MHz at 2.7-3.6 V, RM0090 table 10), APB2
 * runs at 84 MHz and APB1 at 42 MHz (their maximums). The PLL lock wait is bounded: QEMU's
 * netduinoplus2 does not model the RCC (its registers read 0), so there the core stays on the
 * HSI setting, and SysTick still runs at the 168 MHz QEMU gives the core. USART1 is on PA9 (TX)
 * and PA10 (RX), alternate function 7, 115200 8N1.
 *
 * board_early_init turns the USART's receiver on at the first instruction after reset: QEMU's model
 * drops the bytes that arrive while it is off, and the host sends its first request as soon as it
 * connects. (On the chip, a byte sent before the firmware listens is lost the same way.)
 *
 * The receive interrupt only wakes the core from WFI: the handler disables it in the NVIC (RXNE
 * stays set until the data register is read, so a level interrupt left enabled would fire
 * forever; QEMU's model also keeps its line high when RXNEIE is cleared, so masking it in the
 * USART would not do) and uart_getc enables it again before sleeping. Like QEMU's CMSDK UART, QEMU's STM32 USART stops
 * reading the host socket while a byte waits in DR, so no byte is lost while the model runs. */
#include "edgec_fw.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30u)
#define RCC_APB2ENR REG(RCC_BASE + 0x44u)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CFGR_SW_PLL 0x2u
#define RCC_CFGR_SWS_MASK (0x3u << 2)
#define RCC_CFGR_SWS_PLL (0x2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (0x5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (0x4u << 13)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB2ENR_USART1EN (1u << 4)

#define FLASH_ACR REG(0x40023C00u)
#define FLASH_ACR_LATENCY_5WS 5u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER REG(GPIOA_BASE + 0x00u)
#define GPIOA_AFRH REG(GPIOA_BASE + 0x24u)

#define USART_SR REG(EDGEC_UART_BASE + 0x00u)
#define USART_DR REG(EDGEC_UART_BASE + 0x04u)
#define USART_BRR REG(EDGEC_UART_BASE + 0x08u)
#define USART_CR1 REG(EDGEC_UART_BASE + 0x0Cu)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_RXNEIE (1u << 5)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)

#define NVIC_ISER ((volatile uint32_t *)0xE000E100u)
#define NVIC_ICER ((volatile uint32_t *)0xE000E180u)
#define RX_IRQ_WORD (EDGEC_UART_RX_IRQ / 32u)
#define RX_IRQ_BIT (1u << (EDGEC_UART_RX_IRQ % 32u))

#define HSI_HZ 16000000u
#define PLL_LOCK_POLLS 20000u /* the PLL locks in about 100 us: a few hundred polls at 16 MHz */
#define BAUD 115200u

static uint32_t apb2_hz = HSI_HZ;

void board_early_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR; /* a read after enabling a clock, before touching the peripheral (errata 2.1.13) */
    USART_BRR = (HSI_HZ + BAUD / 2u) / BAUD;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void board_init(void)
{
    FLASH_ACR = FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    /* PLLM=16 (bits 5:0), PLLN=336 (14:6), PLLP=2 (17:16 = 0), source HSI (bit 22 = 0), PLLQ=7 (27:24). */
    RCC_PLLCFGR = 16u | (336u << 6) | (0u << 16) | (7u << 24);
    RCC_CR |= RCC_CR_PLLON;
    for (uint32_t i = 0; i < PLL_LOCK_POLLS; i++) {
        if (RCC_CR & RCC_CR_PLLRDY) {
            RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2 | RCC_CFGR_SW_PLL;
            while ((RCC_CFGR & RCC_CFGR_SWS_MASK) != RCC_CFGR_SWS_PLL) {
            }
            apb2_hz = 84000000u;
            break;
        }
    }
}

void uart_init(void)
{
    /* PA9, PA10: alternate function mode (0b10), AF7 = USART1. */
    GPIOA_MODER = (GPIOA_MODER & ~((3u << 18) | (3u << 20))) | (2u << 18) | (2u << 20);
    GPIOA_AFRH = (GPIOA_AFRH & ~((0xFu << 4) | (0xFu << 8))) | (7u << 4) | (7u << 8);
    /* Oversampling by 16: BRR = fck / baud in 12.4 fixed point, rounded. */
    USART_BRR = (apb2_hz + BAUD / 2u) / BAUD;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
}

void uart_putc(uint8_t c)
{
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = c;
}

void UART0RX_Handler(void)
{
    NVIC_ICER[RX_IRQ_WORD] = RX_IRQ_BIT;
}

int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    uint32_t start = counter_ms();
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (USART_SR & SR_RXNE) {
            *c = (uint8_t)USART_DR;
            __asm volatile("cpsie i" ::: "memory");
            return 0;
        }
        if (timeout_ms != 0u && counter_ms() - start >= timeout_ms) {
            __asm volatile("cpsie i" ::: "memory");
            return -1;
        }
        NVIC_ISER[RX_IRQ_WORD] = RX_IRQ_BIT;
        /* With interrupts masked, a pending interrupt still ends WFI. */
        __asm volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
    }
}
