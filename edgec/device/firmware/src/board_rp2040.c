/* RP2040 (Raspberry Pi Pico) clocks and UART0 (RP2040 datasheet: 2.14 resets, 2.15 clocks, 2.16
 * XOSC, 2.19 GPIO, 4.2 the Arm PrimeCell PL011 UART).
 *
 * board_init starts the 12 MHz crystal oscillator and runs clk_ref, clk_sys (the core and SysTick)
 * and clk_peri (the UART) from it, so the baud rate does not depend on the ring oscillator's
 * spread. UART0 is on GPIO0 (TX) and GPIO1 (RX), 115200 8N1, FIFOs off: each byte is read as it
 * arrives (87 us apart, about a thousand core cycles), and edgec's host sends nothing while the model
 * runs (one frame, then it waits for the reply). The receive interrupt only wakes the core from WFI:
 * the handler disables it in the NVIC (it stays asserted until DR is read) and uart_getc enables
 * it again before sleeping. */
#include "edgec_fw.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define CLR_ALIAS 0x3000u /* write-1-to-clear alias of a peripheral's registers */

#define RESETS_BASE 0x4000C000u
#define RESETS_RESET REG(RESETS_BASE + 0x0u)
#define RESETS_RESET_CLR REG(RESETS_BASE + CLR_ALIAS + 0x0u)
#define RESETS_DONE REG(RESETS_BASE + 0x8u)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_UART0 (1u << 22)

#define XOSC_BASE 0x40024000u
#define XOSC_CTRL REG(XOSC_BASE + 0x00u)
#define XOSC_STATUS REG(XOSC_BASE + 0x04u)
#define XOSC_STARTUP REG(XOSC_BASE + 0x0Cu)
#define XOSC_CTRL_1_15MHZ 0xAA0u
#define XOSC_CTRL_ENABLE (0xFABu << 12)
#define XOSC_STATUS_STABLE (1u << 31)
#define XOSC_HZ 12000000u

#define CLOCKS_BASE 0x40008000u
#define CLK_REF_CTRL REG(CLOCKS_BASE + 0x30u)
#define CLK_REF_SELECTED REG(CLOCKS_BASE + 0x38u)
#define CLK_SYS_CTRL REG(CLOCKS_BASE + 0x3Cu)
#define CLK_SYS_SELECTED REG(CLOCKS_BASE + 0x44u)
#define CLK_PERI_CTRL REG(CLOCKS_BASE + 0x48u)
#define CLK_REF_SRC_XOSC 2u
#define CLK_SYS_SRC_REF 0u
#define CLK_PERI_ENABLE (1u << 11) /* AUXSRC 0: clk_sys */

#define IO_BANK0_GPIO_CTRL(n) REG(0x40014000u + 0x004u + 8u * (n))
#define FUNCSEL_UART 2u

#define UART_DR REG(EDGEC_UART_BASE + 0x000u)
#define UART_FR REG(EDGEC_UART_BASE + 0x018u)
#define UART_IBRD REG(EDGEC_UART_BASE + 0x024u)
#define UART_FBRD REG(EDGEC_UART_BASE + 0x028u)
#define UART_LCR_H REG(EDGEC_UART_BASE + 0x02Cu)
#define UART_CR REG(EDGEC_UART_BASE + 0x030u)
#define UART_IMSC REG(EDGEC_UART_BASE + 0x038u)
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCR_H_WLEN_8 (3u << 5)
#define CR_UARTEN (1u << 0)
#define CR_TXE (1u << 8)
#define CR_RXE (1u << 9)
#define IMSC_RXIM (1u << 4)

#define NVIC_ISER REG(0xE000E100u)
#define NVIC_ICER REG(0xE000E180u)
#define RX_IRQ_BIT (1u << EDGEC_UART_RX_IRQ)

#define BAUD 115200u

void board_init(void)
{
    XOSC_CTRL = XOSC_CTRL_1_15MHZ;
    XOSC_STARTUP = (XOSC_HZ / 1000u + 128u) / 256u; /* ~1 ms, in units of 256 cycles */
    XOSC_CTRL = XOSC_CTRL_1_15MHZ | XOSC_CTRL_ENABLE;
    while (!(XOSC_STATUS & XOSC_STATUS_STABLE)) {
    }
    CLK_REF_CTRL = CLK_REF_SRC_XOSC;
    while (CLK_REF_SELECTED != (1u << CLK_REF_SRC_XOSC)) {
    }
    CLK_SYS_CTRL = CLK_SYS_SRC_REF;
    while (CLK_SYS_SELECTED != (1u << CLK_SYS_SRC_REF)) {
    }
    CLK_PERI_CTRL = CLK_PERI_ENABLE;
    const uint32_t blocks = RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0;
    RESETS_RESET_CLR = blocks;
    while ((RESETS_DONE & blocks) != blocks) {
    }
}

void uart_init(void)
{
    /* Divisor = clk_peri / (16 * baud) in 16.6 fixed point, rounded (datasheet 4.2.7.1). */
    uint32_t div64 = (8u * XOSC_HZ / BAUD + 1u) / 2u;
    UART_IBRD = div64 >> 6;
    UART_FBRD = div64 & 0x3Fu;
    UART_LCR_H = LCR_H_WLEN_8; /* also latches IBRD/FBRD; FIFOs off */
    UART_CR = CR_UARTEN | CR_TXE | CR_RXE;
    IO_BANK0_GPIO_CTRL(0) = FUNCSEL_UART;
    IO_BANK0_GPIO_CTRL(1) = FUNCSEL_UART;
    UART_IMSC = IMSC_RXIM;
}

void uart_putc(uint8_t c)
{
    while (UART_FR & FR_TXFF) {
    }
    UART_DR = c;
}

void UART0RX_Handler(void)
{
    NVIC_ICER = RX_IRQ_BIT;
}

int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    uint32_t start = counter_ms();
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (!(UART_FR & FR_RXFE)) {
            *c = (uint8_t)UART_DR;
            __asm volatile("cpsie i" ::: "memory");
            return 0;
        }
        if (timeout_ms != 0u && counter_ms() - start >= timeout_ms) {
            __asm volatile("cpsie i" ::: "memory");
            return -1;
        }
        NVIC_ISER = RX_IRQ_BIT;
        /* With interrupts masked, a pending interrupt still ends WFI. */
        __asm volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
    }
}
