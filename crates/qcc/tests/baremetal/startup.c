/*
 * Minimal Cortex-M startup for qcc's bare-metal test (crates/qcc/tests/cross_cortex_m.rs)
 * and a template for firmware: the vector table, and a reset handler that
 * enables the FPU, copies .data, zeroes .bss, opens the semihosting console
 * and calls main. Linker script: mps2_an386.ld. No interrupts are used.
 *
 * The FPU must be enabled (CPACR: full access to coprocessors 10 and 11)
 * before any floating-point instruction runs: qcc's hard-float code, and
 * even the C library's printf, use the FPU registers.
 */
#include <stdint.h>
#include <stdlib.h>

extern int main(void);
extern void initialise_monitor_handles(void); /* newlib's librdimon */

/* From the linker script. */
extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end, __bss_start__, __bss_end__;

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

/* Semihosting SYS_EXIT with "run-time error": QEMU exits with status 1. */
static void __attribute__((noreturn)) fail_exit(void)
{
    register uint32_t op __asm__("r0") = 0x18;     /* SYS_EXIT */
    register uint32_t arg __asm__("r1") = 0x20023; /* ADP_Stopped_RunTimeErrorUnknown */
    __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(arg) : "memory");
    for (;;) {
    }
}

void Default_Handler(void) { fail_exit(); }

/* exit() runs newlib's __libc_fini_array, which calls _fini (crti.o's, when
 * the C runtime's start files are used; this file replaces them). */
void _init(void) {}
void _fini(void) {}

void __attribute__((noreturn)) Reset_Handler(void)
{
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");

    for (uint32_t *src = &__data_load, *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;)
        *dst++ = 0;

    initialise_monitor_handles();
    exit(main());
}

/* Cortex-M vector table: initial stack pointer, then the handlers. */
__attribute__((section(".vectors"), used)) static void *const vectors[16] = {
    &__stack_top,    /* initial SP */
    Reset_Handler,   /* reset */
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault: e.g. an instruction this core lacks */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};
