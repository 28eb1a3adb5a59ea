/* Startup for QEMU's mps2-an386 (Cortex-M4): only the vector table. Zeroing .bss, the stack pointer, argc/argv
   from the semihosting command line and exit are done by newlib's rdimon-crt0 (`_start`, --specs=rdimon.specs). */

extern char __stack[];      /* top of RAM, from mps2-an386.ld */
extern void _start(void);   /* newlib's rdimon-crt0 entry point */

/* A fault ends the run at once instead of locking the emulated CPU until the caller's timeout: semihosting
   SYS_WRITE0 (0x04) says why, SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown (0x20023) makes QEMU exit
   with status 1. `bkpt 0xab` is the Cortex-M semihosting call (r0 = operation, r1 = argument). */
static void fault(void) {
    register unsigned op __asm__("r0") = 0x04;
    register const char *arg __asm__("r1") = "tinyedge: hard fault\n";
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
    op = 0x18;
    arg = (const char *)0x20023;
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
    for (;;) {
    }
}

/* Words 0 and 1: initial stack pointer and reset handler; 2 to 6: NMI, HardFault, MemManage, BusFault,
   UsageFault (the last three escalate to HardFault while disabled, the default). */
__attribute__((section(".vectors"), used)) static void *const vectors[7] = {
    __stack, (void *)_start, (void *)fault, (void *)fault, (void *)fault, (void *)fault, (void *)fault,
};
