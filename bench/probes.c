/* Register-only throughput probes: independent chains of one instruction,
 * no memory traffic. Prints "name GMAC/s" for each probe compiled in (the
 * runner compiles only those the CPU has). */
#define _POSIX_C_SOURCE 199309L
#define _DEFAULT_SOURCE
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#ifdef P_AMX
#include <sys/syscall.h>
#include <unistd.h>
#endif

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
#ifdef P_AMX
    /* Four independent 16x16 accumulator tiles, each tdpbusd 16*16*64 MACs;
     * Linux grants the tile state on request (ARCH_REQ_XCOMP_PERM). */
    if (syscall(158, 0x1023, 18) == 0) {
        unsigned char cfg[64], src[1024];
        memset(cfg, 0, sizeof cfg);
        memset(src, 1, sizeof src);
        cfg[0] = 1;
        for (int t = 0; t < 8; t++) {
            cfg[16 + 2 * t] = 64;
            cfg[48 + t] = 16;
        }
        _tile_loadconfig(cfg);
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        _tile_loadd(4, src, 64); _tile_loadd(5, src, 64);
        _tile_loadd(6, src, 64); _tile_loadd(7, src, 64);
        long n = ITERS / 4;
        double t0 = now();
        for (long i = 0; i < n; i++) {
            _tile_dpbusd(0, 4, 6); _tile_dpbusd(1, 4, 7);
            _tile_dpbusd(2, 5, 6); _tile_dpbusd(3, 5, 7);
        }
        double dt = now() - t0;
        int out[256];
        _tile_stored(0, out, 64);
        _tile_release();
        printf("int8_amx_tdpbusd %.1f\n", (double)n * 4 * 16 * 16 * 64 / dt * 1e-9 + 0 * out[0]);
    }
#endif
    return 0;
}
