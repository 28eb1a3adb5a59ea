/* tinyedge: the model adapter a backend supplies to the ESP-IDF shell (te_shell.c). The shell owns app_main, the
   camera, the status LED, the console link and its protocol (te_protocol.h), and the timing; the adapter owns the
   runtime: set-up, the input buffer (quantized as preprocess.h says), invoke, the output, and per-layer cycles
   where its runtime can time layers. Generated projects compile it as C or C++. */
#ifndef TE_MODEL_H
#define TE_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the runtime up once; NULL, or one line saying why the model cannot run. */
const char *te_model_setup(void);
/* The input tensor: TE_INPUT_SIZE values of te_input_t (preprocess.h), written before each invoke. */
void *te_model_input(void);
/* One inference on the input; NULL, or why it failed. */
const char *te_model_invoke(void);
/* The output tensor: TE_OUTPUT_COUNT values of te_output_t (te_app.h). */
const void *te_model_output(void);
/* Arena bytes the runtime used after set-up, or -1 where it cannot say. */
long te_model_arena_used(void);
/* Layers the adapter times (0 where the runtime has no per-layer hook) and their names, in the order timed. */
int te_model_layer_count(void);
const char *te_model_layer_name(int layer);
/* The cycles of each layer in the last invoke, te_model_layer_count() values. */
void te_model_layer_cycles(uint64_t *cycles);

/* The shell's cycle counter (esp_cpu_get_cycle_count(): CPU clock cycles, 32 bits, wraps), for the adapters. */
uint32_t te_cycles(void);

#ifdef __cplusplus
}
#endif

#endif
