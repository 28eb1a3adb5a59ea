/* Host stand-in (see README.md): FreeRTOS.h as ESP-IDF 5.3 configures it, the part the shell uses. */
#pragma once
#include <stdint.h>
typedef uint32_t TickType_t;
typedef int BaseType_t;
#define pdTRUE ((BaseType_t)1)
#define configTICK_RATE_HZ 1000
#define portMAX_DELAY ((TickType_t)0xffffffffUL)
#define pdMS_TO_TICKS(xTimeInMs) ((TickType_t)(((uint64_t)(xTimeInMs) * (uint64_t)configTICK_RATE_HZ) / 1000U))
