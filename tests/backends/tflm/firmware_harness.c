// Host harness for the generated src/preprocess.c: an RGB565 frame file (high byte first, as the ESP32 camera
// driver stores it) -> the quantized model input, written raw to stdout. Usage: harness FRAME WIDTH HEIGHT
#include <stdio.h>
#include <stdlib.h>

#include "preprocess.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s FRAME WIDTH HEIGHT\n", argv[0]);
        return 2;
    }
    const int width = atoi(argv[2]), height = atoi(argv[3]);
    const size_t size = (size_t)width * height * 2;
    unsigned char *frame = malloc(size);
    FILE *file = fopen(argv[1], "rb");
    if (frame == NULL || file == NULL || fread(frame, 1, size, file) != size) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", size, argv[1]);
        return 1;
    }
    fclose(file);
    static te_input_t input[TE_INPUT_SIZE];
    te_preprocess_rgb565(frame, width, height, input);
    fwrite(input, sizeof(te_input_t), TE_INPUT_SIZE, stdout);
    free(frame);
    return 0;
}
