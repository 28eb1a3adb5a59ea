/* tinyedge's ESP-IDF application shell, the same for every backend (toolchains/esp_idf_shell; the backend adds
   its model adapter, te_model.h). app_main sets up the console link, the camera of the board file with the frame
   buffers the budget decided, the status LED and the model, then loops:
   - a frame of the validation protocol (te_protocol.h) from the host is answered: HELLO -> INFO, INFER -> RESULT
     (the cycles of the invoke, esp_cpu_get_cycle_count(), and of each layer), CAPTURE -> FRAME;
   - otherwise, when the host has been quiet for TE_HOST_QUIET_MS, one camera frame is preprocessed exactly as in
     training and classified, and the top classes, their scores and the cycles are printed (console text, which
     the host reads past).
   Frames are written with the UART (or USB-Serial-JTAG) driver, never through stdio, whose line-ending
   translation would change the bytes. te_app.h holds what codegen wrote for this board and model. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdkconfig.h"
#include "driver/gpio.h"
#include "esp_camera.h"
#include "esp_cpu.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
#include "driver/usb_serial_jtag.h"
#else
#include "driver/uart.h"
#endif

#include "preprocess.h"
#include "te_app.h"
#include "te_model.h"
#include "te_protocol.h"

#define TE_INPUT_BYTES (TE_INPUT_SIZE * sizeof(te_input_t))
#define TE_OUTPUT_BYTES (TE_OUTPUT_COUNT * sizeof(te_output_t))
#define TE_HOST_QUIET_MS 3000   /* after a protocol frame, the camera loop waits this long for the next one */
#define TE_TOP (TE_CLASSES < 3 ? TE_CLASSES : 3)

static const char *const TAG = "tinyedge";
static const char *const LABELS[TE_CLASSES] = TE_LABELS;

typedef struct {
    te_rx rx;
    uint8_t *payload;      /* INFER: u32 index + the input bytes */
    uint64_t *layers;      /* te_model_layer_count() cycles */
    char *info;            /* the INFO JSON */
    int camera;            /* 1 when esp_camera_init succeeded */
    TickType_t host_seen;  /* tick of the last protocol frame */
    int host_active;
} te_shell;

uint32_t te_cycles(void) {
    return (uint32_t)esp_cpu_get_cycle_count();
}

/* ---- the console link ---------------------------------------------------------------------------------------- */

#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
static void link_open(void) {
    usb_serial_jtag_driver_config_t config = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    config.rx_buffer_size = 4096;
    ESP_ERROR_CHECK(usb_serial_jtag_driver_install(&config));
}

static int link_read(uint8_t *buffer, uint32_t length, TickType_t wait) {
    return usb_serial_jtag_read_bytes(buffer, length, wait);
}

static void link_write(void *context, const void *data, size_t length) {
    (void)context;
    usb_serial_jtag_write_bytes(data, length, portMAX_DELAY);
}
#else
#define TE_UART ((uart_port_t)CONFIG_ESP_CONSOLE_UART_NUM)

static void link_open(void) {
    ESP_ERROR_CHECK(uart_driver_install(TE_UART, 4096, 0, 0, NULL, 0));
    ESP_ERROR_CHECK(uart_set_baudrate(TE_UART, TE_SERIAL_SPEED));
}

static int link_read(uint8_t *buffer, uint32_t length, TickType_t wait) {
    return uart_read_bytes(TE_UART, buffer, length, wait);
}

static void link_write(void *context, const void *data, size_t length) {
    (void)context;
    uart_write_bytes(TE_UART, data, length);
}
#endif

/* One writer at a time on the console: a frame goes out whole, and a log line of another task (the camera
   driver's, Wi-Fi's: every ESP_LOG, through esp_log_set_vprintf) waits for it instead of landing inside it, which
   the host would see as a corrupt frame. Recursive: the shell's own logs may come while it holds the console. */
static SemaphoreHandle_t console;

