/* UART0 of the nRF51 and nRF52 series (the nRF51 Series Reference Manual v3.0 chapter 29, the
 * nRF52840 Product Specification's UART chapter: the same registers at 0x40002000), 115200 8N1
 * without flow control, on the board's TX/RX pins (EDGEC_UART_TX_PIN, EDGEC_UART_RX_PIN:
 * P0.24/P0.25 on the micro:bit v1, which go to its USB interface chip).
 *
 * RXDRDY stays set until software clears it, so the receive interrupt only wakes the core from
 * WFI: the handler masks it, and uart_getc unmasks it before sleeping. The event is cleared
 * before RXD is read, as the manual requires, so the next byte of the receive FIFO raises it again. */
#include "edgec_fw.h"

#ifndef EDGEC_UART_TX_PIN
#error "EDGEC_UART_TX_PIN must be defined by the build (see edgec/firmware/boards_chips.py)"
#endif
#ifndef EDGEC_UART_RX_PIN
#error "EDGEC_UART_RX_PIN must be defined by the build"
#endif

#define REG(off) (*(volatile uint32_t *)(EDGEC_UART_BASE + (off)))
#define UART_TASKS_STARTRX REG(0x000u)
#define UART_TASKS_STARTTX REG(0x008u)
#define UART_EVENTS_RXDRDY REG(0x108u)
#define UART_EVENTS_TXDRDY REG(0x11Cu)
#define UART_EVENTS_ERROR REG(0x124u)
#define UART_INTENSET REG(0x304u)
#define UART_INTENCLR REG(0x308u)
#define UART_ERRORSRC REG(0x480u)
#define UART_ENABLE REG(0x500u)
#define UART_PSELRTS REG(0x508u)
#define UART_PSELTXD REG(0x50Cu)
#define UART_PSELCTS REG(0x510u)
#define UART_PSELRXD REG(0x514u)
#define UART_RXD REG(0x518u)
#define UART_TXD REG(0x51Cu)
#define UART_BAUDRATE REG(0x524u)
#define UART_CONFIG REG(0x56Cu)

#define ENABLE_UART 4u
#define BAUD_115200 0x01D7E000u
#define INT_RXDRDY (1u << 2)
#define PIN_DISCONNECTED 0xFFFFFFFFu

/* GPIO P0: the TX pin is an output driven high (idle line) before the UART takes it. */
#define GPIO_OUTSET (*(volatile uint32_t *)0x50000508u)
#define GPIO_PIN_CNF(n) (*(volatile uint32_t *)(0x50000700u + 4u * (n)))
#define PIN_CNF_OUTPUT 1u
#define PIN_CNF_INPUT_CONNECTED 0u

#define NVIC_ISER ((volatile uint32_t *)0xE000E100u)

void uart_init(void)
{
    GPIO_OUTSET = 1u << EDGEC_UART_TX_PIN;
    GPIO_PIN_CNF(EDGEC_UART_TX_PIN) = PIN_CNF_OUTPUT;
    GPIO_PIN_CNF(EDGEC_UART_RX_PIN) = PIN_CNF_INPUT_CONNECTED;
    UART_PSELRTS = PIN_DISCONNECTED;
    UART_PSELCTS = PIN_DISCONNECTED;
    UART_PSELTXD = EDGEC_UART_TX_PIN;
    UART_PSELRXD = EDGEC_UART_RX_PIN;
    UART_BAUDRATE = BAUD_115200;
    UART_CONFIG = 0u; /* no parity, no flow control */
    UART_ENABLE = ENABLE_UART;
    UART_EVENTS_RXDRDY = 0u;
    UART_EVENTS_TXDRDY = 0u;
    UART_TASKS_STARTTX = 1u;
    UART_TASKS_STARTRX = 1u;
    NVIC_ISER[EDGEC_UART_RX_IRQ / 32u] = 1u << (EDGEC_UART_RX_IRQ % 32u);
}

void uart_putc(uint8_t c)
{
    UART_TXD = c;
    while (UART_EVENTS_TXDRDY == 0u) {
    }
    UART_EVENTS_TXDRDY = 0u;
}

void UART0RX_Handler(void)
{
    UART_INTENCLR = INT_RXDRDY;
}

int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    uint32_t start = counter_ms();
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (UART_EVENTS_ERROR != 0u) { /* an overrun or framing error: clear it and keep receiving */
            UART_ERRORSRC = UART_ERRORSRC;
            UART_EVENTS_ERROR = 0u;
        }
        if (UART_EVENTS_RXDRDY != 0u) {
            UART_EVENTS_RXDRDY = 0u;
            *c = (uint8_t)UART_RXD;
            __asm volatile("cpsie i" ::: "memory");
            return 0;
        }
        if (timeout_ms != 0u && counter_ms() - start >= timeout_ms) {
            __asm volatile("cpsie i" ::: "memory");
            return -1;
        }
        UART_INTENSET = INT_RXDRDY;
        /* With interrupts masked, a pending interrupt still ends WFI. */
        __asm volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
    }
}
