/*
 * The test harness of qcc's end-to-end and ONNX node tests: runs one compiled
 * model on inputs read from raw files and writes its outputs to raw files.
 *
 * Build (the model compiled with `qcc model.onnx -o DIR/model.o --name model`):
 *     cc -O1 -std=c11 -Wall -Wextra -Werror -I DIR harness.c DIR/model.o -o app
 * Run:
 *     app ESIZE:INPUT_FILE... ESIZE:OUTPUT_FILE...
 * with one argument per model input, then one per output, in ONNX order; ESIZE
 * is the element size in bytes (4 for float32, 8 for int64). Input files hold
 * the dense row-major little-endian elements.
 *
 * Besides running the model it checks the contract of the generated code:
 * the header's counts agree with the arguments and files, `model_workspace_size()`
 * equals MODEL_WORKSPACE_SIZE, the run returns 0, writes inside its outputs and
 * workspace only (guard bytes around each), leaves its inputs untouched, and
 * gives the same outputs when run again on a workspace filled differently.
 * The workspace is MODEL_WORKSPACE_ALIGN-aligned; inputs and outputs are only
 * 16-byte aligned, as malloc gives them.
 * Exit status: 0 ok, 1 usage or I/O error, 2 a contract violation.
 * Only libc; no libm, no qcc runtime library.
 */
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS 16
#define GUARD 64
/* Inputs and outputs start 16 bytes past a 64-byte boundary, as malloc may give
 * them: the generated code may assume element alignment only. */
#define IO_OFFSET 16

#if MODEL_NUM_INPUTS > MAX_TENSORS || MODEL_NUM_OUTPUTS > MAX_TENSORS
#error "the harness handles at most MAX_TENSORS inputs and outputs"
#endif

/* Element counts of the model's inputs, from the header (up to MAX_TENSORS). */
static const size_t input_numel[MAX_TENSORS + 1] = {
#if MODEL_NUM_INPUTS > 0
    MODEL_INPUT0_SIZE,
#endif
#if MODEL_NUM_INPUTS > 1
    MODEL_INPUT1_SIZE,
#endif
#if MODEL_NUM_INPUTS > 2
    MODEL_INPUT2_SIZE,
#endif
#if MODEL_NUM_INPUTS > 3
    MODEL_INPUT3_SIZE,
#endif
#if MODEL_NUM_INPUTS > 4
    MODEL_INPUT4_SIZE,
#endif
#if MODEL_NUM_INPUTS > 5
    MODEL_INPUT5_SIZE,
#endif
#if MODEL_NUM_INPUTS > 6
    MODEL_INPUT6_SIZE,
#endif
#if MODEL_NUM_INPUTS > 7
    MODEL_INPUT7_SIZE,
#endif
#if MODEL_NUM_INPUTS > 8
    MODEL_INPUT8_SIZE,
#endif
#if MODEL_NUM_INPUTS > 9
    MODEL_INPUT9_SIZE,
#endif
#if MODEL_NUM_INPUTS > 10
    MODEL_INPUT10_SIZE,
#endif
#if MODEL_NUM_INPUTS > 11
    MODEL_INPUT11_SIZE,
#endif
#if MODEL_NUM_INPUTS > 12
    MODEL_INPUT12_SIZE,
#endif
#if MODEL_NUM_INPUTS > 13
    MODEL_INPUT13_SIZE,
#endif
#if MODEL_NUM_INPUTS > 14
    MODEL_INPUT14_SIZE,
#endif
#if MODEL_NUM_INPUTS > 15
    MODEL_INPUT15_SIZE,
#endif
    0,
};

/* Element counts of the model's outputs, from the header (up to MAX_TENSORS). */
static const size_t output_numel[MAX_TENSORS + 1] = {
#if MODEL_NUM_OUTPUTS > 0
    MODEL_OUTPUT0_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 1
    MODEL_OUTPUT1_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 2
    MODEL_OUTPUT2_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 3
    MODEL_OUTPUT3_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 4
    MODEL_OUTPUT4_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 5
    MODEL_OUTPUT5_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 6
    MODEL_OUTPUT6_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 7
    MODEL_OUTPUT7_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 8
    MODEL_OUTPUT8_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 9
    MODEL_OUTPUT9_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 10
    MODEL_OUTPUT10_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 11
    MODEL_OUTPUT11_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 12
    MODEL_OUTPUT12_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 13
    MODEL_OUTPUT13_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 14
    MODEL_OUTPUT14_SIZE,
#endif
#if MODEL_NUM_OUTPUTS > 15
    MODEL_OUTPUT15_SIZE,
#endif
    0,
};

/* A buffer of `size` bytes at `base + GUARD + offset` (base 64-byte aligned),
 * with guard bytes of a known pattern all around. */
struct guarded {
    unsigned char *base;
    size_t size, offset, total;
};

static unsigned char *data_of(const struct guarded *g) { return g->base + GUARD + g->offset; }

static int guarded_alloc(struct guarded *g, size_t size, size_t offset, unsigned char fill)
{
    g->size = size;
    g->offset = offset;
    g->total = (GUARD + offset + size + GUARD + 63) / 64 * 64;
    g->base = aligned_alloc(64, g->total);
    if (!g->base)
        return -1;
    memset(g->base, 0xCD, g->total);
    memset(data_of(g), fill, size);
    return 0;
}

static int guards_intact(const struct guarded *g)
{
    size_t begin = GUARD + g->offset, end = begin + g->size;
    for (size_t i = 0; i < g->total; i++)
        if ((i < begin || i >= end) && g->base[i] != 0xCD)
            return 0;
    return 1;
}

