// Startup for QEMU's mps2-an385 (Cortex-M3): only the vector table. Everything else a C program needs
// (zeroing .bss, the stack pointer, argc/argv from the semihosting command line, exit) is done by newlib's
// rdimon-crt0 (`_start`), which --specs=rdimon.specs links in.

extern char __stack[];      // top of RAM, from mps2-an385.ld
extern void _start(void);   // newlib's rdimon-crt0 entry point

// A fault must end the run at once instead of locking the emulated CPU up until the test's timeout:
// semihosting SYS_WRITE0 (0x04) prints why, SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown makes QEMU
// exit with status 1. `bkpt 0xab` is the Cortex-M semihosting call (r0 = operation, r1 = argument).
static void fault(void) {
    register unsigned op __asm__("r0") = 0x04;
    register const char *arg __asm__("r1") = "tinyedge baremetal: hard fault\n";
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
    op = 0x18;
    arg = (const char *)0x20023;
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
    for (;;) {
    }
}

// The Cortex-M core reads word 0 (initial stack pointer) and word 1 (reset handler) from address 0 at reset;
// words 2 and 3 are NMI and HardFault (on a Cortex-M3 the other faults are off and escalate to HardFault).
__attribute__((section(".vectors"), used)) static void *const vectors[4] = {
    __stack, (void *)_start, (void *)fault, (void *)fault,
};
