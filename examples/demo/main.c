/*
 * qcc demo: classify one 3x16x16 image with testdata/small_cnn, compiled
 * ahead of time by qcc into small_cnn.o + small_cnn.h.
 *
 *     qcc testdata/small_cnn/model.onnx -o small_cnn.o
 *     cc -O2 -std=c11 -I . examples/demo/main.c small_cnn.o -o demo
 *     ./demo input.bin          (input.bin: 768 float32, little-endian, NCHW)
 *
 * No malloc and no runtime library: the input, the output and the model's
 * workspace are static buffers sized by the header's macros.
 */
#include "small_cnn.h"

#include <stdio.h>

static float input[SMALL_CNN_INPUT0_SIZE];
static float probs[SMALL_CNN_OUTPUT0_SIZE];
/* +1: a zero-length array is not C; the model may need no workspace at all. */
static _Alignas(SMALL_CNN_WORKSPACE_ALIGN) unsigned char workspace[SMALL_CNN_WORKSPACE_SIZE + 1];

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s INPUT.bin (%d float32 values)\n", argv[0], (int)SMALL_CNN_INPUT0_SIZE);
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "demo: cannot open %s\n", argv[1]);
        return 1;
    }
    size_t got = fread(input, sizeof input[0], SMALL_CNN_INPUT0_SIZE, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != SMALL_CNN_INPUT0_SIZE || extra) {
        fprintf(stderr, "demo: %s must hold exactly %d float32 values\n", argv[1], (int)SMALL_CNN_INPUT0_SIZE);
        return 1;
    }

    const void *inputs[] = {input};
    void *outputs[] = {probs};
    int rc = small_cnn_run(inputs, outputs, workspace);
    if (rc != 0) {
        fprintf(stderr, "demo: small_cnn_run failed with %d\n", rc);
        return 1;
    }

    int best = 0;
    for (int i = 0; i < SMALL_CNN_OUTPUT0_SIZE; i++) {
        printf("class %d: %.6f\n", i, probs[i]);
        if (probs[i] > probs[best])
            best = i;
    }
    printf("argmax: class %d (p = %.6f), workspace %zu bytes\n", best, probs[best], small_cnn_workspace_size());
    return 0;
}
