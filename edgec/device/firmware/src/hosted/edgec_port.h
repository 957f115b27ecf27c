/* edgec's serial protocol inside a framework (Arduino, PlatformIO, Zephyr, ESP-IDF): the framework
 * owns main() and the serial port; its glue (the example) defines uart_init/uart_putc/uart_getc and
 * counter_* of edgec_fw.h and calls edgec_serve_one() forever. Counts are microseconds. */
#ifndef EDGEC_PORT_H
#define EDGEC_PORT_H
#define EDGEC_NO_MAIN 1
#define EDGEC_UART_BASE 0u   /* unused: the framework's serial port */
#define EDGEC_UART_RX_IRQ 0u /* unused */
#define EDGEC_COUNTER_HZ 1000000u
#endif
