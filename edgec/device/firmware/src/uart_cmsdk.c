/* Driver for the CMSDK APB UART of QEMU's mps2/mps3 boards.
 *
 * The UART has a single-byte receive register and QEMU stops reading the host socket while
 * it is full, so no byte is lost while the firmware computes. The receive interrupt is used
 * only to wake the core from WFI: waiting costs no host CPU time. */
#include "edgec_fw.h"

#define UART_DATA (*(volatile uint32_t *)(EDGEC_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(EDGEC_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(EDGEC_UART_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(EDGEC_UART_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(EDGEC_UART_BASE + 0x10u))

#define STATE_TXFULL 0x1u
#define STATE_RXFULL 0x2u
#define CTRL_TXEN 0x1u
#define CTRL_RXEN 0x2u
#define CTRL_RXINTEN 0x8u
#define INT_RX 0x2u

#define NVIC_ISER ((volatile uint32_t *)0xE000E100u)

void uart_init(void)
{
    UART_BAUDDIV = 16u; /* the smallest valid divider; QEMU ignores the rate */
    UART_CTRL = CTRL_TXEN | CTRL_RXEN | CTRL_RXINTEN;
    NVIC_ISER[EDGEC_UART_RX_IRQ / 32u] = 1u << (EDGEC_UART_RX_IRQ % 32u);
}

void uart_putc(uint8_t c)
{
    while (UART_STATE & STATE_TXFULL) {
    }
    UART_DATA = c;
}

void UART0RX_Handler(void)
{
    /* Only acknowledges: the byte itself is read by uart_getc. */
    UART_INTCLEAR = INT_RX;
}

int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    uint32_t start = counter_ms();
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (UART_STATE & STATE_RXFULL) {
            UART_INTCLEAR = INT_RX;
            *c = (uint8_t)UART_DATA;
            __asm volatile("cpsie i" ::: "memory");
            return 0;
        }
        if (timeout_ms != 0u && counter_ms() - start >= timeout_ms) {
            __asm volatile("cpsie i" ::: "memory");
            return -1;
        }
        /* With interrupts masked, a pending interrupt still ends WFI, so a byte that
         * arrives between the check above and WFI is not missed. */
        __asm volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
    }
}
