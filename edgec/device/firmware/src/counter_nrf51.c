/* Inference counter on TIMER0 of the nRF51 (nRF51 Series Reference Manual v3.0, chapter 18):
 * the nRF51's Cortex-M0 has no SysTick. TIMER0 runs in 32-bit timer mode from the 16 MHz
 * HFCLK with prescaler 0, so one tick is one core cycle; it is read with its CAPTURE[0] task.
 *
 * A reading is 32 bits (268 s at 16 MHz); now() widens it to 64 bits by counting the times
 * it went backwards between two readings. An inference (counter_start..counter_stop) is one
 * interval and the receive timeouts read the counter every few milliseconds, so a wrap is only
 * missed across a silence of more than 268 s, which then shifts counter_ms once, harmlessly.
 * counter_start clears the timer, so its ticks fall at the same place relative to the
 * inference's first instruction every time: counts repeat exactly for the same input. */
#include "edgec_fw.h"

#define TIMER0_BASE 0x40008000u
#define TIMER_REG(off) (*(volatile uint32_t *)(TIMER0_BASE + (off)))
#define TIMER_TASKS_START TIMER_REG(0x000u)
#define TIMER_TASKS_STOP TIMER_REG(0x004u)
#define TIMER_TASKS_CLEAR TIMER_REG(0x00Cu)
#define TIMER_TASKS_CAPTURE0 TIMER_REG(0x040u)
#define TIMER_MODE TIMER_REG(0x504u)
#define TIMER_BITMODE TIMER_REG(0x508u)
#define TIMER_PRESCALER TIMER_REG(0x510u)
#define TIMER_CC0 TIMER_REG(0x540u)
#define MODE_TIMER 0u
#define BITMODE_32 3u

static uint32_t last;     /* the previous 32-bit reading */
static uint64_t high;     /* 2**32 times the wraps seen, plus the ticks before the last clear */
static uint64_t started;

static uint32_t capture(void)
{
    TIMER_TASKS_CAPTURE0 = 1u;
    return TIMER_CC0;
}

static uint64_t now(void)
{
    uint32_t v = capture();
    if (v < last) {
        high += 1ull << 32;
    }
    last = v;
    return high + v;
}

void counter_init(void)
{
    TIMER_TASKS_STOP = 1u;
    TIMER_MODE = MODE_TIMER;
    TIMER_BITMODE = BITMODE_32;
    TIMER_PRESCALER = 0u;
    TIMER_TASKS_CLEAR = 1u;
    TIMER_TASKS_START = 1u;
    last = 0u;
    high = 0u;
}

uint32_t counter_ms(void)
{
    return (uint32_t)(now() / (EDGEC_COUNTER_HZ / 1000u));
}

void counter_start(void)
{
    uint64_t elapsed = now();
    TIMER_TASKS_CLEAR = 1u;
    high = elapsed;
    last = 0u;
    started = now();
}

uint64_t counter_stop(void)
{
    return now() - started;
}
