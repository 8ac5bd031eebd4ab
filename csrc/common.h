/* common.h: block layouts and the bit-twiddling every ISA file shares.
 *
 * Every helper here is `static inline`: a helper with external linkage compiled into
 * avx512.c could be picked by the linker for the scalar path and SIGILL on an older CPU.
 * Block layouts are byte-for-byte those of ggml (ggml-common.h), so GGUF tensor bytes
 * can be passed straight in.
 */
#ifndef LODE_COMMON_H
#define LODE_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QK32 32  /* elements per block of the 32-element types */
#define QK_K 256 /* elements per K-quant super-block */

typedef uint16_t lode_half; /* IEEE binary16 bits */

typedef struct { lode_half d; uint8_t qs[16]; } block_q4_0;
typedef struct { lode_half d, m; uint8_t qs[16]; } block_q4_1;
typedef struct { lode_half d; uint8_t qh[4]; uint8_t qs[16]; } block_q5_0;
typedef struct { lode_half d, m; uint8_t qh[4]; uint8_t qs[16]; } block_q5_1;
typedef struct { lode_half d; int8_t qs[32]; } block_q8_0;
typedef struct { lode_half d; uint8_t qs[16]; } block_iq4_nl;
typedef struct { uint8_t e; uint8_t qs[16]; } block_mxfp4;

typedef struct { uint8_t scales[16]; uint8_t qs[64]; lode_half d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; lode_half d; } block_q3_K;
typedef struct { lode_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;
typedef struct { lode_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; lode_half d; } block_q6_K;
typedef struct { lode_half d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } block_iq4_xs;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl");
_Static_assert(sizeof(block_mxfp4) == 17, "mxfp4");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K");
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K");

/* The IQ4_NL / IQ4_XS non-linear codebook. */
static const int8_t lode_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                              1,    13,   25,  38,  53,  69,  89,  113};
/* MXFP4 E2M1 values, doubled so they are integers; the E8M0 scale is halved to match. */
static const int8_t lode_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* ggml's RoPE rotation of n (lo[i], hi[i]) pairs by the angles whose sine and cosine are
 * sc[2i], sc[2i + 1]: lo' = fma(lo, c, -(hi*s)), hi' = fma(lo, s, hi*c), as GNU C contracts
 * ggml's `x0*c - x1*s` and `x0*s + x1*c`. fmaf rounds once on every target, so each ISA's
 * copy (compiled with its file's flags: an FMA instruction where the ISA has one) gives the
 * same bits. */
static inline void lode_rope_pairs(size_t n, float *lo, float *hi, const float *sc) {
    for (size_t i = 0; i < n; ++i) {
        const float x0 = lo[i], x1 = hi[i], s = sc[2 * i], c = sc[2 * i + 1];
        lo[i] = fmaf(x0, c, -(x1 * s));
        hi[i] = fmaf(x0, s, x1 * c);
    }
}

static inline uint32_t lode_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float lode_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Exact binary16 -> binary32 (subnormals, inf, NaN kept). */
static inline float lode_fp16_to_fp32(lode_half h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return lode_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        float f = (float)man * 5.9604644775390625e-8f; /* man * 2^-24, exact */
        return lode_bits_f32(sign | lode_f32_bits(f));
    }
    return lode_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* binary32 -> binary16, round to nearest even: the same bits as F16C's vcvtps2ph and
 * ggml's portable ggml_compute_fp32_to_fp16 (the float trick from Maratyszcza's FP16). */