static int console_vprintf(const char *format, va_list args) {
    xSemaphoreTakeRecursive(console, portMAX_DELAY);
    const int written = vprintf(format, args);
    fflush(stdout);
    xSemaphoreGiveRecursive(console);
    return written;
}

static void console_share(void) {
    console = xSemaphoreCreateRecursiveMutex();
    if (console == NULL) abort();
    esp_log_set_vprintf(console_vprintf);
}

/* A frame starts after the console text printed before it, never inside a line, and holds the console to its end. */
static void frame_begin(te_tx *tx, uint8_t type, uint32_t length) {
    xSemaphoreTakeRecursive(console, portMAX_DELAY);
    fflush(stdout);
    te_tx_begin(tx, link_write, NULL, type, length);
}

static void frame_end(te_tx *tx) {
    te_tx_end(tx);
    xSemaphoreGiveRecursive(console);
}

static void send(uint8_t type, const void *payload, uint32_t length) {
    te_tx tx;
    frame_begin(&tx, type, length);
    te_tx_data(&tx, payload, length);
    frame_end(&tx);
}

static void send_error(const char *text) {
    ESP_LOGW(TAG, "protocol: %s", text);
    send(TE_ERROR, text, (uint32_t)strlen(text));
}

/* ---- camera and LED ------------------------------------------------------------------------------------------ */

static int camera_init(void) {
    camera_config_t config = {0};  /* zeroed: every field not set below (sccb_i2c_port, jpeg_quality, ...) is 0 */
    config.pin_pwdn = TE_CAM_PWDN;
    config.pin_reset = TE_CAM_RESET;
    config.pin_xclk = TE_CAM_XCLK;
    config.pin_sccb_sda = TE_CAM_SDA;
    config.pin_sccb_scl = TE_CAM_SCL;
    config.pin_d7 = TE_CAM_D7;
    config.pin_d6 = TE_CAM_D6;
    config.pin_d5 = TE_CAM_D5;
    config.pin_d4 = TE_CAM_D4;
    config.pin_d3 = TE_CAM_D3;
    config.pin_d2 = TE_CAM_D2;
    config.pin_d1 = TE_CAM_D1;
    config.pin_d0 = TE_CAM_D0;
    config.pin_vsync = TE_CAM_VSYNC;
    config.pin_href = TE_CAM_HREF;
    config.pin_pclk = TE_CAM_PCLK;
    config.xclk_freq_hz = TE_CAM_XCLK_HZ;
    config.ledc_timer = LEDC_TIMER_0;
    config.ledc_channel = LEDC_CHANNEL_0;
    config.pixel_format = PIXFORMAT_RGB565;  /* raw pixels: preprocess.c converts them like the training code */
    config.frame_size = TE_CAM_FRAMESIZE;
    config.fb_count = TE_CAM_FB_COUNT;         /* the budget's frame buffers */
    config.fb_location = TE_CAM_FB_LOCATION;
    config.grab_mode = TE_CAM_GRAB_MODE;       /* LATEST only with two buffers or more: it acts on none fewer */
    return esp_camera_init(&config) == ESP_OK;
}

static void led_init(void) {
#ifdef TE_LED_PIN
    gpio_reset_pin(TE_LED_PIN);
    gpio_set_direction(TE_LED_PIN, GPIO_MODE_OUTPUT);
    gpio_set_level(TE_LED_PIN, !TE_LED_ON);
#endif
}

/* ---- the protocol -------------------------------------------------------------------------------------------- */

/* `text` with '"' and '\' escaped, appended at `out`; returns the end. */
static char *json_string(char *out, const char *text) {
    *out++ = '"';
    for (; *text; ++text) {
        if (*text == '"' || *text == '\\') *out++ = '\\';
        *out++ = *text;
    }
    *out++ = '"';
    return out;
}

