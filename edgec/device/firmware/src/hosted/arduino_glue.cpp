// edgec serial verification protocol on an Arduino board's Serial port, 115200 8N1.
// `edgec verify OUT/ID --port /dev/ttyACM0` streams the held-out samples and checks every output
// bit for bit; the counts it reports are microseconds (micros()).
#include <Arduino.h>

#include "edgec_fw.h"

static uint32_t last_us;
static uint64_t high_us;
static uint64_t started_us;

static uint64_t now_us()
{
    uint32_t v = micros();
    if (v < last_us) {  // micros() wraps every 71 minutes
        high_us += 1ull << 32;
    }
    last_us = v;
    return high_us + v;
}

extern "C" void uart_init(void)
{
    Serial.begin(115200);
}

extern "C" void uart_putc(uint8_t c)
{
    Serial.write(c);
}

extern "C" int uart_getc(uint8_t *c, uint32_t timeout_ms)
{
    uint32_t start = millis();
    for (;;) {
        int b = Serial.read();
        if (b >= 0) {
            *c = static_cast<uint8_t>(b);
            return 0;
        }
        if (timeout_ms != 0u && millis() - start >= timeout_ms) {
            return -1;
        }
        yield();
    }
}

extern "C" void counter_init(void)
{
    last_us = micros();
    high_us = 0u;
}

extern "C" uint32_t counter_ms(void)
{
    return millis();
}

extern "C" void counter_start(void)
{
    started_us = now_us();
}

extern "C" uint64_t counter_stop(void)
{
    return now_us() - started_us;
}

void setup()
{
    counter_init();
    uart_init();
    edgec_self_check();
}

void loop()
{
    edgec_serve_one();
}
