/* Host stand-in (see README.md): the ESP-IDF and esp32-camera calls of tinyedge's shell, implemented on a PC, and
   main(), which calls the shell's app_main as ESP-IDF's start-up does. The console UART is stdin/stdout; what the
   camera driver was configured with goes to stderr, for the test to read. With TE_HOST_LOG_TASK set, another
   thread logs a line every 100 us, as a camera driver's task may, through whatever esp_log_set_vprintf installed. */
#define _DEFAULT_SOURCE   /* usleep, clock_gettime, poll under -std=c99 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "driver/gpio.h"
#include "driver/uart.h"
#include "esp_camera.h"
#include "esp_cpu.h"
#include "esp_log.h"
#include "freertos/semphr.h"
#include "freertos/task.h"

void app_main(void);

#define FRAME_WIDTH 320   /* FRAMESIZE_QVGA */
#define FRAME_HEIGHT 240

static uint64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

void te_host_check_failed(esp_err_t err, const char *expression) {
    fprintf(stderr, "ESP_ERROR_CHECK failed: %d in %s\n", err, expression);
    exit(3);
}

esp_cpu_cycle_count_t esp_cpu_get_cycle_count(void) {
    return (esp_cpu_cycle_count_t)now_ns();   /* nanoseconds stand for cycles */
}

static vprintf_like_t log_vprintf = vprintf;

vprintf_like_t esp_log_set_vprintf(vprintf_like_t func) {
    const vprintf_like_t previous = log_vprintf;
    log_vprintf = func;
    return previous;
}

static int log_line(const char *format, ...) {
    va_list args;
    va_start(args, format);
    const int written = log_vprintf(format, args);
    va_end(args);
    return written;
}

/* One vprintf call per line, prefix and newline included, as ESP-IDF's log macros make it. */
void esp_log_write(esp_log_level_t level, const char *tag, const char *format, ...) {
    char message[256];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    log_line("%c (%s) %s\n", "NEWI"[level], tag, message);
}

SemaphoreHandle_t xSemaphoreCreateRecursiveMutex(void) {
    static pthread_mutex_t mutex;
    pthread_mutexattr_t recursive;
    pthread_mutexattr_init(&recursive);
    pthread_mutexattr_settype(&recursive, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&mutex, &recursive);
    return &mutex;
}

BaseType_t xSemaphoreTakeRecursive(SemaphoreHandle_t xMutex, TickType_t xTicksToWait) {
    (void)xTicksToWait;
    pthread_mutex_lock(xMutex);
    return pdTRUE;
}

BaseType_t xSemaphoreGiveRecursive(SemaphoreHandle_t xMutex) {
    pthread_mutex_unlock(xMutex);
    return pdTRUE;
}

static void *log_task(void *unused) {
    (void)unused;
    for (unsigned line = 0;; ++line) {
        ESP_LOGI("cam_hal", "DMA frame %u done, another task's log line", line);
        usleep(100);
    }
    return NULL;
}

esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size, int queue_size,
                              QueueHandle_t *uart_queue, int intr_alloc_flags) {
    (void)uart_queue;
    fprintf(stderr, "uart: driver on UART%d, rx %d tx %d queue %d flags %d\n", uart_num, rx_buffer_size,
            tx_buffer_size, queue_size, intr_alloc_flags);
    return ESP_OK;
}

esp_err_t uart_set_baudrate(uart_port_t uart_num, uint32_t baudrate) {
    fprintf(stderr, "uart: UART%d at %u baud\n", uart_num, (unsigned)baudrate);
    return ESP_OK;
}

/* What arrives within the wait; the host closing its end ends the process, as unplugging a board would. */
int uart_read_bytes(uart_port_t uart_num, void *buf, uint32_t length, TickType_t ticks_to_wait) {
    (void)uart_num;
    struct pollfd input = {.fd = 0, .events = POLLIN};
    const int ready = poll(&input, 1, ticks_to_wait == portMAX_DELAY ? -1 : (int)ticks_to_wait);
    if (ready <= 0) return 0;
    const ssize_t count = read(0, buf, length);
    if (count <= 0) exit(0);
    return (int)count;
}

int uart_write_bytes(uart_port_t uart_num, const void *src, size_t size) {
    (void)uart_num;
    const char *bytes = src;
    for (size_t done = 0; done < size;) {
        const ssize_t count = write(1, bytes + done, size - done);
        if (count < 0 && errno != EINTR) exit(0);
        if (count > 0) done += (size_t)count;
    }
    return (int)size;
}

static int camera_ready;
static uint8_t pixels[FRAME_WIDTH * FRAME_HEIGHT * 2];
static camera_fb_t frame = {.buf = pixels, .len = sizeof pixels, .width = FRAME_WIDTH, .height = FRAME_HEIGHT,
                            .format = PIXFORMAT_RGB565};

/* No camera when TE_HOST_NO_CAMERA is set; else a frame whose byte i is (7 i + 3) mod 256. */
esp_err_t esp_camera_init(const camera_config_t *config) {
    fprintf(stderr, "camera: fb_count %zu fb_location %d grab_mode %d pin_sccb_sda %d xclk_freq_hz %d\n",
            config->fb_count, config->fb_location, config->grab_mode, config->pin_sccb_sda, config->xclk_freq_hz);
    if (getenv("TE_HOST_NO_CAMERA") != NULL) return ESP_FAIL;
    for (size_t i = 0; i < sizeof pixels; ++i) pixels[i] = (uint8_t)(7 * i + 3);
    camera_ready = 1;
    return ESP_OK;
}

camera_fb_t *esp_camera_fb_get(void) {
    if (!camera_ready) return NULL;
    usleep(40000);   /* a sensor at 25 frames per second */
    return &frame;
}

void esp_camera_fb_return(camera_fb_t *fb) {
    (void)fb;
}

esp_err_t gpio_reset_pin(gpio_num_t gpio_num) {
    (void)gpio_num;
    return ESP_OK;
}

esp_err_t gpio_set_direction(gpio_num_t gpio_num, gpio_mode_t mode) {
    (void)gpio_num;
    (void)mode;
    return ESP_OK;
}

esp_err_t gpio_set_level(gpio_num_t gpio_num, uint32_t level) {
    (void)gpio_num;
    (void)level;
    return ESP_OK;
}

void vTaskDelay(const TickType_t xTicksToDelay) {
    usleep((useconds_t)xTicksToDelay * 1000u);
}

TickType_t xTaskGetTickCount(void) {
    return (TickType_t)(now_ns() / 1000000u);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 4096);   /* as newlib on the chip: line-buffered console text */
    pthread_t logger;
    if (getenv("TE_HOST_LOG_TASK") != NULL) pthread_create(&logger, NULL, log_task, NULL);
    app_main();
    return 0;
}