/* Splits "ESIZE:PATH"; returns the element size or 0 when malformed. */
static size_t parse_arg(const char *arg, const char **path)
{
    char *end;
    unsigned long e = strtoul(arg, &end, 10);
    if (end == arg || *end != ':' || !(e == 1 || e == 2 || e == 4 || e == 8))
        return 0;
    *path = end + 1;
    return (size_t)e;
}

static int read_exact(const char *path, unsigned char *dst, size_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "harness: cannot open %s\n", path);
        return -1;
    }
    size_t got = size ? fread(dst, 1, size, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != size || extra) {
        fprintf(stderr, "harness: %s does not hold exactly %zu bytes\n", path, size);
        return -1;
    }
    return 0;
}

static int write_all(const char *path, const unsigned char *src, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "harness: cannot create %s\n", path);
        return -1;
    }
    size_t put = size ? fwrite(src, 1, size, f) : 0;
    if (fclose(f) != 0 || put != size) {
        fprintf(stderr, "harness: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const int ni = MODEL_NUM_INPUTS, no = MODEL_NUM_OUTPUTS;
    if (argc != 1 + ni + no) {
        fprintf(stderr, "usage: %s ESIZE:INPUT... ESIZE:OUTPUT... (the model has %d inputs, %d outputs)\n",
                argv[0], ni, no);
        return 1;
    }
    if (model_workspace_size() != (size_t)MODEL_WORKSPACE_SIZE) {
        fprintf(stderr, "harness: model_workspace_size() = %zu but MODEL_WORKSPACE_SIZE = %zu\n",
                model_workspace_size(), (size_t)MODEL_WORKSPACE_SIZE);
        return 2;
    }
    if (MODEL_WORKSPACE_ALIGN > 64 || 64 % MODEL_WORKSPACE_ALIGN != 0) {
        fprintf(stderr, "harness: MODEL_WORKSPACE_ALIGN = %d is not a divisor of 64\n", (int)MODEL_WORKSPACE_ALIGN);
        return 2;
    }

    struct guarded in[MAX_TENSORS + 1], out[MAX_TENSORS + 1], first[MAX_TENSORS + 1], ws;
    unsigned char *in_copy[MAX_TENSORS + 1];
    const void *in_ptr[MAX_TENSORS + 1];
    void *out_ptr[MAX_TENSORS + 1];
    const char *out_path[MAX_TENSORS + 1];

    for (int i = 0; i < ni; i++) {
        const char *path;
        size_t esize = parse_arg(argv[1 + i], &path);
        if (!esize) {
            fprintf(stderr, "harness: bad argument '%s' (want ESIZE:PATH)\n", argv[1 + i]);
            return 1;
        }
        size_t size = esize * input_numel[i];
        if (guarded_alloc(&in[i], size, IO_OFFSET, 0) || !(in_copy[i] = malloc(size ? size : 1))) {
            fprintf(stderr, "harness: out of memory\n");
            return 1;
        }
        if (read_exact(path, data_of(&in[i]), size))
            return 1;
        memcpy(in_copy[i], data_of(&in[i]), size);
        in_ptr[i] = data_of(&in[i]);
    }
    for (int o = 0; o < no; o++) {
        size_t esize = parse_arg(argv[1 + ni + o], &out_path[o]);
        if (!esize) {
            fprintf(stderr, "harness: bad argument '%s' (want ESIZE:PATH)\n", argv[1 + ni + o]);
            return 1;
        }
        size_t size = esize * output_numel[o];
        if (guarded_alloc(&out[o], size, IO_OFFSET, 0xA5) || guarded_alloc(&first[o], size, 0, 0)) {
            fprintf(stderr, "harness: out of memory\n");
            return 1;
        }
        out_ptr[o] = data_of(&out[o]);
    }
    if (guarded_alloc(&ws, model_workspace_size(), 0, 0xA5)) {
        fprintf(stderr, "harness: out of memory\n");
        return 1;
    }

    /* Run twice: on a workspace and outputs of 0xA5 bytes, then of 0x5A bytes. */
    for (int pass = 0; pass < 2; pass++) {
        int rc = model_run(in_ptr, out_ptr, data_of(&ws));
        if (rc != 0) {
            fprintf(stderr, "harness: model_run returned %d\n", rc);
            return 2;
        }
        for (int i = 0; i < ni; i++) {
            if (!guards_intact(&in[i]) || memcmp(in_copy[i], data_of(&in[i]), in[i].size) != 0) {
                fprintf(stderr, "harness: model_run modified input %d\n", i);
                return 2;
            }
        }
        for (int o = 0; o < no; o++) {
            if (!guards_intact(&out[o])) {
                fprintf(stderr, "harness: model_run wrote outside output %d\n", o);
                return 2;
            }
        }
        if (!guards_intact(&ws)) {
            fprintf(stderr, "harness: model_run wrote outside its workspace\n");
            return 2;
        }
        if (pass == 0) {
            for (int o = 0; o < no; o++) {
                memcpy(data_of(&first[o]), data_of(&out[o]), out[o].size);
                memset(data_of(&out[o]), 0x5A, out[o].size);
            }
            memset(data_of(&ws), 0x5A, ws.size);
        } else {
            for (int o = 0; o < no; o++) {
                if (memcmp(data_of(&first[o]), data_of(&out[o]), out[o].size) != 0) {
                    fprintf(stderr, "harness: output %d differs between two runs "
                                    "(reads uninitialized workspace or output memory?)\n", o);
                    return 2;
                }
            }
        }
    }
    for (int o = 0; o < no; o++)
        if (write_all(out_path[o], data_of(&out[o]), out[o].size))
            return 1;
    return 0;
}
