/* What the harness (harness.c) and the serial shell (serve.c) share: the model, and the SysTick timing of one
   inference (Cortex-M builds, TE_SYSTICK). */
#ifndef TE_HARNESS_H
#define TE_HARNESS_H

#include "model.h"

#ifdef TE_SYSTICK
void te_systick_start(void);
/* One inference; its SysTick ticks. With TINYEDGE_LAYER_HOOK, each operator's ticks are added to layers[op]
   (TINYEDGE_LAYERS entries); else layers may be NULL. */
unsigned long long te_timed_invoke(const int8_t *in, int8_t *out, unsigned long long *layers);
#endif

#ifdef TE_SERIAL
int te_serve(void);
#endif

#endif
