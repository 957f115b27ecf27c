/* Vector table and reset code for the Cortex-M cores of QEMU's mps2/mps3 boards.
 *
 * One source serves every core: what differs per board (number of external interrupts, the
 * UART interrupt line) comes in as -D flags from edgec/firmware/boards.py, and what differs
 * per architecture (FPU/MVE enable, the v8-M stack limit) is chosen from the compiler's
 * predefined macros. The linker script places .vectors where the board's CPU fetches its
 * reset vector. */
#include "edgec_fw.h"

#ifndef EDGEC_NUM_IRQ
#error "EDGEC_NUM_IRQ must be defined by the build"
#endif

extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_base__, __stack_top__;
extern void (*__init_array_start__[])(void);
extern void (*__init_array_end__[])(void);

int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
/* Weak: a board whose counter is not SysTick (nRF51: TIMER0) leaves it unhandled. */
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UART0RX_Handler(void);
/* Clock tree and pin setup of a real chip (board_*.c); the mps2/mps3 boards need none. The early
 * hook runs first of all, before .data and .bss exist: register writes only. */
__attribute__((weak)) void board_init(void) {}
__attribute__((weak)) void board_early_init(void) {}

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)

typedef void (*vector_t)(void);

/* Index 0 is the initial stack pointer; 16 system exceptions, then the external IRQs. */
__attribute__((section(".vectors"), used)) const vector_t edgec_vectors[16 + EDGEC_NUM_IRQ] = {
    [0] = (vector_t)&__stack_top__,
    [1] = Reset_Handler,
    [2] = Default_Handler,  /* NMI */
    [3] = HardFault_Handler,
    [4] = HardFault_Handler, /* MemManage */
    [5] = HardFault_Handler, /* BusFault */
    [6] = HardFault_Handler, /* UsageFault */
    [7] = HardFault_Handler, /* SecureFault (v8-M) */
    [11] = Default_Handler,  /* SVCall */
    [12] = Default_Handler,  /* DebugMonitor */
    [14] = Default_Handler,  /* PendSV */
    [15] = SysTick_Handler,
    [16 + EDGEC_UART_RX_IRQ] = UART0RX_Handler,
};

void Reset_Handler(void)
{
    board_early_init();
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
    /* A stack overflow then faults instead of silently overwriting the model's arena. */
    __asm volatile("msr msplim, %0" ::"r"(&__stack_base__));
#endif
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: FPU (and MVE) full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0u;
    }
    for (void (**ctor)(void) = __init_array_start__; ctor < __init_array_end__; ctor++) {
        (*ctor)();
    }
    board_init();
    main();
    for (;;) {
        __asm volatile("wfi");
    }
}

void Default_Handler(void)
{
    for (;;) {
        __asm volatile("wfi");
    }
}

/* No heap: edgec's firmware allocates nothing at run time, so a library call that wants
 * memory (newlib's atexit, printf of floats) gets ENOMEM instead of growing into the stack. */
void *_sbrk(ptrdiff_t increment)
{
    (void)increment;
    return (void *)-1;
}

/* What crtbegin.o would define, for C++ code (the TFLite Micro template) whose function-local
 * statics register destructors; on bare metal they never run. */
__attribute__((weak)) void *__dso_handle = 0;

void HardFault_Handler(void)
{
    /* Tell the host instead of going silent, then stop. ARMv6-M (Cortex-M0/M0+) has no CFSR. */
#if defined(__ARM_ARCH_6M__)
    reply_error(EDGEC_CMD_ERROR, EDGEC_ST_FAULT, 0u);
#else
    reply_error(EDGEC_CMD_ERROR, EDGEC_ST_FAULT, SCB_CFSR);
#endif
    __asm volatile("cpsid i");
    for (;;) {
        __asm volatile("wfi");
    }
}
