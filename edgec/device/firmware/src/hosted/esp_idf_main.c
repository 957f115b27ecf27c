/* edgec serial verification protocol on UART0 of an ESP-IDF board (the USB-serial port of most
 * dev kits), 115200 8N1; sdkconfig.defaults silences the console and logs there so the line carries
 * frames only. `edgec verify OUT/ID --port /dev/ttyUSB0` checks every output bit for bit; counts are
 * microseconds (esp_timer). */
#include "driver/uart.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"

#include "edgec_fw.h"

#define EDGEC_UART UART_NUM_0

static int64_t started_us;

void uart_init(void)
{
    const uart_config_t config = {
        .baud_rate = 115200,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    ESP_ERROR_CHECK(uart_driver_install(EDGEC_UART, 4096, 0, 0, NULL, 0));
    ESP_ERROR_CHECK(uart_param_config(EDGEC_UART, &config));
}

void uart_putc(uint8_t c)
{
    uart_write_bytes(EDGEC_UART, (const char *)&c, 1);
}

int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    TickType_t wait = timeout_ms == 0u ? portMAX_DELAY : pdMS_TO_TICKS(timeout_ms);
    return uart_read_bytes(EDGEC_UART, c, 1, wait) == 1 ? 0 : -1;
}

void counter_init(void)
{
}

uint32_t counter_ms(void)
{
    return (uint32_t)(esp_timer_get_time() / 1000);
}

void counter_start(void)
{
    started_us = esp_timer_get_time();
}

uint64_t counter_stop(void)
{
    return (uint64_t)(esp_timer_get_time() - started_us);
}

void app_main(void)
{
    counter_init();
    uart_init();
    edgec_self_check();
    for (;;) {
        edgec_serve_one();
    }
}
