/* kernel_bench.c: per-core matvec speed of every quantized kernel, robust to a loaded machine:
 * the best of many repetitions of one matvec (384 rows x 2816, L2-resident weights; with
 * -DROWS=65536 the weights stream from DRAM), GB/s of weight bytes. Not a bandwidth
 * measurement (see benches/kernels.rs for that); it isolates the compute side.
 * Use -O3 as build.rs does (-O2 runs the K-quant kernels at half speed):
 *   gcc -O3 -Icsrc -c csrc/scalar.c -o scalar.o
 *   gcc -O3 -mavx2 -mfma -mf16c -Icsrc -c csrc/avx2.c -o avx2.o
 *   gcc -O3 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512dq -mavx2 -mfma -mf16c \
 *       -Icsrc -c csrc/avx512.c -o avx512.o
 *   gcc -O2 -mavx2 -Icsrc csrc/test/kernel_bench.c scalar.o avx2.o avx512.o -o kb && ./kb
 * (x86 only; compile scalar.c without ISA flags, see kernel_test.c.) */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common.h"
#include "../kernels.h"

#ifndef ROWS
#define ROWS 384
#endif
#ifndef REPS
#define REPS (ROWS > 4096 ? 8 : 200)
#endif

typedef void (*gemm_fn)(size_t, const void *, size_t, size_t, const void *, size_t, size_t, float *, size_t);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define KIND(W, A) {#W, !strcmp(#A, "q8k"), {gemm_##W##_##A##_scalar, gemm_##W##_##A##_avx2, gemm_##W##_##A##_avx512}},
struct kind {
    const char *name;
    int k;
    gemm_fn g[3];
};

static size_t block_bytes(const char *w) {
    static const struct { const char *n; size_t b; } t[] = {
        {"q4_0", 18}, {"q4_1", 20}, {"q5_0", 22}, {"q5_1", 24}, {"q8_0", 34}, {"iq4nl", 18},
        {"mxfp4", 17}, {"q2k", 84}, {"q3k", 110}, {"q4k", 144}, {"q5k", 176}, {"q6k", 210}, {"iq4xs", 136}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; ++i)
        if (!strcmp(t[i].n, w)) return t[i].b;
    return 0;
}

int main(void) {
    const size_t n = 2816;
    struct kind kinds[] = {LODE_SIMD_TYPES(KIND)};
    static float x[2816], out[ROWS];
    for (size_t i = 0; i < n; ++i) x[i] = (float)((int)(i * 37 % 101) - 50) * 0.01f;
    static uint8_t a8[2816 / 32 * 34], ak[2816 / 256 * 292];
    quantize_row_q8_0_scalar(n, x, a8);
    quantize_row_q8_k_scalar(n, x, ak);
    printf("GB/s, best of %d, %d rows x %zu\n%-6s %8s %8s %8s\n", REPS, ROWS, n, "type", "scalar", "avx2", "avx512");
    for (size_t t = 0; t < sizeof kinds / sizeof kinds[0]; ++t) {
        const size_t bb = block_bytes(kinds[t].name);
        if (!bb) continue; /* float weights */
        const size_t bl = kinds[t].k ? 256 : 32, rb = n / bl * bb;
        uint8_t *w = malloc(rb * ROWS);
        uint64_t s = 12345;
        for (size_t i = 0; i < rb * ROWS; ++i) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            w[i] = (uint8_t)(s >> 56);
        }
        printf("%-6s", kinds[t].name);
        for (int isa = 0; isa < 3; ++isa) {
            double best = 1e9;
            const int reps = isa == 0 ? 3 : REPS;
            for (int r = 0; r < reps; ++r) {
                const double t0 = now();
                kinds[t].g[isa](n, w, rb, ROWS, kinds[t].k ? (const void *)ak : (const void *)a8, 0, 1, out, ROWS);
                const double dt = now() - t0;
                if (dt < best) best = dt;
            }
            printf(" %8.1f", (double)(rb * ROWS) / best / 1e9);
        }
        printf("\n");
        free(w);
    }
    return 0;
}
