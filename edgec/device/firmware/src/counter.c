/* Inference counter on SysTick, clocked by the processor clock.
 *
 * On a real board one tick is one core cycle. Under QEMU with -icount shift=0 every
 * instruction advances virtual time by 1 ns, so ticks * 1e9 / EDGEC_COUNTER_HZ is the
 * instruction count to within one tick. (DWT CYCCNT is not emulated by QEMU.)
 *
 * SysTick is 24 bits wide: it runs with its full reload and its interrupt counts wraps; a
 * reading is the pair (wraps, current value). counter_start restarts it, so that its ticks
 * fall at the same place relative to the inference's first instruction every time: the count
 * for a given input is then identical run after run, not merely within one tick. The first
 * reload after a restart is waited out and its pending interrupt discarded, because
 * implementations differ on whether it counts as a wrap (QEMU's does). */
#include "edgec_fw.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define CSR_ENABLE_TICKINT_CPUCLK 0x7u
#define RELOAD 0x00FFFFFFu

static volatile uint32_t wraps;
static uint64_t offset;  /* ticks before the last restart, so counter_ms never goes back */
static uint64_t started;

void SysTick_Handler(void)
{
    wraps++;
}

/* Ticks since counter_init, read consistently: a wrap that happened but whose interrupt has
 * not run yet is counted from the pending bit. */
static uint64_t now(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask) : : "memory");
    uint32_t w = wraps;
    uint32_t v = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) {
        w += 1u;
        v = SYST_CVR; /* after the reload that set the pending bit */
    }
    if (primask == 0u) { /* leave the caller's masking as it was */
        __asm volatile("cpsie i" ::: "memory");
    }
    return offset + (uint64_t)w * (RELOAD + 1u) + (RELOAD - v);
}

#define ICSR_PENDSTCLR (1u << 25)

static void restart(void)
{
    __asm volatile("cpsid i" ::: "memory");
    SYST_CSR = 0u;
    SYST_RVR = RELOAD;
    SYST_CVR = 0u;
    SYST_CSR = CSR_ENABLE_TICKINT_CPUCLK;
    while (SYST_CVR == 0u) {
    }
    SCB_ICSR = ICSR_PENDSTCLR;
    wraps = 0u;
    __asm volatile("cpsie i" ::: "memory");
}

void counter_init(void)
{
    offset = 0u;
    restart();
}

uint32_t counter_ms(void)
{
    return (uint32_t)(now() / (EDGEC_COUNTER_HZ / 1000u));
}

void counter_start(void)
{
    uint64_t elapsed = now();
    restart();
    offset = elapsed;
    started = now();
}

uint64_t counter_stop(void)
{
    return now() - started;
}
