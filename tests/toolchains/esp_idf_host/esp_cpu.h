/* Host stand-in (see README.md): esp_cpu.h of ESP-IDF 5.3 (there a static inline reading CCOUNT). */
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef uint32_t esp_cpu_cycle_count_t;
esp_cpu_cycle_count_t esp_cpu_get_cycle_count(void);
#ifdef __cplusplus
}
#endif
