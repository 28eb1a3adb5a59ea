/* Host stand-in (see README.md): freertos/task.h, the part the shell uses. */
#pragma once
#include "freertos/FreeRTOS.h"
#ifdef __cplusplus
extern "C" {
#endif
void vTaskDelay(const TickType_t xTicksToDelay);
TickType_t xTaskGetTickCount(void);
#ifdef __cplusplus
}
#endif
