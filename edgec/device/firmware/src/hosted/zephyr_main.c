/* edgec serial verification protocol on the Zephyr board's console UART (chosen zephyr,console),
 * 115200 8N1, polled; prj.conf turns the console and boot banner off so the line carries frames only.
 * `edgec verify OUT/ID --port /dev/ttyACM0` checks every output bit for bit; counts are microseconds. */
#include <zephyr/device.h>
#include <zephyr/drivers/uart.h>
#include <zephyr/kernel.h>

#include "edgec_fw.h"

static const struct device *const uart = DEVICE_DT_GET(DT_CHOSEN(zephyr_console));
static uint32_t last_cycles;
static uint64_t high_cycles;
static uint64_t started_cycles;

static uint64_t now_cycles(void)
{
    uint32_t v = k_cycle_get_32();
    if (v < last_cycles) {
        high_cycles += 1ull << 32;
    }
    last_cycles = v;
    return high_cycles + v;
}

void uart_init(void)
{
}

void uart_putc(uint8_t c)
{
    uart_poll_out(uart, c);
}

int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    int64_t start = k_uptime_get();
    for (;;) {
        unsigned char b;
        if (uart_poll_in(uart, &b) == 0) {
            *c = b;
            return 0;
        }
        if (timeout_ms != 0u && k_uptime_get() - start >= (int64_t)timeout_ms) {
            return -1;
        }
        k_yield();
    }
}

void counter_init(void)
{
    last_cycles = k_cycle_get_32();
    high_cycles = 0u;
}

uint32_t counter_ms(void)
{
    return (uint32_t)k_uptime_get();
}

void counter_start(void)
{
    started_cycles = now_cycles();
}

uint64_t counter_stop(void)
{
    return k_cyc_to_us_floor64(now_cycles() - started_cycles);
}

int main(void)
{
    if (!device_is_ready(uart)) {
        return 0;
    }
    counter_init();
    uart_init();
    edgec_self_check();
    for (;;) {
        edgec_serve_one();
    }
    return 0;
}
