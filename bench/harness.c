/* Times one qcc-compiled model (prefix "m"): `./h RUNS` runs it 3 times to
 * warm up, then RUNS times, and prints each run's wall time in nanoseconds.
 * `./h RUNS profile` (model compiled with --profile) runs m_run_profiled
 * instead and prints each node's mean nanoseconds and "name (op)". */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "m.h"

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

#ifdef M_NUM_PROFILED_NODES
static uint64_t clock_ns(void) { return (uint64_t)now_ns(); }

static int profile(const void *const *ins, void *const *outs, void *ws, int runs) {
    static const char *const names[] = M_PROFILED_NODE_NAMES;
    static uint64_t ticks[M_NUM_PROFILED_NODES];
    static double sum[M_NUM_PROFILED_NODES];
    for (int r = 0; r < runs; r++) {
        if (m_run_profiled(ins, outs, ws, clock_ns, ticks)) return 1;
        for (int i = 0; i < M_NUM_PROFILED_NODES; i++) sum[i] += (double)ticks[i];
    }
    for (int i = 0; i < M_NUM_PROFILED_NODES; i++) printf("%.0f\t%s\n", sum[i] / runs, names[i]);
    return 0;
}
#endif

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 10;
    float *in = malloc(sizeof(float) * M_INPUT0_SIZE);
    float *out = malloc(sizeof(float) * M_OUTPUT0_SIZE);
    void *ws = aligned_alloc(M_WORKSPACE_ALIGN, (M_WORKSPACE_SIZE / M_WORKSPACE_ALIGN + 1) * M_WORKSPACE_ALIGN);
    unsigned s = 12345;
    for (long i = 0; i < M_INPUT0_SIZE; i++) {
        s = s * 1103515245u + 12345u;
        in[i] = ((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    const void *ins[] = {in};
    void *outs[] = {out};
    for (int i = 0; i < 3; i++)
        if (m_run(ins, outs, ws)) return 1;
#ifdef M_NUM_PROFILED_NODES
    if (argc > 2) return profile(ins, outs, ws, runs);
#endif
    for (int i = 0; i < runs; i++) {
        double t0 = now_ns();
        m_run(ins, outs, ws);
        printf("%.0f\n", now_ns() - t0);
    }
    fprintf(stderr, "checksum %g\n", (double)out[0]);
    return 0;
}
