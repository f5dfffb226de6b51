/* Register-only throughput probes: independent chains of one instruction,
 * no memory traffic. Prints "name GMAC/s" for each probe compiled in (the
 * runner compiles only those the CPU has). */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
#define ITERS 20000000L
#define CHAINS 12

#define PROBE(NAME, T, INIT, OP, MACS, SINK)                                        \
    {                                                                              \
        T a[CHAINS];                                                               \
        for (int c = 0; c < CHAINS; c++) a[c] = INIT;                              \
        T x = INIT, y = INIT;                                                      \
        double t0 = now();                                                         \
        for (long i = 0; i < ITERS; i++) {                                         \
            _Pragma("GCC unroll 16") for (int c = 0; c < CHAINS; c++) a[c] = OP;   \
            __asm__ volatile("" : "+x"(x), "+x"(y));                               \
        }                                                                          \
        double dt = now() - t0;                                                    \
        volatile float sink = 0;                                                   \
        for (int c = 0; c < CHAINS; c++) sink += SINK;                             \
        printf("%s %.1f\n", NAME, (double)ITERS * CHAINS * (MACS) / dt * 1e-9);   \
    }

int main(void) {
#ifdef P_FMA_YMM
    PROBE("fp32_fma_ymm", __m256, _mm256_set1_ps(1e-7f), _mm256_fmadd_ps(a[c], x, y), 8,
          _mm256_cvtss_f32(a[c]))
#endif
#ifdef P_FMA_ZMM
    PROBE("fp32_fma_zmm", __m512, _mm512_set1_ps(1e-7f), _mm512_fmadd_ps(a[c], x, y), 16,
          _mm512_cvtss_f32(a[c]))
#endif
#ifdef P_MADDUBS_YMM
    PROBE("int8_maddubs_ymm", __m256i, _mm256_set1_epi8(1),
          _mm256_add_epi32(a[c], _mm256_madd_epi16(_mm256_maddubs_epi16(a[c], y), _mm256_set1_epi16(1))), 32,
          (float)_mm256_extract_epi32(a[c], 0))
#endif
#ifdef P_VNNI_YMM
    PROBE("int8_vpdpbusd_ymm", __m256i, _mm256_set1_epi8(1), _mm256_dpbusd_epi32(a[c], x, y), 32,
          (float)_mm256_extract_epi32(a[c], 0))
#endif
#ifdef P_VNNI_ZMM
    PROBE("int8_vpdpbusd_zmm", __m512i, _mm512_set1_epi8(1), _mm512_dpbusd_epi32(a[c], x, y), 64,
          (float)_mm_cvtsi128_si32(_mm512_castsi512_si128(a[c])))
#endif
    return 0;
}