static inline lode_half lode_fp32_to_fp16(float f) {
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = lode_f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = lode_bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = lode_f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
    const uint32_t mantissa_bits = bits & 0x00000fffu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (lode_half)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

static inline float lode_bf16_to_fp32(uint16_t h) { return lode_bits_f32((uint32_t)h << 16); }

/* E8M0 scale halved: 2^(e-128), pairs with the doubled lode_kvalues_mxfp4. */
static inline float lode_e8m0_to_fp32_half(uint8_t e) {
    return lode_bits_f32(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}

/* Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins packed into 12 bytes. */
static inline void lode_get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* All 8 scales then all 8 mins of a Q4_K/Q5_K block, as 16 bytes: the same values as
 * lode_get_scale_min_k4 for j = 0..7, computed four bytes at a time. */
static inline void lode_unpack_scales_mins_k4(const uint8_t *q, uint8_t out[16]) {
    const uint32_t kmask1 = 0x3f3f3f3fu, kmask2 = 0x0f0f0f0fu, kmask3 = 0x03030303u;
    uint32_t u[4];
    memcpy(u, q, 12);
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t mins_lo = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = mins_lo;
    u[0] &= kmask1;
    memcpy(out, u, 16);
}

/* Q3_K: 16 six-bit scales (biased by 32) packed into 12 bytes; returns them unbiased. */
static inline void lode_unpack_scales_q3k(const uint8_t *packed, int8_t out[16]) {
    uint32_t aux[4];
    memcpy(aux, packed, 12);
    const uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    uint8_t b[16];
    memcpy(b, aux, 16);
    for (int j = 0; j < 16; ++j) out[j] = (int8_t)(b[j] - 32);
}

/* IQ4_XS: six-bit scale of sub-block ib (0..7), unbiased. */
static inline int lode_iq4xs_scale(const block_iq4_xs *x, int ib) {
    int ls = ((x->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x->scales_h >> 2 * ib) & 3) << 4);
    return ls - 32;
}

/* Round half to even for |v| < 2^22, as ggml's nearest_int. */
static inline int lode_nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* The scalar quantizers live here so a SIMD file can reuse them bit-exactly.
 *
 * Activations are quantized the way llama.cpp does it at run time on x86 (ggml-cpu
 * arch/x86/quants.c quantize_row_q8_0), not like the weight quantizer quantize_row_q8_0_ref:
 * the multiplier is 127/amax (not 1/d) and rounding is to nearest, ties to even (not roundf).
 * The two differ in a few quants per row, and the difference moves logits by tenths, enough to
 * flip greedy tokens against llama.cpp's reference outputs. */
static inline void lode_quantize_q8_0_block(const float *x, block_q8_0 *y) {
    float amax = 0.0f;
    for (int j = 0; j < QK32; ++j) {
        float a = fabsf(x[j]);
        if (a > amax) amax = a;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y->d = lode_fp32_to_fp16(d);
    for (int j = 0; j < QK32; ++j) y->qs[j] = (int8_t)lode_nearest_int(x[j] * id);
}

static inline void lode_quantize_q8_k_block(const float *x, block_q8_K *y) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
        float ax = fabsf(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        /* ggml leaves bsums unwritten here; zero them so the block is deterministic. */
        memset(y, 0, sizeof(*y));
        return;
    }
    /* Current ggml uses -127 (not -128) so no quant is -128; sign of the largest element. */
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; ++j) {
        int v = lode_nearest_int(iscale * x[j]);
        y->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += y->qs[j * 16 + i];
        y->bsums[j] = (int16_t)sum;
    }
    y->d = 1.0f / iscale;
}

/* Rows of weights prefetched ahead of the gemm loops (no effect on any result). */
#define LODE_AHEAD_ROWS 4

/* A gemm that calls COLS(n, w_row, cols, nc, res) on up to 4 activation columns at a time,
 * so each weight block is loaded and unpacked once per 4 columns. COLS must compute each
 * column with the same arithmetic whatever nc is, so gemm equals vec_dot bit for bit.
 * ISA may be a macro (LODE_SUFFIX): it is expanded before it is pasted into the names. */
#define LODE_GEMM_TILED(W, A, ISA, COLS) LODE_GEMM_TILED_(W, A, ISA, COLS, LODE_NO_MATVEC)
/* LODE_GEMM_TILED with MATVEC(n, w, w_row_stride, nrows, a, out) tried first for one activation
 * column: it returns 1 if it computed the product (each row with the same arithmetic). */
