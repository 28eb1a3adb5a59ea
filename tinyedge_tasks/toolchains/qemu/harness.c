/* tinyedge model runner: reads COUNT input samples from INPUT, runs tinyedge_invoke on each, writes the COUNT
   outputs to OUTPUT (raw int8). On QEMU the files are the host's, through newlib's rdimon semihosting.
   With TE_SYSTICK (Cortex-M), the SysTick counter (core clock) times each inference; under QEMU's
   -icount shift=0 that clock advances exactly with executed instructions; with TINYEDGE_LAYER_HOOK too, each
   operator's ticks are summed (the model calls tinyedge_layer_done after each one) and printed, one line each.
   Prints one summary line.
   With TE_SERIAL (the qemu toolchain's build of a project that has model_info.h) and no arguments, the firmware
   serves tinyedge's validation protocol on UART0 instead (serve.c): the same invoke, the same timing. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"

#ifdef TE_SYSTICK
#define SYST_CSR (*(volatile unsigned long *)0xE000E010ul)
#define SYST_RVR (*(volatile unsigned long *)0xE000E014ul)
#define SYST_CVR (*(volatile unsigned long *)0xE000E018ul)
#define SYST_MASK 0xFFFFFFul   /* a 24-bit down counter */

static unsigned long now(void) {
    return SYST_CVR;
}

#ifdef TINYEDGE_LAYER_HOOK
static unsigned long layer_start;
static unsigned long long *layer_ticks;

void tinyedge_layer_done(int layer) {
    const unsigned long t = now();
    layer_ticks[layer] += (layer_start - t) & SYST_MASK;
    layer_start = t;
}
#endif

void te_systick_start(void) {
    SYST_RVR = SYST_MASK;
    SYST_CVR = 0;
    SYST_CSR = 5;   /* enable, core clock, no interrupt */
}

unsigned long long te_timed_invoke(const int8_t *in, int8_t *out, unsigned long long *layers) {
    const unsigned long start = now();
#ifdef TINYEDGE_LAYER_HOOK
    layer_ticks = layers;
    layer_start = start;
#else
    (void)layers;
#endif
    tinyedge_invoke(in, out);
    return (start - now()) & SYST_MASK;
}
#endif

static int8_t input[TINYEDGE_INPUT_SIZE];
static int8_t output[TINYEDGE_OUTPUT_SIZE];

int main(int argc, char **argv) {
#ifdef TE_SERIAL
    if (argc <= 1) {
        return te_serve();
    }
#endif
    if (argc != 4) {
        fprintf(stderr, "usage: harness INPUT OUTPUT COUNT (got %d arguments)\n", argc - 1);
        return 2;
    }
    const long count = atol(argv[3]);
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (in == NULL || out == NULL || count <= 0) {
        fprintf(stderr, "cannot open %s or %s, or COUNT %s is not positive\n", argv[1], argv[2], argv[3]);
        return 1;
    }
#ifdef TE_SYSTICK
    te_systick_start();
    unsigned long long ticks = 0;
#ifdef TINYEDGE_LAYER_HOOK
    static unsigned long long layer_total[TINYEDGE_LAYERS];
#else
    unsigned long long *layer_total = NULL;
#endif
#else
    clock_t spent = 0;
#endif
    for (long i = 0; i < count; ++i) {
        if (fread(input, 1, sizeof input, in) != sizeof input) {
            fprintf(stderr, "sample %ld: cannot read %lu bytes from %s\n", i, (unsigned long)sizeof input, argv[1]);
            return 1;
        }
#ifdef TE_SYSTICK
        ticks += te_timed_invoke(input, output, layer_total);
#else
        const clock_t start = clock();
        tinyedge_invoke(input, output);
        spent += clock() - start;
#endif
        if (fwrite(output, 1, sizeof output, out) != sizeof output) {
            fprintf(stderr, "sample %ld: cannot write %s\n", i, argv[2]);
            return 1;
        }
    }
    fclose(in);
    if (fclose(out) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[2]);
        return 1;
    }
#ifdef TE_SYSTICK
#ifdef TINYEDGE_LAYER_HOOK
    for (int layer = 0; layer < TINYEDGE_LAYERS; ++layer) {
        printf("tinyedge: layer %d, %lu systick ticks\n", layer, (unsigned long)layer_total[layer]);
    }
#endif
    printf("tinyedge: %ld samples, %lu systick ticks\n", count, (unsigned long)ticks);
#else
    printf("tinyedge: %ld samples, %.9f seconds\n", count, (double)spent / CLOCKS_PER_SEC);
#endif
    return 0;
}
