/* Host stand-in (see README.md): driver/uart.h of ESP-IDF 5.3, the part the shell uses. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"
#include "freertos/FreeRTOS.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef enum { UART_NUM_0, UART_NUM_1, UART_NUM_2 } uart_port_t;
typedef void *QueueHandle_t;
esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size, int queue_size,
                              QueueHandle_t *uart_queue, int intr_alloc_flags);
esp_err_t uart_set_baudrate(uart_port_t uart_num, uint32_t baudrate);
int uart_read_bytes(uart_port_t uart_num, void *buf, uint32_t length, TickType_t ticks_to_wait);
int uart_write_bytes(uart_port_t uart_num, const void *src, size_t size);
#ifdef __cplusplus
}
#endif
