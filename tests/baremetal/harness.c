// Bare-metal harness for the generated src/preprocess.c, run under QEMU with semihosting: the files are the
// host's, opened through newlib's rdimon. Usage: harness FRAME WIDTH HEIGHT OUTPUT
// FRAME is an RGB565 frame (high byte first, as the ESP32 camera driver stores it); OUTPUT receives the
// quantized model input, raw and little-endian. (tests/firmware_harness.c does the same on the host, writing
// to stdout; here the output goes to a file, the one channel of semihosting that carries bytes unchanged on
// every QEMU version, and sizes are printed with %lu: Debian's newlib has no %zu.)
#include <stdio.h>
#include <stdlib.h>

#include "preprocess.h"

#define MAX_FRAME_BYTES (320 * 240 * 2)  // the ESP32-CAM's QVGA frame; static, as a camera frame buffer is

static uint8_t frame[MAX_FRAME_BYTES];
static te_input_t input[TE_INPUT_SIZE];

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: harness FRAME WIDTH HEIGHT OUTPUT (got %d arguments)\n", argc - 1);
        return 2;
    }
    const int width = atoi(argv[2]), height = atoi(argv[3]);
    const unsigned long size = (unsigned long)width * (unsigned long)height * 2ul;
    if (width <= 0 || height <= 0 || size > MAX_FRAME_BYTES) {
        fprintf(stderr, "frame %dx%d: not 1..%lu bytes\n", width, height, (unsigned long)MAX_FRAME_BYTES);
        return 2;
    }
    FILE *file = fopen(argv[1], "rb");
    if (file == NULL || fread(frame, 1, size, file) != size) {
        fprintf(stderr, "cannot read %lu bytes from %s\n", size, argv[1]);
        return 1;
    }
    fclose(file);
    te_preprocess_rgb565(frame, width, height, input);
    file = fopen(argv[4], "wb");
    if (file == NULL || fwrite(input, sizeof(te_input_t), TE_INPUT_SIZE, file) != TE_INPUT_SIZE ||
        fclose(file) != 0) {
        fprintf(stderr, "cannot write %lu bytes to %s\n", (unsigned long)sizeof input, argv[4]);
        return 1;
    }
    return 0;
}