/* codegen's constant fields, then the runtime's: arena_used and the layer names. */
static char *info_json(void) {
    const int layers = te_model_layer_count();
    size_t size = sizeof TE_INFO_JSON + 64;
    for (int i = 0; i < layers; ++i) size += 2 * strlen(te_model_layer_name(i)) + 3;
    char *json = malloc(size);
    if (json == NULL) return NULL;
    const long used = te_model_arena_used();
    char *end = json + sprintf(json, "%s", TE_INFO_JSON);
    end += used < 0 ? sprintf(end, ",\"arena_used\":null,\"layers\":[")
                    : sprintf(end, ",\"arena_used\":%ld,\"layers\":[", used);
    for (int i = 0; i < layers; ++i) {
        if (i) *end++ = ',';
        end = json_string(end, te_model_layer_name(i));
    }
    strcpy(end, "]}");
    return json;
}

static void infer(te_shell *shell, uint32_t length) {
    char why[96];
    if (length != 4 + TE_INPUT_BYTES) {
        snprintf(why, sizeof why, "input length %" PRIu32 ", expected %u", length - (length >= 4 ? 4 : 0),
                 (unsigned)TE_INPUT_BYTES);
        send_error(why);
        return;
    }
    memcpy(te_model_input(), shell->payload + 4, TE_INPUT_BYTES);
    const uint32_t started = te_cycles();
    const char *failed = te_model_invoke();
    const uint64_t cycles = (uint32_t)(te_cycles() - started);
    if (failed != NULL) {
        send_error(failed);
        return;
    }
    const uint32_t layers = (uint32_t)te_model_layer_count();
    te_model_layer_cycles(shell->layers);
    uint8_t head[16];
    memcpy(head, shell->payload, 4);   /* the sample index, as sent */
    te_put_u64(head + 4, cycles);
    te_put_u32(head + 12, layers);
    te_tx tx;
    frame_begin(&tx, TE_RESULT, 16 + 8 * layers + (uint32_t)TE_OUTPUT_BYTES);
    te_tx_data(&tx, head, sizeof head);
    for (uint32_t i = 0; i < layers; ++i) {
        uint8_t value[8];
        te_put_u64(value, shell->layers[i]);
        te_tx_data(&tx, value, sizeof value);
    }
    te_tx_data(&tx, te_model_output(), TE_OUTPUT_BYTES);
    frame_end(&tx);
}

/* The frame as the camera driver holds it, before preprocessing: RGB565, high byte first. */
static void capture(const te_shell *shell) {
    camera_fb_t *frame = shell->camera ? esp_camera_fb_get() : NULL;
    if (frame == NULL) {
        send_error(shell->camera ? "capture failed" : "no camera");
        return;
    }
    uint8_t head[5];
    te_put_u16(head, (uint16_t)frame->width);
    te_put_u16(head + 2, (uint16_t)frame->height);
    head[4] = 2;   /* rgb565 */
    te_tx tx;
    frame_begin(&tx, TE_FRAME, (uint32_t)(sizeof head + frame->len));
    te_tx_data(&tx, head, sizeof head);
    te_tx_data(&tx, frame->buf, frame->len);
    frame_end(&tx);
    esp_camera_fb_return(frame);
}

static void answer(te_shell *shell) {
    const te_rx *rx = &shell->rx;
    char why[64];
    if (rx->type == TE_HELLO) {
        send(TE_INFO, shell->info, (uint32_t)strlen(shell->info));
    } else if (rx->type == TE_INFER) {
        infer(shell, rx->length);
    } else if (rx->type == TE_CAPTURE) {
        capture(shell);
    } else {
        snprintf(why, sizeof why, "unknown frame type 0x%02x", rx->type);
        send_error(why);
    }
}