#define LODE_GEMM_TILED_MV(W, A, ISA, COLS, MATVEC) LODE_GEMM_TILED_(W, A, ISA, COLS, MATVEC)
#define LODE_NO_MATVEC(n, w, w_row_stride, nrows, a, out) 0
#define LODE_GEMM_TILED_(W, A, ISA, COLS, MATVEC)                                           \
    void gemm_##W##_##A##_##ISA(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                const void *a, size_t a_row_stride, size_t ncols,          \
                                float *out, size_t out_col_stride) {                       \
        if (ncols == 1 && MATVEC(n, w, w_row_stride, nrows, a, out)) return;               \
        for (size_t c0 = 0; c0 < ncols; c0 += 4) {                                         \
            const size_t nc = ncols - c0 < 4 ? ncols - c0 : 4;                             \
            const void *cols[4];                                                           \
            for (size_t c = 0; c < nc; ++c) cols[c] = (const char *)a + (c0 + c) * a_row_stride; \
            for (size_t r = 0; r < nrows; ++r) {                                           \
                const void *wr = (const char *)w + r * w_row_stride;                       \
                /* the weights stream past once: fetch a row LODE_AHEAD_ROWS ahead */     \
                for (size_t o = 0; r + LODE_AHEAD_ROWS < nrows && o < w_row_stride; o += 64) \
                    __builtin_prefetch((const char *)wr + LODE_AHEAD_ROWS * w_row_stride + o); \
                float res[4];                                                              \
                switch (nc) {                                                              \
                case 4: COLS(n, wr, cols, 4, res); break;                                  \
                case 3: COLS(n, wr, cols, 3, res); break;                                  \
                case 2: COLS(n, wr, cols, 2, res); break;                                  \
                default: COLS(n, wr, cols, 1, res); break;                                 \
                }                                                                          \
                for (size_t c = 0; c < nc; ++c) out[(c0 + c) * out_col_stride + r] = res[c]; \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    float vec_dot_##W##_##A##_##ISA(size_t n, const void *w, const void *a) {              \
        float r;                                                                           \
        COLS(n, w, &a, 1, &r);                                                             \
        return r;                                                                          \
    }


/* ---- matrix-vector products over far-apart rows ----
 * With one activation column (decode) a thread streams its rows from memory once, and one row
 * at a time keeps too few cache misses in flight: the x86 Q4_K kernel ran at ~8.5 GB/s per core
 * from DRAM against ~16 GB/s from L3 on a Zen 4 VM. Computing rows r, r+q, ..., r+7q together
 * (q = nrows/8) makes eight independent sequential streams: 1.4-1.5x one row at a time, per
 * core and on two cores (104 MB of Q4_K). Adjacent rows together are slower (see gemm2 in
 * avx512.c). ROWS(n, rows[nr], nr, a, res[nr]) must compute each row with the one-column
 * arithmetic of the type's COLS kernel, so results stay equal to vec_dot bit for bit. */
/* Four streams, not eight, since 2026-12-07: on a later Zen 4 VM (EPYC, family 25 model 17)
 * eight streams with the prefetch below read far less from DRAM than four (one core,
 * kernel_bench -DROWS=65536: Q8_0 20.1 against 27.5 GB/s, Q4_K 17.6 / 22.2, Q6_K 16.5 / 27.5,
 * Q5_0 14.0 / 14.7; 2, 3 and 4 streams alike; 16 worse still), with the same rates from L2, and
 * the 26B-A4B decoded 1.18-1.27x faster at 2 threads and 1.31-1.33x at 1 (scripts/ab-decode.sh;
 * 2, 3 and 4 streams within 1.3 % of each other). On the Xeon VM below 4 and 8 were alike. */
#ifndef LODE_FAR
#define LODE_FAR 4
#endif
/* ROWS kernels also prefetch each of their row streams LODE_STREAM_AHEAD bytes ahead of the
 * block they compute (every 64-byte line of the block that far on). The hardware prefetcher
 * alone left eight streams short of memory-level parallelism: on a 2-vCPU Xeon VM (AVX-512)
 * the Q4_K far-row matvec read 11.3-11.8 GB/s per core from DRAM, 15.5-16.9 with this
 * (512-2048 bytes ahead, 4 or 8 streams: all within the driver's noise), against 16.5 for a
 * plain summing loop (throwaway driver, 1.5-3 GiB of rows, one and two processes: a lead); the 26B-A4B
 * decoded 29 % faster (docs/performance.md, #12 night run). A prefetch never faults and changes
 * no result. Both values can be overridden at compile time (CFLAGS=-DLODE_FAR=4 ...).
 * Before its first row a matvec also prefetches the first LODE_STREAM_AHEAD bytes of each
 * stream: a decode token runs ~1,800 matvec chunks of 0.5-2 MB, and their starts cost: 2 %
 * faster on the 26B-A4B (scripts/ab-decode.sh, 6 rounds, every round ahead; #12). Tried
 * beside it, no gain: 2048 bytes ahead (0.997), a second prefetcht1 4 or 8 KiB ahead
 * (0.992, 0.961), the prologue 2048 bytes deep (1.003). */
/* 512 since the change to four streams (Zen 4 VM above: one core from DRAM, Q8_0 31.5 against
 * 28.2 GB/s at 1024, Q4_K and Q6_K alike; the decode A/B 1.07 against 1024 at 2 threads, 1.02 at 1; 256
 * within 1.3 % of 512). */
#ifndef LODE_STREAM_AHEAD
#define LODE_STREAM_AHEAD 512
#endif
/* The stream prefetch asks for L2, not L1 (prefetcht1, locality 2): on the Zen 4 VM the 26B-A4B
 * decoded 1.018x (2 threads, 5 rounds) and 1.027x (1 thread, 3 rounds) against prefetcht0
 * (scripts/ab-decode.sh; prefetcht2 1.009 / 1.020). The weights are read once. */
#ifndef LODE_PREFETCH_LOCALITY
#define LODE_PREFETCH_LOCALITY 2
#endif
#define LODE_PREFETCH_AHEAD(p, bytes)                                                       \
    do {                                                                                   \
        for (size_t o_ = 0; o_ < (bytes); o_ += 64)                                         \
            __builtin_prefetch((const char *)(p) + LODE_STREAM_AHEAD + o_, 0, LODE_PREFETCH_LOCALITY); \
    } while (0)
#define LODE_MATVEC_FAR(NAME, ROWS)                                                         \
    static inline int NAME(size_t n, const void *w, size_t stride, size_t nrows, const void *a, \
                           float *out) {                                                   \
        if (nrows < 2 * LODE_FAR) return 0;                                                \
        const size_t q = nrows / LODE_FAR;                                                 \
        /* the first LODE_STREAM_AHEAD bytes of every stream, which the ROWS kernel's own \
         * prefetch never covers: all streams' first misses in flight at once */           \
        for (int k = 0; k < LODE_FAR; ++k)                                                 \
            for (size_t o_ = 0; o_ < LODE_STREAM_AHEAD; o_ += 64)                          \
                __builtin_prefetch((const char *)w + k * q * stride + o_);                 \
        for (size_t r = 0; r < q; ++r) {                                                   \
            const void *rows[LODE_FAR];                                                    \
            float res[LODE_FAR];                                                           \
            for (int k = 0; k < LODE_FAR; ++k) rows[k] = (const char *)w + (r + k * q) * stride; \
            ROWS(n, rows, LODE_FAR, a, res);                                               \
            for (int k = 0; k < LODE_FAR; ++k) out[r + k * q] = res[k];                    \
        }                                                                                  \
        for (size_t r = LODE_FAR * q; r < nrows; ++r) {                                    \
            const void *row = (const char *)w + r * stride;                                \
            ROWS(n, &row, 1, a, &out[r]);                                                  \
        }                                                                                  \
        return 1;                                                                          \
    }

#define LODE_ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- batched gemm ---- */

/* One 256-block of llama.cpp's tiled K-quant arithmetic (see gemm_tiled_* in scalar.c):
 * r = (float)isum * d, minus dmin * (float)summs by one FMA when the type has mins, then
 * acc + r * dy by one FMA. fmaf is exact (one rounding) on every ISA. */
static inline float lode_tiled_step(int32_t isum, int32_t summs, float d, float dmin, int has_min,
                                    float dy, float acc) {
    float r = (float)isum * d;
    if (has_min) r = fmaf(-dmin, (float)summs, r);
    return fmaf(r, dy, acc);
}

/* A tiled-arithmetic gemm over NC activation columns at a time: BLK(x_block, y_blocks, nc,
 * isum, summs) fills the exact integers of one weight block against nc column blocks. */
#define LODE_GEMM_KTILED(W, ISA, BLOCK, BLK, HAS_MIN, DMIN, NC)                             \
    LODE_GEMM_KTILED_(W, ISA, BLOCK, BLK, HAS_MIN, DMIN, NC)
#define LODE_GEMM_KTILED_(W, ISA, BLOCK, BLK, HAS_MIN, DMIN, NC)                            \
    void gemm_tiled_##W##_q8k_##ISA(size_t n, const void *w, size_t w_row_stride,          \
                                    size_t nrows, const void *a, size_t a_row_stride,      \
                                    size_t ncols, float *out, size_t out_col_stride) {     \
        for (size_t c0 = 0; c0 < ncols; c0 += NC) {                                        \
            const int nc = ncols - c0 < NC ? (int)(ncols - c0) : NC;                       \
            const block_q8_K *cols[NC];                                                    \
            for (int c = 0; c < nc; ++c)                                                   \
                cols[c] = (const block_q8_K *)((const char *)a + (c0 + c) * a_row_stride); \
            for (size_t r = 0; r < nrows; ++r) {                                           \
                const BLOCK *x = (const BLOCK *)((const char *)w + r * w_row_stride);      \
                float acc[NC];                                                             \
                for (int c = 0; c < NC; ++c) acc[c] = 0.0f;                                \
                for (size_t i = 0; i < n / QK_K; ++i) {                                    \
                    int32_t is[NC], ms[NC];                                                \
                    const block_q8_K *ys[NC];                                              \
                    for (int c = 0; c < nc; ++c) ys[c] = cols[c] + i;                      \
                    if (nc == NC) BLK(&x[i], ys, NC, is, ms);                              \
                    else BLK(&x[i], ys, nc, is, ms);                                       \
                    const float d = lode_fp16_to_fp32(x[i].d);                             \
                    const float dmin = HAS_MIN ? lode_fp16_to_fp32(x[i].DMIN) : 0.0f; \
                    for (int c = 0; c < nc; ++c)                                           \
                        acc[c] = lode_tiled_step(is[c], ms[c], d, dmin, HAS_MIN, ys[c]->d, acc[c]); \
                }                                                                          \
                for (int c = 0; c < nc; ++c) out[(c0 + c) * out_col_stride + r] = acc[c]; \
            }                                                                              \
        }                                                                                  \
    }

#endif
