/* kernel_test.c: checks every kernel of one ISA build (LODE_SUFFIX) against scalar.c, with
 * the bounds of tests/kernels.rs. Used by scripts/neon-test.sh under qemu-aarch64.
 *   dots: |isa - scalar| <= 1e-5 * sum|w_i a_i| (dequantized), random + edge blocks
 *   gemm: equal to the ISA's own vec_dot bit for bit, 1..20 columns x 1..17 rows, and
 *         1..8 columns x 37 and 67 rows (the far-apart-rows paths)
 *   gemm_tiled, ggml_dot_f32, ggml_fma_row: equal to scalar bit for bit
 *   quantizers: bytes equal to scalar
 * Prints "N passed, M failed" and exits non-zero on any failure.
 * On x86 it runs natively too; compile scalar.c without ISA flags, as build.rs does (GCC 12
 * -O2 -mavx512* miscompiles vec_dot_q3k_q8k_scalar by auto-vectorization), and with -std=c11
 * as build.rs does (GNU C contracts a*b+c into FMA, and ggml_dot_f32's tail then differs), e.g.
 *   gcc -O2 -std=c11 -Icsrc -c csrc/scalar.c &&
 *   gcc -O2 -std=c11 -mavx2 -mfma -mf16c -Icsrc -c csrc/avx2.c &&
 *   gcc -O2 -std=c11 -mavx2 -Icsrc -DLODE_SUFFIX=avx2 -DLODE_TEST_TYPES=LODE_AVX2_TYPES \
 *       csrc/test/kernel_test.c scalar.o avx2.o -lm && ./a.out
 * (scripts/x86-kernel-test.sh does this for avx2 and avx512, also with CC=clang.) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../kernels.h"

#define LODE_CAT2(a, b) a##_##b
#define LODE_CAT(a, b) LODE_CAT2(a, b)
#define FN(name) LODE_CAT(name, LODE_SUFFIX)
#define LODE_STR2(x) #x
#define LODE_STR(x) LODE_STR2(x)
/* Which kernel list to test: NEON by default; x86 builds pass e.g.
 * -DLODE_SUFFIX=avx2 -DLODE_TEST_TYPES=LODE_AVX2_TYPES (see the comment at the top). */
#ifndef LODE_TEST_TYPES
#define LODE_TEST_TYPES LODE_NEON_TYPES
#endif

typedef float (*dot_fn)(size_t, const void *, const void *);
typedef void (*gemm_fn)(size_t, const void *, size_t, size_t, const void *, size_t, size_t, float *, size_t);
typedef void (*deq_fn)(size_t, const void *, float *);

enum act { ACT_Q8_0, ACT_Q8K, ACT_F32 };
struct kind {
    const char *name;
    dot_fn ref, isa;
    gemm_fn gemm;
    deq_fn deq;
    enum act act;
    dot_fn same;
};

static size_t block_len(const char *w) {
    if (!strcmp(w, "f32") || !strcmp(w, "f16") || !strcmp(w, "bf16")) return 1;
    return strchr(w, 'k') ? 256 : 32;
}
static size_t block_bytes(const char *w) {
    static const struct { const char *n; size_t b; } t[] = {
        {"q4_0", 18}, {"q4_1", 20}, {"q5_0", 22}, {"q5_1", 24}, {"q8_0", 34}, {"iq4nl", 18},
        {"mxfp4", 17}, {"q2k", 84}, {"q3k", 110}, {"q4k", 144}, {"q5k", 176}, {"q6k", 210},
        {"iq4xs", 136}, {"f32", 4}, {"f16", 2}, {"bf16", 2}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; ++i)
        if (!strcmp(t[i].n, w)) return t[i].b;
    return 0;
}
/* offsets of f16 scale fields per block; -1 terminated */
static const int *f16_fields(const char *w) {
    static const int at0[] = {0, -1}, at02[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1}, none[] = {-1};
    if (!strcmp(w, "q4_1") || !strcmp(w, "q5_1") || !strcmp(w, "q4k") || !strcmp(w, "q5k")) return at02;
    if (!strcmp(w, "q2k")) return q2k;
    if (!strcmp(w, "q3k")) return q3k;
    if (!strcmp(w, "q6k")) return q6k;
    if (!strcmp(w, "mxfp4") || block_len(w) == 1) return none;
    return at0;
}