/* The bytes the link has within `wait`, fed to the frame decoder; a frame is answered, a refused one named. */
static void poll_link(te_shell *shell, TickType_t wait) {
    uint8_t chunk[256];
    const int count = link_read(chunk, sizeof chunk, wait);
    char why[96];
    for (int i = 0; i < count; ++i) {
        const int status = te_rx_byte(&shell->rx, chunk[i]);
        if (status == TE_RX_MORE) continue;
        shell->host_seen = xTaskGetTickCount();
        shell->host_active = 1;
        if (status == TE_RX_FRAME) {
            answer(shell);
            continue;
        }
        if (status == TE_RX_BAD_CRC) {
            snprintf(why, sizeof why, "frame type 0x%02x: CRC mismatch", shell->rx.type);
        } else if (status == TE_RX_TOO_LONG) {
            snprintf(why, sizeof why, "frame type 0x%02x of %" PRIu32 " bytes: this firmware takes at most %u",
                     shell->rx.type, shell->rx.length, (unsigned)(4 + TE_INPUT_BYTES));
        } else {
            snprintf(why, sizeof why, "protocol version %u; this firmware speaks %d", shell->rx.header[2],
                     TE_PROTOCOL_VERSION);
        }
        send_error(why);
    }
}

/* ---- the camera loop ----------------------------------------------------------------------------------------- */

/* The indices of the TE_TOP largest outputs, largest first (ties: the lower class first). */
static void top_classes(const te_output_t *out, int top[TE_TOP]) {
    for (int k = 0; k < TE_TOP; ++k) {
        int best = -1;
        for (int c = 0; c < TE_CLASSES; ++c) {
            int taken = 0;
            for (int j = 0; j < k; ++j) taken |= top[j] == c;
            if (!taken && (best < 0 || out[c] > out[best])) best = c;
        }
        top[k] = best;
    }
}

static void classify_frame(void) {
    camera_fb_t *frame = esp_camera_fb_get();
    if (frame == NULL) {
        ESP_LOGW(TAG, "capture failed");
        return;
    }
    te_preprocess_rgb565(frame->buf, (int)frame->width, (int)frame->height, (te_input_t *)te_model_input());
    esp_camera_fb_return(frame);
    const uint32_t started = te_cycles();
    const char *failed = te_model_invoke();
    const uint32_t cycles = te_cycles() - started;
    if (failed != NULL) {
        ESP_LOGE(TAG, "%s", failed);
        return;
    }
    const te_output_t *out = (const te_output_t *)te_model_output();
    int top[TE_TOP];
    top_classes(out, top);
    printf("%" PRIu32 " cycles (%" PRIu32 " us) |", cycles, cycles / (TE_CPU_HZ / 1000000));
    for (int k = 0; k < TE_TOP; ++k) {
        printf(" %s %.3f", LABELS[top[k]], (double)((out[top[k]] - TE_OUTPUT_ZERO_POINT) * TE_OUTPUT_SCALE));
    }
    printf("\n");
#ifdef TE_LED_PIN
    gpio_set_level(TE_LED_PIN, top[0] == TE_LED_CLASS ? TE_LED_ON : !TE_LED_ON);
#endif
}

static void halt(const char *why) {
    ESP_LOGE(TAG, "%s", why);
    for (;;) vTaskDelay(pdMS_TO_TICKS(1000));
}

void app_main(void) {
    static te_shell shell;
    console_share();
    ESP_LOGI(TAG, "%s", TE_TITLE);
    link_open();
    shell.camera = camera_init();
    if (!shell.camera) ESP_LOGE(TAG, "%s", TE_NO_CAMERA);
    led_init();
    const char *failed = te_model_setup();
    if (failed != NULL) halt(failed);
    shell.payload = malloc(4 + TE_INPUT_BYTES);
    shell.layers = calloc((size_t)te_model_layer_count() + 1, sizeof(uint64_t));
    shell.info = info_json();
    if (shell.payload == NULL || shell.layers == NULL || shell.info == NULL) halt("no memory for the protocol");
    te_rx_init(&shell.rx, shell.payload, 4 + TE_INPUT_BYTES);
    for (;;) {
        if (shell.host_active && xTaskGetTickCount() - shell.host_seen > pdMS_TO_TICKS(TE_HOST_QUIET_MS)) {
            shell.host_active = 0;
        }
        if (!shell.camera || shell.host_active) {
            poll_link(&shell, pdMS_TO_TICKS(20));
        } else {
            poll_link(&shell, 0);
            classify_frame();
        }
    }
}