static uint64_t rng_state = 0x5eed1234;
static uint64_t rnd(void) {
    rng_state += 0x9e3779b97f4a7c15ull;
    uint64_t z = rng_state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float uni(float lo, float hi) { return lo + (hi - lo) * (float)((rnd() >> 40) / 16777216.0); }

enum fill { F_RANDOM, F_ZERO, F_MAX, F_MINNORM, F_MIXED, F_COUNT };

static void weight_row(const char *w, size_t n, enum fill f, uint8_t *out) {
    const size_t bl = block_len(w), bb = block_bytes(w), nb = n / bl;
    if (bl == 1) {
        for (size_t i = 0; i < n; ++i) {
            float v = f == F_ZERO ? 0.0f : f == F_MAX ? 60000.0f : f == F_MINNORM ? 6.1e-5f : uni(-2, 2);
            if (!strcmp(w, "f32")) memcpy(out + 4 * i, &v, 4);
            else if (!strcmp(w, "f16")) { lode_half h = lode_fp32_to_fp16(v); memcpy(out + 2 * i, &h, 2); }
            else { uint32_t u = lode_f32_bits(v); uint16_t b = (uint16_t)(u >> 16); memcpy(out + 2 * i, &b, 2); }
        }
        return;
    }
    for (size_t i = 0; i < nb * bb; ++i) out[i] = f == F_ZERO ? 0 : f == F_MAX ? 0xff : (uint8_t)rnd();
    for (size_t b = 0; b < nb; ++b) {
        uint8_t *blk = out + b * bb;
        if (!strcmp(w, "mxfp4")) {
            blk[0] = f == F_ZERO ? 0 : f == F_MAX ? 150 : f == F_MINNORM ? 1 : (uint8_t)(110 + rnd() % 30);
            continue;
        }
        for (const int *o = f16_fields(w); *o >= 0; ++o) {
            lode_half h;
            switch (f) {
            case F_ZERO: h = 0; break;
            case F_MAX: h = 0x7bff; break;
            case F_MINNORM: h = (lode_half)(0x0400 | ((rnd() & 1) << 15)); break;
            case F_MIXED: { int k = (int)(rnd() % 3); h = k == 0 ? 0x7bff : k == 1 ? 0x0400 : lode_fp32_to_fp16(uni(-1, 1)); break; }
            default: h = lode_fp32_to_fp16(uni(-0.05f, 0.05f));
            }
            memcpy(blk + *o, &h, 2);
        }
    }
}

static size_t act_bytes(enum act a, size_t n) {
    return a == ACT_Q8_0 ? n / 32 * 34 : a == ACT_Q8K ? n / 256 * 292 : n * 4;
}
static void act_row(enum act a, size_t n, int zero, float *x, uint8_t *out) {
    for (size_t i = 0; i < n; ++i) x[i] = zero ? 0.0f : uni(-3, 3);
    if (a == ACT_Q8_0) quantize_row_q8_0_scalar(n, x, out);
    else if (a == ACT_Q8K) quantize_row_q8_k_scalar(n, x, out);
    else memcpy(out, x, n * 4);
}

static int passed, failed;
static void check(int ok, const char *what, const char *w, size_t n, double got, double want) {
    if (ok) { ++passed; return; }
    ++failed;
    if (failed < 20) fprintf(stderr, "FAIL %s %s n=%zu: %.9g vs %.9g\n", what, w, n, got, want);
}

#define KIND(W, A) {#W, vec_dot_##W##_##A##_scalar, FN(vec_dot_##W##_##A), FN(gemm_##W##_##A), dequantize_row_##W##_scalar, \
                    !strcmp(#A, "q8_0") ? ACT_Q8_0 : !strcmp(#A, "q8k") ? ACT_Q8K : ACT_F32, SAME(W, A)},
/* -DLODE_SAME_AS=avx2: the quantized kernels must equal that ISA's bit for bit (both follow
 * ggml's AVX2 float order; float weights are exempt). */
#ifdef LODE_SAME_AS
#define SAME(W, A) (strcmp(#A, "f32") ? LODE_CAT(vec_dot_##W##_##A, LODE_SAME_AS) : NULL)
#else
#define SAME(W, A) NULL
#endif

/* gemm shapes: columns 1..NCOLS_MAX (five 4-column groups), these row counts */
#define NCOLS_MAX 20
/* the widest tiled-gemm shape tested */
#define TILED_COLS_MAX 79
static const size_t gemm_rows[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 17};

int main(void) {
    struct kind kinds[] = {LODE_TEST_TYPES(KIND)};
    const size_t sizes32[] = {32, 96, 352, 640, 704, 2112, 2816};
    const size_t sizes256[] = {256, 768, 2816, 2560};
    const size_t sizes1[] = {1, 3, 7, 15, 17, 33, 640, 704, 2816};
    static uint8_t w[40 * 2816 * 4], a[TILED_COLS_MAX * 2816 * 4 + 64];
    /* wider gemm shapes: AVX-512 works in groups of 16 columns, 4 groups at a time */
    static const size_t wide_cols[] = {31, 32, 33, 47, 64, 65, 79};
    const size_t nshapes = NCOLS_MAX + sizeof wide_cols / sizeof wide_cols[0];
    static float x[2816], wd[2816], ad[2816], out[TILED_COLS_MAX * 40];
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
        const struct kind *K = &kinds[k];
        const size_t bl = block_len(K->name);
        const size_t *sz = bl == 256 ? sizes256 : bl == 32 ? sizes32 : sizes1;
        const size_t nsz = bl == 256 ? 4 : bl == 32 ? 7 : 9;
        for (size_t s = 0; s < nsz; ++s) {
            const size_t n = sz[s];
            for (int f = 0; f < F_COUNT; ++f) {
                for (int zero = 0; zero < 2; ++zero) {
                    weight_row(K->name, n, (enum fill)f, w);
                    act_row(K->act, n, zero, x, a);
                    const double want = K->ref(n, w, a), got = K->isa(n, w, a);
                    K->deq(n, w, wd);
                    if (K->act == ACT_Q8_0) dequantize_row_q8_0_scalar(n, a, ad);
                    else if (K->act == ACT_Q8K) dequantize_row_q8k_scalar(n, a, ad);
                    else memcpy(ad, a, n * 4);
                    double mag = 0;
                    for (size_t i = 0; i < n; ++i) mag += fabs((double)wd[i] * ad[i]);
                    check(fabs(got - want) <= 1e-5 * mag, "vec_dot", K->name, n, got, want);
                    if (K->same) {
                        const float g = K->isa(n, w, a), o = K->same(n, w, a);
                        check(memcmp(&g, &o, 4) == 0, "bitwise vs " LODE_STR(LODE_SAME_AS), K->name, n, g, o);
                    }
                }
            }
        }
        /* gemm vs the ISA's vec_dot, bit for bit: every row count in GEMM_ROWS (not multiples
         * of 4 or 8 too) x 1..NCOLS_MAX columns (several 4-column groups and a ragged last
         * group) and the wide_cols shapes, each column its own activation row; float weights also at n = 256 (a
         * Gemma 3 head, the attention scores' shape) */
        const size_t n = bl == 256 ? 768 : bl == 32 ? 672 : 643; /* odd block counts */
        for (int pass = 0; pass < (bl == 1 ? 2 : 1); ++pass) {
            const size_t gn = pass ? 256 : n;
            const size_t wb = gn / bl * block_bytes(K->name), ab = act_bytes(K->act, gn);
            for (int r = 0; r < 17; ++r) weight_row(K->name, gn, F_RANDOM, w + r * wb);
            for (size_t c = 0; c < TILED_COLS_MAX; ++c) act_row(K->act, gn, 0, x, a + c * ab);
            static float dots[TILED_COLS_MAX][17];
            for (size_t c = 0; c < TILED_COLS_MAX; ++c)
                for (int r = 0; r < 17; ++r) dots[c][r] = K->isa(gn, w + r * wb, a + c * ab);
            for (size_t ri = 0; ri < sizeof gemm_rows / sizeof gemm_rows[0]; ++ri) {
                const size_t nr = gemm_rows[ri];
                for (size_t si = 0; si < nshapes; ++si) {
                    const size_t nc = si < NCOLS_MAX ? si + 1 : wide_cols[si - NCOLS_MAX];
                    for (size_t i = 0; i < nc * (nr + 1); ++i) out[i] = -12345.0f;
                    K->gemm(gn, w, wb, nr, a, ab, nc, out, nr + 1);
                    for (size_t c = 0; c < nc; ++c) {
                        for (size_t r = 0; r < nr; ++r)
                            check(memcmp(&dots[c][r], &out[c * (nr + 1) + r], 4) == 0, "gemm", K->name, gn,
                                  out[c * (nr + 1) + r], dots[c][r]);
                        check(out[c * (nr + 1) + nr] == -12345.0f, "gemm writes past its rows", K->name, gn,
                              out[c * (nr + 1) + nr], -12345.0f);
                    }
                }
            }
        }
        const size_t wb = n / bl * block_bytes(K->name), ab = act_bytes(K->act, n);
        /* 1..8 columns (a decode batch) over 37 and 67 rows: the far-apart-rows paths where
         * an ISA has them (one column from 16 rows, 2..8 columns from 64), ragged row counts */
        for (int r = 0; r < 67; ++r) weight_row(K->name, n, F_RANDOM, w + r * wb);
        for (size_t c = 0; c < 8; ++c) act_row(K->act, n, 0, x, a + c * ab);
        static float fdots[8][67];
        for (size_t c = 0; c < 8; ++c)
            for (int r = 0; r < 67; ++r) fdots[c][r] = K->isa(n, w + r * wb, a + c * ab);
        for (size_t nr = 37; nr <= 67; nr += 30)
            for (size_t nc = 1; nc <= 8; ++nc) {
                for (size_t i = 0; i < nc * (nr + 1); ++i) out[i] = -12345.0f;
                K->gemm(n, w, wb, nr, a, ab, nc, out, nr + 1);
                for (size_t c = 0; c < nc; ++c) {
                    for (size_t r = 0; r < nr; ++r)
                        check(memcmp(&fdots[c][r], &out[c * (nr + 1) + r], 4) == 0, "gemm far rows",
                              K->name, n, out[c * (nr + 1) + r], fdots[c][r]);
                    check(out[c * (nr + 1) + nr] == -12345.0f, "gemm writes past its rows", K->name, n,
                          out[c * (nr + 1) + nr], -12345.0f);
                }
            }
    }
    /* batched gemm: gemm_tiled_* equal to scalar.c bit for bit, GEMM_ROWS rows x 1..NCOLS_MAX
     * columns and a few wider shapes (AVX-512 works in groups of 16 columns, 4 groups at a
     * time, and bands of 8 rows), n = 768 and 2048 (the 270M's FFN down), every weight fill */
    {
        static uint8_t at[TILED_COLS_MAX * 2048 / 256 * 292];
        static const struct { const char *name; gemm_fn ref, isa; } tk[] = {
            {"q4k", gemm_tiled_q4k_q8k_scalar, FN(gemm_tiled_q4k_q8k)},
            {"q5k", gemm_tiled_q5k_q8k_scalar, FN(gemm_tiled_q5k_q8k)},
            {"q6k", gemm_tiled_q6k_q8k_scalar, FN(gemm_tiled_q6k_q8k)}};
        static float want[TILED_COLS_MAX * 18], got[TILED_COLS_MAX * 18];
        for (size_t k = 0; k < 3; ++k) {
            for (size_t n = 768; n <= 2048; n += 1280) {
                const size_t wb = n / 256 * block_bytes(tk[k].name), ab = act_bytes(ACT_Q8K, n);
                for (int f = 0; f < F_COUNT; ++f) {
                    for (int r = 0; r < 17; ++r) weight_row(tk[k].name, n, (enum fill)f, w + r * wb);
                    for (size_t c = 0; c < TILED_COLS_MAX; ++c) act_row(ACT_Q8K, n, f == F_ZERO && c == 0, x, at + c * ab);
                    for (size_t ri = 0; ri < sizeof gemm_rows / sizeof gemm_rows[0]; ++ri) {
                        const size_t nr = gemm_rows[ri];
                        /* all fills at n = 768; random weights at n = 2048 */
                        if (n != 768 && f != F_RANDOM) continue;
                        for (size_t si = 0; si < nshapes; ++si) {
                            const size_t nc = si < NCOLS_MAX ? si + 1 : wide_cols[si - NCOLS_MAX];
                            for (size_t i = 0; i < nc * (nr + 1); ++i) want[i] = got[i] = -12345.0f;
                            tk[k].ref(n, w, wb, nr, at, ab, nc, want, nr + 1);
                            tk[k].isa(n, w, wb, nr, at, ab, nc, got, nr + 1);
                            for (size_t i = 0; i < nc * (nr + 1); ++i)
                                check(memcmp(&got[i], &want[i], 4) == 0, "gemm_tiled", tk[k].name, n, got[i], want[i]);
                        }
                    }
                }
            }
        }
    }
    /* ggml_dot_f32 equal to scalar.c bit for bit */
    {
        static float fx[1000], fy[1000];
        const size_t ns[] = {0, 1, 63, 64, 65, 127, 256, 300, 1000};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; ++k) {
            for (size_t i = 0; i < ns[k]; ++i) { fx[i] = uni(-3, 3); fy[i] = uni(-1e-2f, 1e-2f); }
            const float want = ggml_dot_f32_scalar(ns[k], fx, fy), got = FN(ggml_dot_f32)(ns[k], fx, fy);
            check(memcmp(&got, &want, 4) == 0, "ggml_dot_f32", "f32", ns[k], got, want);
        }
    }
    /* ggml_fma_row equal to scalar.c bit for bit */
    {
        static float fx[300], f1[300], f2[300];
        for (size_t nn = 0; nn <= 300; nn += 37) {
            for (size_t i = 0; i < nn; ++i) { fx[i] = uni(-3, 3); f1[i] = f2[i] = uni(-1, 1); }
            ggml_fma_row_scalar(nn, f1, fx, 0.3712f);
            FN(ggml_fma_row)(nn, f2, fx, 0.3712f);
            check(memcmp(f1, f2, nn * 4) == 0, "ggml_fma_row", "f32", nn, 0, 0);
        }
    }
    /* ggml_round_f16_row equal to scalar.c bit for bit: random values over f16's whole range
     * and past it (normals, subnormals, overflow), exact ties, zeros and infinities */
    {
        static float r1[1000], r2[1000];
        const float special[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e30f,
                                 6.103515625e-05f, 6.0975552e-05f, 5.9604645e-08f, 2.9802322e-08f,
                                 2.9802326e-08f, 1e-10f, -1e-10f, 1.00048828125f, 1.00146484375f,
                                 (float)INFINITY, -(float)INFINITY};
        const size_t nsp = sizeof special / sizeof special[0];
        for (size_t nn = 0; nn <= 1000; nn += 111) {
            for (size_t i = 0; i < nn; ++i) {
                const float mag = ldexpf(uni(1, 2), (int)uni(-30, 18));
                r1[i] = r2[i] = i < nsp ? special[i] : (uni(-1, 1) < 0 ? -mag : mag);
            }
            ggml_round_f16_row_scalar(nn, r1);
            FN(ggml_round_f16_row)(nn, r2);
            check(memcmp(r1, r2, nn * 4) == 0, "ggml_round_f16_row", "f32", nn, 0, 0);
        }
    }
    /* ggml_f16_to_f32_row equal to scalar.c bit for bit: every binary16 value, from an odd
     * address, and short tails */
    {
        static unsigned char hb[2 * 65536 + 1];
        static float y1[65536], y2[65536];
        for (uint32_t h = 0; h < 65536; ++h) {
            const lode_half v = (lode_half)h;
            memcpy(hb + 1 + 2 * h, &v, 2);
        }
        const size_t ns[] = {0, 1, 3, 7, 15, 17, 33, 65536};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; ++k) {
            ggml_f16_to_f32_row_scalar(ns[k], hb + 1, y1);
            FN(ggml_f16_to_f32_row)(ns[k], hb + 1, y2);
            check(memcmp(y1, y2, ns[k] * 4) == 0, "ggml_f16_to_f32_row", "f16", ns[k], 0, 0);
        }
    }
    /* ggml_rope_pairs equal to scalar.c bit for bit */
    {
        static float lo1[300], hi1[300], lo2[300], hi2[300], sc[600];
        for (size_t nn = 0; nn <= 300; nn += 37) {
            for (size_t i = 0; i < nn; ++i) {
                lo1[i] = lo2[i] = uni(-3, 3);
                hi1[i] = hi2[i] = uni(-3, 3);
                sc[2 * i] = uni(-1, 1);
                sc[2 * i + 1] = uni(-1, 1);
            }
            ggml_rope_pairs_scalar(nn, lo1, hi1, sc);
            FN(ggml_rope_pairs)(nn, lo2, hi2, sc);
            check(memcmp(lo1, lo2, nn * 4) == 0 && memcmp(hi1, hi2, nn * 4) == 0, "ggml_rope_pairs", "f32", nn, 0, 0);
        }
    }
    /* attn_axpy: rows 3 heads apart, nh heads, vs scalar within 1e-5 * sum |p v| */
    {
        typedef void (*axpy_fn)(size_t, size_t, const void *, size_t, const float *, size_t, size_t, float *, size_t);
        const struct { const char *name; axpy_fn ref, isa; } ax[] = {
            {"f32", attn_axpy_f32_scalar, FN(attn_axpy_f32)},
            {"f16", attn_axpy_f16_scalar, FN(attn_axpy_f16)},
            {"q8_0", attn_axpy_q8_0_scalar, FN(attn_axpy_q8_0)}};
        static float p[8 * 70], acc1[8 * 520], acc2[8 * 520], deq[64][520];
        static uint8_t vb[64 * 3 * 520 * 4];
        for (size_t k = 0; k < 3; ++k) {
            /* ... and the 270M's head (256, 4 query heads) over 1..20 keys */
            const size_t shapes[][3] = {{32, 1, 1}, {64, 5, 2}, {256, 64, 2}, {512, 17, 8}, {96, 3, 5},
                                        {256, 7, 4}, {256, 8, 4}, {256, 9, 4}, {256, 12, 4}, {256, 20, 4},
                                        {256, 9, 1}, {256, 13, 9}};
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
                const size_t n = shapes[s][0] + (k == 2 ? 0 : 3), nk = shapes[s][1], nh = shapes[s][2];
                const size_t bl = block_len(ax[k].name), rb = n / bl * block_bytes(ax[k].name);
                const size_t stride = 3 * rb;
                for (size_t j = 0; j < nk; ++j) {
                    weight_row(ax[k].name, n, F_RANDOM, vb + j * stride);
                    (k == 0 ? dequantize_row_f32_scalar : k == 1 ? dequantize_row_f16_scalar
                                                                 : dequantize_row_q8_0_scalar)(n, vb + j * stride, deq[j]);
                }
                for (size_t i = 0; i < nh * (nk + 1); ++i) p[i] = uni(0, 1);
                for (size_t i = 0; i < nh * (n + 1); ++i) acc1[i] = acc2[i] = uni(-1, 1);
                ax[k].ref(n, nk, vb, stride, p, nk + 1, nh, acc1, n + 1);
                ax[k].isa(n, nk, vb, stride, p, nk + 1, nh, acc2, n + 1);
                for (size_t h = 0; h < nh; ++h)
                    for (size_t i = 0; i <= n; ++i) {
                        double mag = 1.0;
                        for (size_t j = 0; i < n && j < nk; ++j) mag += fabs((double)p[h * (nk + 1) + j] * deq[j][i]);
                        const double g = acc2[h * (n + 1) + i], r = acc1[h * (n + 1) + i];
                        check(fabs(g - r) <= 1e-5 * mag, "attn_axpy", ax[k].name, n, g, r);
                    }
            }
        }
    }
    /* quantizers */
    static uint8_t q1[2816 / 32 * 34 + 2816 / 256 * 292], q2[sizeof q1];
    for (int t = 0; t < 6; ++t) {
        for (size_t i = 0; i < 2560; ++i)
            x[i] = t == 0 ? 0.0f : t == 1 ? ((float)i - 1280.0f) * 0.5f : t == 2 ? uni(-1e4f, 1e4f) : uni(-3, 3);
        quantize_row_q8_0_scalar(2560, x, q1);
        FN(quantize_row_q8_0)(2560, x, q2);
        check(memcmp(q1, q2, 2560 / 32 * 34) == 0, "quantize q8_0", "", 2560, 0, 0);
        quantize_row_q8_k_scalar(2560, x, q1);
        FN(quantize_row_q8_k)(2560, x, q2);
        check(memcmp(q1, q2, 2560 / 256 * 292) == 0, "quantize q8_k", "", 2560, 0, 0);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
