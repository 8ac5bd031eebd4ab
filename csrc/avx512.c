/* avx512.c: AVX-512 (F, BW, VL, DQ, VNNI) kernels, compiled alone with those flags.
 *
 * Same structure as avx2.c (a `*_cols` function per type, see LODE_GEMM_TILED). What
 * AVX-512 adds: K-quants unpack a 64-element chunk into one zmm and fold the sub-block scale
 * in with VNNI dpwssd (maddubs + madd + add in one); Q4_0, Q5_0 and Q8_0 take two blocks
 * per zmm through VNNI dpbusd (u8 x s8 -> i32, no saturation). Floats are always
 * accumulated in ggml's AVX2 order (8 lanes), which is what keeps llama.cpp parity.
 * Q4_1, Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS, MXFP4 and the quantizers are x86.h, the 256-bit
 * source avx2.c compiles too, here with 256-bit VNNI for its primitives.
 */
#include <immintrin.h>
#include <stdlib.h>

#include "common.h"
#include "kernels.h"

#define LODE_SUFFIX avx512

/* ---- the primitives x86.h builds on (see there), from AVX-512BW and VNNI ---- */

static inline __m256i bits_32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    /* AVX-512BW: a 32-bit mask straight to bytes */
    return _mm256_movm_epi8((__mmask32)x);
}

/* unsigned x signed bytes -> 8 i32 lanes of sums of 4 products, by VNNI dpbusd */
static inline __m256i dot_u8(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

/* acc + madd(a, b) in one VNNI dpwssd */
static inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_epi32(acc, a, b); }

/* ---- the float vector of x86.h's float kernels: __m512 ---- */

typedef __m512 vf;
typedef __m256i vhalf;
#define VF_LANES 16
#define VF(op) _mm512_##op
#define VF_CAST_PS _mm512_castsi512_ps
#define VF_FOLD256(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))

/* x86.h's tiled K-quant gemms become the leftovers of the VNNI one below */
#define X86_KTILED_NAME(W) X86_CAT(gemm_tiled8_##W##_q8k, LODE_SUFFIX)
#define X86_KTILED_LINK static

#include "x86.h"


/* ---- Q4_0 / Q5_0 / Q8_0 x Q8_0: two blocks per zmm, a 2-row x 4-column register tile ----
 * Integer work is 512-bit: the activation is made unsigned once per column, a = y + 128
 * (xor 0x80), so dpbusd(a, w) = dot(y, w) + 128 * sum(w); the 128 * sum(w) term depends on the
 * row only, so it is computed once per row (dpbusd of 0x80 bytes with w) and used, negated,
 * as the accumulator each pair's dpbusd starts from: an exact integer dot per 4 bytes.
 * Lanes 0..7 hold block i, lanes 8..15 block i+1, each lane the same 4 bytes as in ggml's
 * AVX2 mul_sum_i8_pairs_float. The float accumulation stays ggml's: one 8-lane accumulator,
 * acc = fma(dx*dy, p_i, acc) for block i, then for block i+1 (two dependent FMAs on the
 * halves), hsum at the end; so these kernels equal ggml_vec_dot_q*_0_q8_0 bit for bit.
 * An odd last block runs with the second block's weights zeroed and its FMA skipped.
 * Every (row, column) pair performs the same float operations whatever the tile shape, so
 * gemm equals vec_dot bit for bit. */

/* Two fp16 scales -> [f(h0) x 8 | f(h1) x 8]. */
static inline __m512 scale2(lode_half h0, lode_half h1) {
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | ((uint32_t)h1 << 16))));
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

/* [lo nibbles, hi nibbles] of two 16-byte nibble arrays: elements 0..31 of both blocks. */
static inline __m512i nibbles_64(const uint8_t *p0, const uint8_t *p1) {
    /* [p0 | p0 | p1 | p1] by 128-bit lanes, then words shifted right by 0 / 4 / 0 / 4 */
    const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p0))),
                                         _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p1)), 1);
    const __m512i sh = _mm512_setr_epi64(0, 0, 0x0004000400040004ll, 0x0004000400040004ll, 0, 0,
                                         0x0004000400040004ll, 0x0004000400040004ll);
    return _mm512_and_si512(_mm512_srlv_epi16(u, sh), _mm512_set1_epi8(0x0f));
}

/* The weights as unsigned bytes w + 8 / w + 16 / w + 128 (see Q8_0_ROWS), and signed. */
static inline __m512i unpacku2_q4_0(const block_q4_0 *x0, const block_q4_0 *x1) {
    return nibbles_64(x0->qs, x1->qs);
}
static inline __m512i unpack2_q4_0(const block_q4_0 *x0, const block_q4_0 *x1) {
    return _mm512_sub_epi8(unpacku2_q4_0(x0, x1), _mm512_set1_epi8(8));
}
/* Q5_0's fifth bits of both blocks, one per byte of nibbles_64's order. */
static inline __mmask64 q5_0_fifth_bits(const block_q5_0 *x0, const block_q5_0 *x1) {
    uint32_t h0, h1;
    memcpy(&h0, x0->qh, 4);
    memcpy(&h1, x1->qh, 4);
    return (uint64_t)h0 | ((uint64_t)h1 << 32);
}
/* nibble | bit << 4 */
static inline __m512i unpacku2_q5_0(const block_q5_0 *x0, const block_q5_0 *x1) {
    const __m512i q = nibbles_64(x0->qs, x1->qs);
    return _mm512_mask_add_epi8(q, q5_0_fifth_bits(x0, x1), q, _mm512_set1_epi8(0x10));
}
/* (nibble | bit << 4) - 16: OR 0xf0 into bytes whose fifth bit is clear. */
static inline __m512i unpack2_q5_0(const block_q5_0 *x0, const block_q5_0 *x1) {
    const __m512i q = nibbles_64(x0->qs, x1->qs);
    return _mm512_mask_blend_epi8(~q5_0_fifth_bits(x0, x1), q, _mm512_or_si512(q, _mm512_set1_epi8((char)0xf0)));
}
static inline __m512i unpack2_q8_0(const block_q8_0 *x0, const block_q8_0 *x1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x0->qs)),
                              _mm256_loadu_si256((const __m256i *)x1->qs), 1);
}
static inline __m512i unpacku2_q8_0(const block_q8_0 *x0, const block_q8_0 *x1) {
    return _mm512_xor_si512(unpack2_q8_0(x0, x1), _mm512_set1_epi8((char)0x80));
}

/* One block pair (i, i+1; x1/y1 alias x0/y0 and `two` is 0 for an odd last block) of an
 * NR x NC tile. */
#define Q8_0_PAIR(BLOCK, UNPACK, NR, NC)                                                    \
    do {                                                                                   \
        __m512i wq[2], ncorr[2];                                                           \
        __m512 dx[2];                                                                      \
        for (int r = 0; r < NR; ++r) {                                                     \
            const BLOCK *x0 = (const BLOCK *)vw[r] + i, *x1 = x0 + two;                    \
            wq[r] = _mm512_maskz_mov_epi8(two ? ~0ull : 0xffffffffull, UNPACK(x0, x1));     \
            ncorr[r] = _mm512_sub_epi32(_mm512_setzero_si512(),                            \
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), k80, wq[r])); \
            dx[r] = scale2(x0->d, x1->d);                                                  \
        }                                                                                  \
        for (int c = 0; c < NC; ++c) {                                                     \
            const block_q8_0 *y0 = (const block_q8_0 *)va[c] + i, *y1 = y0 + two;          \
            const __m512i a = _mm512_xor_si512(unpack2_q8_0(y0, y1), k80);                 \
            const __m512 dy = scale2(y0->d, y1->d);                                        \
            for (int r = 0; r < NR; ++r) {                                                 \
                const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(ncorr[r], a, wq[r])); \
                const __m512 d = _mm512_mul_ps(dx[r], dy);                                 \
                acc[c][r] = _mm256_fmadd_ps(_mm512_castps512_ps256(d), _mm512_castps512_ps256(p), acc[c][r]); \
                if (two)                                                                   \
                    acc[c][r] = _mm256_fmadd_ps(_mm512_extractf32x8_ps(d, 1), _mm512_extractf32x8_ps(p, 1), acc[c][r]); \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* NAME(n, w rows[NR], NR, a columns[NC], NC, res[NC][2]) */
#define Q8_0_TILE(NAME, BLOCK, UNPACK)                                                      \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *const *vw, int NR, const void *const *va, \
                                 int NC, float res[4][2]) {                                \
        const __m512i k80 = _mm512_set1_epi8((char)0x80);                                  \
        __m256 acc[4][2];                                                                  \
        for (int c = 0; c < NC; ++c)                                                       \
            for (int r = 0; r < NR; ++r) acc[c][r] = _mm256_setzero_ps();                  \
        const size_t nb = n / QK32;                                                        \
        size_t i = 0;                                                                      \
        for (; i + 2 <= nb; i += 2) {                                                      \
            const int two = 1;                                                             \
            Q8_0_PAIR(BLOCK, UNPACK, NR, NC);                                              \
        }                                                                                  \
        if (i < nb) {                                                                      \
            const int two = 0;                                                             \
            Q8_0_PAIR(BLOCK, UNPACK, NR, NC);                                              \
        }                                                                                  \
        for (int c = 0; c < NC; ++c)                                                       \
            for (int r = 0; r < NR; ++r) res[c][r] = hsum_ps(acc[c][r]);                   \
    }

/* Q8_0_ROWS' block I of every row pair (np pairs of rows xr[], accumulators acc[], the
 * offset bytes kofs and the column va: the names of Q8_0_ROWS' body). */
#define Q8_0_ROWS_BLOCK(BLOCK, UNPACKU, I)                                                  \
    do {                                                                                   \
        const block_q8_0 *y = (const block_q8_0 *)va + (I);                                \
        const __m512i yq = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)y->qs)); \
        const __m512i nofs = _mm512_sub_epi32(_mm512_setzero_si512(),                      \
                                              _mm512_dpbusd_epi32(_mm512_setzero_si512(), kofs, yq)); \
        const __m512 dy = _mm512_set1_ps(fp16(y->d));                                      \
        for (int p = 0; p < np; ++p) {                                                     \
            const BLOCK *x0 = xr[2 * p] + (I), *x1 = xr[2 * p + 1] + (I);                  \
            /* [dx0 * dy x 8 | dx1 * dy x 8]: ggml's product per row and block */          \
            const __m512 d = _mm512_mul_ps(scale2(x0->d, x1->d), dy);                      \
            const __m512 pr = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(nofs, UNPACKU(x0, x1), yq)); \
            acc[p] = _mm512_fmadd_ps(d, pr, acc[p]);                                       \
        }                                                                                  \
    } while (0)

/* Q8_0_TILE for one column over NR rows (LODE_MATVEC_FAR): per row the same float operations
 * and the same exact integer dot, reached more cheaply. A zmm holds one block of two rows (row
 * 2p in lanes 0..7, row 2p + 1 in lanes 8..15) against the column's block in both halves, so
 * each row's 8 lanes take one FMA per block in ggml's order with no lane moved. UNPACKU gives
 * the weights as unsigned bytes w + OFS (Q4_0 its nibbles, OFS 8; Q5_0 its five bits, 16; Q8_0
 * w xor 0x80, 128), so dpbusd(wu, y) = dot(w, y) + OFS * sum(y): the correction depends on the
 * column only and is computed once per block for all the rows (the tile above corrects per
 * row: with at most 2 rows and 4 columns that is the fewer dpbusd). An odd last row is paired
 * with itself (computed twice, stored once). */
#define Q8_0_ROWS(NAME, BLOCK, UNPACKU, OFS)                                                \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *const *vw, int nr, const void *va,  \
                                 float *res) {                                             \
        enum { P_ = (LODE_FAR + 1) / 2 };                                                  \
        const __m512i kofs = _mm512_set1_epi8((char)(OFS));                                \
        const int np = (nr + 1) / 2;                                                       \
        const BLOCK *xr[2 * P_];                                                           \
        for (int r = 0; r < 2 * np; ++r) xr[r] = (const BLOCK *)vw[r < nr ? r : nr - 1];   \
        __m512 acc[P_];                                                                    \
        for (int p = 0; p < np; ++p) acc[p] = _mm512_setzero_ps();                         \
        const size_t nb = n / QK32;                                                        \
        size_t i = 0;                                                                      \
        for (; i + 2 <= nb; i += 2) {                                                      \
            for (int r = 0; r < nr; ++r) LODE_PREFETCH_AHEAD(xr[r] + i, 2 * sizeof(BLOCK)); \
            Q8_0_ROWS_BLOCK(BLOCK, UNPACKU, i);                                            \
            Q8_0_ROWS_BLOCK(BLOCK, UNPACKU, i + 1);                                        \
        }                                                                                  \
        if (i < nb) Q8_0_ROWS_BLOCK(BLOCK, UNPACKU, i);                                    \
        for (int r = 0; r < nr; ++r)                                                       \
            res[r] = hsum_ps((r & 1) ? _mm512_extractf32x8_ps(acc[r / 2], 1) : _mm512_castps512_ps256(acc[r / 2])); \
    }                                                                                      \
    LODE_MATVEC_FAR(NAME##_far, NAME)

/* gemm2_<W>_q8_0: gemm over 2-row x 4-column tiles (gemm_<W>_q8_0_avx512 below hands it the
 * one-column case and the rows past a multiple of 4); vec_dot is the 1 x 1 tile. */
#define Q8_0_GEMM(W, TILE)                                                                  \
    static void gemm2_##W##_q8_0(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                 const void *a, size_t a_row_stride, size_t ncols,         \
                                 float *out, size_t out_col_stride) {                      \
        /* Matrix-vector products pair row r with row r + nrows/2: two independent FMA      \
         * chains (ggml's order allows one dependent FMA per block and row) in two far-apart \
         * sequential streams. Adjacent rows in flight instead ran from DRAM at 3-5 GB/s     \
         * (vs 10-18 one row at a time) on this Zen machine, a prefetch pathology; far rows  \
         * measured 1.2-1.6x one row from L2 and 1.1-2x from DRAM (csrc/test/kernel_bench.c). \
         * Each row's arithmetic is unchanged, so results equal vec_dot bit for bit. */       \
        if (ncols == 1 && nrows >= 2) {                                                    \
            const size_t half = nrows / 2;                                                 \
            for (size_t r = 0; r < half; ++r) {                                            \
                const void *rows[2] = {(const char *)w + r * w_row_stride,                 \
                                       (const char *)w + (r + half) * w_row_stride};       \
                float res[4][2];                                                           \
                TILE(n, rows, 2, &a, 1, res);                                              \
                out[r] = res[0][0];                                                        \
                out[r + half] = res[0][1];                                                 \
            }                                                                              \
            if (nrows & 1) {                                                               \
                const void *last = (const char *)w + (nrows - 1) * w_row_stride;           \
                float res[4][2];                                                           \
                TILE(n, &last, 1, &a, 1, res);                                             \
                out[nrows - 1] = res[0][0];                                                \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        const size_t nr_max = 2;                                                           \
        for (size_t c0 = 0; c0 < ncols; c0 += 4) {                                         \
            const int nc = ncols - c0 < 4 ? (int)(ncols - c0) : 4;                         \
            const void *cols[4];                                                           \
            for (int c = 0; c < nc; ++c) cols[c] = (const char *)a + (c0 + c) * a_row_stride; \
            for (size_t r0 = 0; r0 < nrows; r0 += nr_max) {                                \
                const int nr = nrows - r0 < nr_max ? 1 : (int)nr_max;                      \
                const void *rows[2] = {(const char *)w + r0 * w_row_stride,                \
                                       (const char *)w + (r0 + nr - 1) * w_row_stride};    \
                float res[4][2];                                                           \
                switch (nc * 2 + nr - 1) {                                                 \
                case 8: TILE(n, rows, 1, cols, 4, res); break;                             \
                case 9: TILE(n, rows, 2, cols, 4, res); break;                             \
                case 6: TILE(n, rows, 1, cols, 3, res); break;                             \
                case 7: TILE(n, rows, 2, cols, 3, res); break;                             \
                case 4: TILE(n, rows, 1, cols, 2, res); break;                             \
                case 5: TILE(n, rows, 2, cols, 2, res); break;                             \
                case 3: TILE(n, rows, 2, cols, 1, res); break;                             \
                default: TILE(n, rows, 1, cols, 1, res); break;                            \
                }                                                                          \
                for (int c = 0; c < nc; ++c)                                               \
                    for (int r = 0; r < nr; ++r) out[(c0 + c) * out_col_stride + r0 + r] = res[c][r]; \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    float vec_dot_##W##_q8_0_avx512(size_t n, const void *w, const void *a) {              \
        float res[4][2];                                                                   \
        TILE(n, &w, 1, &a, 1, res);                                                        \
        return res[0][0];                                                                  \
    }

Q8_0_TILE(q4_0_tile, block_q4_0, unpack2_q4_0)
Q8_0_ROWS(q4_0_rows, block_q4_0, unpacku2_q4_0, 8)
Q8_0_GEMM(q4_0, q4_0_tile)

Q8_0_TILE(q5_0_tile, block_q5_0, unpack2_q5_0)
Q8_0_ROWS(q5_0_rows, block_q5_0, unpacku2_q5_0, 16)
Q8_0_GEMM(q5_0, q5_0_tile)

Q8_0_TILE(q8_0_tile, block_q8_0, unpack2_q8_0)
Q8_0_ROWS(q8_0_rows, block_q8_0, unpacku2_q8_0, 128)
Q8_0_GEMM(q8_0, q8_0_tile)

/* ---- Q4_K / Q5_K / Q6_K x Q8_K: the block unpacking and integer dot of x86.h's K-quant
 * kernels (which do the scales, mins and float order). Integer lanes l and l + 8 of a block
 * sum hold the same bytes 4l..4l+3 of two 32-element chunks; added (exactly, fold8) they are
 * lane l of ggml's AVX2 sum, so the float accumulation (8 lanes, one FMA per block, hsum at
 * the end) is ggml_vec_dot_q*_K_q8_K's bit for bit. llama.cpp's x86 build has no 512-bit
 * K-quant dot, so this is its arithmetic. ---- */
static inline __m256i fold8(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* Two vectors of i32 lane sums that fit an i16 as the low and high words of one i32, for a
 * madd / dpwssd by (scale, scale) pairs: (hi << sh) | (lo & 0xffff) (ternary logic 0xf8 is
 * a | (b & c)). sh is 16, or 12 when hi holds 16 times its integers (low 16 bits then zero). */
static inline __m512i words2(__m512i lo, __m512i hi, int sh) {
    return _mm512_ternarylogic_epi32(_mm512_slli_epi32(hi, sh), lo, _mm512_set1_epi32(0xffff), 0xf8);
}

/* Q4_K / Q5_K: chunk j (64 elements) in one zmm: low nibbles of qs[32j..] = sub-block 2j in
 * the lower 256 bits, high nibbles = sub-block 2j+1 in the upper, matching y->qs[64j..64j+64];
 * two chunks come from one 64-byte load and two 128-bit-lane shuffles. The scales (moved over
 * whole by scales_mins_k4) are spread per chunk with permutexvar. `five` ORs in the Q5_K
 * fifth bit (qh bit 2j / 2j+1, by a byte test). */
typedef __m512i kq45_vec;
#define KQ45_VECS 4
LODE_ALWAYS_INLINE void kq45_unpack(const uint8_t *qs, const uint8_t *qh, int five, __m256i sm16, __m512i q[4],
                                    __m512i sc[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int h = 0; h < 2; ++h) {
        const __m512i b = _mm512_loadu_si512((const void *)(qs + 64 * h));
        const __m512i lo = _mm512_and_si512(b, m4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);
        q[2 * h] = _mm512_shuffle_i64x2(lo, hi, 0x44);
        q[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, 0xee);
    }
    if (five) {
        const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
        for (int j = 0; j < 4; ++j) {
            const __m512i hsel = _mm512_inserti64x4(_mm512_set1_epi8((char)(1u << (2 * j))),
                                                    _mm256_set1_epi8((char)(2u << (2 * j))), 1);
            q[j] = _mm512_mask_or_epi32(q[j], 0xffff, q[j],
                                        _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(hb, hsel), _mm512_set1_epi8(0x10)));
        }
    }
    for (int j = 0; j < 4; ++j) {
        const __m512i sidx = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)), 1);
        sc[j] = _mm512_permutexvar_epi16(sidx, _mm512_castsi256_si512(sm16));
    }
}
/* VNNI dpwssd folds the scale in (maddubs + madd + add in one) */
LODE_ALWAYS_INLINE __m256i kq45_dot(const __m512i q[4], const __m512i sc[4], const block_q8_K *y) {
    __m512i sumi = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
        const __m512i qy = _mm512_loadu_si512((const void *)(y->qs + 64 * j));
        sumi = _mm512_dpwssd_epi32(sumi, sc[j], _mm512_maddubs_epi16(q[j], qy));
    }
    return fold8(sumi);
}

/* The matvec's (KQ45_ROWS') pieces: one column against many rows, so the column's block is
 * put in the order of the unshuffled nibbles once (zmm j = sub-blocks KQ45_NIB_A(j) in the lower
 * 256 bits, KQ45_NIB_A(j) + 2 in the upper: the low and high nibbles of one 64-byte load of qs),
 * and each row's block needs no lane shuffle. Every i32 lane l still sums bytes 4l..4l+3 of
 * each sub-block times its scale, so after fold8 the 8 lanes hold kq45_dot's integers. */
#define KQ45_NIB_A(j) (4 * ((j) / 2) + ((j) % 2))
typedef struct { __m512i v[4]; } kq45_col;
LODE_ALWAYS_INLINE void kq45_col_load(const block_q8_K *y, kq45_col *c) {
    for (int h = 0; h < 2; ++h) {
        const __m512i a = _mm512_loadu_si512((const void *)(y->qs + 128 * h));
        const __m512i b = _mm512_loadu_si512((const void *)(y->qs + 128 * h + 64));
        c->v[2 * h] = _mm512_shuffle_i64x2(a, b, 0x44);     /* sub-blocks 4h | 4h + 2 */
        c->v[2 * h + 1] = _mm512_shuffle_i64x2(a, b, 0xee); /* 4h + 1 | 4h + 3 */
    }
}
LODE_ALWAYS_INLINE void kq45_unpack_nib(const uint8_t *qs, const uint8_t *qh, int five, __m256i sm16,
                                        __m512i q[4], __m512i sc[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int h = 0; h < 2; ++h) {
        const __m512i b = _mm512_loadu_si512((const void *)(qs + 64 * h));
        q[2 * h] = _mm512_and_si512(b, m4);
        /* Q4_K keeps the high nibbles in place (16 q, no shift; kq45_dot_col shifts 4 less) */
        q[2 * h + 1] = five ? _mm512_and_si512(_mm512_srli_epi16(b, 4), m4) : _mm512_andnot_si512(m4, b);
    }
    if (five) {
        const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
        for (int j = 0; j < 4; ++j) {
            const __m512i hsel = _mm512_inserti64x4(_mm512_set1_epi8((char)(1u << KQ45_NIB_A(j))),
                                                    _mm256_set1_epi8((char)(4u << KQ45_NIB_A(j))), 1);
            q[j] = _mm512_or_si512(q[j], _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(hb, hsel), _mm512_set1_epi8(0x10)));
        }
    }
    /* sc[0] / sc[1]: i32 lanes of scale pairs (sub-blocks 0 1 | 2 3, 4 5 | 6 7) for
     * kq45_dot_col; dword k of sm16 is (scale 2k, scale 2k + 1). sc[2], sc[3] stay unused. */
    sc[0] = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                     _mm512_castsi256_si512(sm16));
    sc[1] = _mm512_permutexvar_epi32(_mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
                                     _mm512_castsi256_si512(sm16));
}
/* dpbusd per chunk (i32 lanes of 4 products: |sum| <= 4 * 31 * 128, an i16), two chunks' lanes
 * as the two words of one i32 (the chunk of sub-blocks 2k | 2k + 2 low, 2k + 1 | 2k + 3 high),
 * then madd / dpwssd by the scale pairs: every lane sums the same products as kq45_dot's.
 * Q4_K's high chunks hold 16 q (kq45_unpack_nib), so their sums are 16 times the integer and
 * go to the high word by a shift of 12: the low 16 bits of 16 s << 12 are zero. */
LODE_ALWAYS_INLINE __m256i kq45_dot_col(const __m512i q[4], const __m512i sc[4], const kq45_col *c, int five) {
    const __m512i z = _mm512_setzero_si512();
    const int sh = five ? 16 : 12;
    __m512i s[4];
    for (int j = 0; j < 4; ++j) s[j] = _mm512_dpbusd_epi32(z, q[j], c->v[j]);
    return fold8(_mm512_dpwssd_epi32(_mm512_madd_epi16(words2(s[0], s[1], sh), sc[0]), words2(s[2], s[3], sh), sc[1]));
}

/* Q6_K: per 128-element half, ql[64k..64k+64] is one zmm (elements 0..31 | 32..63 from the
 * low nibbles, 64..95 | 96..127 from the high ones); qh is broadcast to both halves and
 * shifted per half with srlv. Each zmm spans 4 sub-blocks of 16; their i16 scales (sc16) are
 * spread with permutexvar as the (scale, scale) pairs q6k_dot multiplies word pairs by (two
 * vectors: sc[2], sc[3] stay unused). */
typedef __m512i q6k_vec;
#define Q6K_VECS 4
LODE_ALWAYS_INLINE void q6k_unpack(const block_q6_K *x, __m256i sc16, __m512i q[4], __m512i sc[4]) {
    /* the two qh bits of shift s (0, 2 | 4, 6) go to bits 4..5 of each byte by one shift:
     * left 4 - s (4 | 2) or right s - 4 (0 | 2), then masked with 0x30 */
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    for (int k = 0; k < 2; ++k) {
        const __m512i l = _mm512_loadu_si512((const void *)(x->ql + 64 * k));
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * k)));
        /* (l & 0x0f) | hb: ternary logic 0xf8 is a | (b & c) with a = hb */
        q[2 * k] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_sllv_epi16(h, sh01), m30), l, m4, 0xf8);
        q[2 * k + 1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srlv_epi16(h, sh23), m30),
                                                 _mm512_srli_epi16(l, 4), m4, 0xf8);
    }
    /* sc[h]: i32 lanes of scale pairs for q6k_dot's word pairs: i32 lane l of zmm 2h (low
     * word) and 2h + 1 (high word) span sub-blocks 8h + l/4 and 8h + 4 + l/4 */
    for (int h = 0; h < 2; ++h) {
        const __m512i idx = _mm512_set_epi16(
            8 * h + 7, 8 * h + 3, 8 * h + 7, 8 * h + 3, 8 * h + 7, 8 * h + 3, 8 * h + 7, 8 * h + 3,
            8 * h + 6, 8 * h + 2, 8 * h + 6, 8 * h + 2, 8 * h + 6, 8 * h + 2, 8 * h + 6, 8 * h + 2,
            8 * h + 5, 8 * h + 1, 8 * h + 5, 8 * h + 1, 8 * h + 5, 8 * h + 1, 8 * h + 5, 8 * h + 1,
            8 * h + 4, 8 * h + 0, 8 * h + 4, 8 * h + 0, 8 * h + 4, 8 * h + 0, 8 * h + 4, 8 * h + 0);
        sc[h] = _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(sc16));
    }
}
/* dpbusd per zmm (i32 lanes of 4 products: |sum| <= 4 * 63 * 128, an i16), two zmm's lanes as
 * the two words of one i32, then dpwssd by the scale pairs: every lane sums the products it
 * summed as maddubs + dpwssd (exact integers, so the order does not matter) */
LODE_ALWAYS_INLINE __m256i q6k_dot(const __m512i q[4], const __m512i sc[4], const block_q8_K *y, __m256i off) {
    const __m512i z = _mm512_setzero_si512();
    __m512i s[4];
    for (int m = 0; m < 4; ++m)
        s[m] = _mm512_dpbusd_epi32(z, q[m], _mm512_loadu_si512((const void *)(y->qs + 64 * m)));
    const __m512i acc = _mm512_sub_epi32(z, _mm512_zextsi256_si512(off));
    return fold8(_mm512_dpwssd_epi32(_mm512_dpwssd_epi32(acc, words2(s[0], s[1], 16), sc[0]), words2(s[2], s[3], 16), sc[1]));
}

X86_K_QUANT_KERNELS()

/* ---- Q4_K / Q5_K x Q8_K tiled gemm as VNNI outer products (the layout of llama.cpp's
 * ggml-cpu/tiled VNNI micro kernel) ----
 * x86.h's tiled kernel reduces each (row, column) block product across lanes: two multiplies
 * (maddubs, dpwssd) per 64 products and a horizontal sum per block. Here one zmm holds 16
 * columns instead: the activations of 16 columns are interleaved 4 bytes at a time
 * (vt_act), and 4 unsigned weight codes of one row, broadcast, meet them in one dpbusd (64
 * products, no reduction). Per 8-row band and 32-element sub-block, 8 such sums are scaled
 * (mullo) into the block integer isum; the mins term summs comes from the per-sub-block
 * activation sums by dpwssd. Both integers are exact, so the float steps after them (those
 * of LODE_GEMM_KTILED: mul, fma, fma, one rounding each) give the scalar kernel's bits.
 * Rows past the last band of 8 go through x86.h's kernel (gemm_tiled8_*). */
#define VT_ROWS 8
#define VT_COLS 16
/* column groups whose activations are interleaved at once (each band's codes serve them all) */
#define VT_GROUPS 4

/* Activation codes of 16 columns interleaved 4 bytes at a time: dst[(b * groups + g) * 64 +
 * 4c ..] = the 4 bytes at qs0 + c * stride + b * bstride + 4g (qs0: the first column's first
 * block's codes), one masked gather each; columns past nc are zero. */
static void vt_gather_codes(const int8_t *qs0, size_t stride, size_t nc, size_t nb, size_t bstride,
                            size_t groups, int8_t *dst) {
    const __mmask16 cols = (__mmask16)((1u << nc) - 1);
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)stride));
    for (size_t b = 0; b < nb; ++b)
        for (size_t g = 0; g < groups; ++g)
            _mm512_store_si512((void *)(dst + (b * groups + g) * VT_COLS * 4),
                               _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), cols, idx,
                                                           qs0 + b * bstride + 4 * g, 1));
}

/* One 16-column group of Q8_K activations, interleaved: q[g][c][4] = column c's bytes
 * 4g..4g+3; bs[b][p][c] = column c's sums of two neighbouring sub-blocks of block b as two
 * i16 (pairs = 4: the 32-element sub-blocks 2p, 2p+1 of Q4_K/Q5_K, each the sum of two
 * bsums; pairs = 8: bsums 2p, 2p+1 themselves, Q6_K's 16-element sub-blocks); d[b][c] =
 * column c's block scale. Columns past ncols are zero. */
typedef struct { int8_t *q; int32_t *bs; float *d; } vt_act;

#define VT_MAX_PAIRS 8
static size_t vt_act_bytes(size_t n) { return n * VT_COLS + n / QK_K * (VT_MAX_PAIRS + 1) * VT_COLS * 4; }

static vt_act vt_interleave(size_t n, const void *a, size_t a_row_stride, size_t nc, int pairs, uint8_t *mem) {
    const size_t nb = n / QK_K;
    vt_act v = {(int8_t *)mem, (int32_t *)(mem + n * VT_COLS), NULL};
    v.d = (float *)(v.bs + nb * pairs * VT_COLS);
    memset(v.bs, 0, nb * (pairs + 1) * VT_COLS * 4);
    vt_gather_codes(((const block_q8_K *)a)->qs, a_row_stride, nc, nb, sizeof(block_q8_K), QK_K / 4, v.q);
    for (size_t c = 0; c < nc; ++c) {
        const block_q8_K *y = (const block_q8_K *)((const char *)a + c * a_row_stride);
        for (size_t b = 0; b < nb; ++b) {
            for (int p = 0; p < pairs; ++p) {
                int32_t s0, s1;
                if (pairs == 8) {
                    s0 = y[b].bsums[2 * p];
                    s1 = y[b].bsums[2 * p + 1];
                } else {
                    s0 = y[b].bsums[4 * p] + y[b].bsums[4 * p + 1];
                    s1 = y[b].bsums[4 * p + 2] + y[b].bsums[4 * p + 3];
                }
                v.bs[(b * pairs + p) * VT_COLS + c] = (int32_t)(((uint32_t)s1 << 16) | (uint16_t)s0);
            }
            v.d[b * VT_COLS + c] = y[b].d;
        }
    }
    return v;
}

/* One weight block of a band row: 256 codes in element order, the 8 sub-block scales, the
 * mins in i16 pairs (sub-blocks 2p, 2p+1), d and dmin. */
typedef struct {
    uint8_t q[QK_K];
    int32_t sc[8];
    int32_t mp[4];
    float d, dmin;
} __attribute__((aligned(64))) vt_wblock;

LODE_ALWAYS_INLINE void vt_unpack(const uint8_t *qs, const uint8_t *qh, int five, const uint8_t *scales,
                                  lode_half d, lode_half dmin, vt_wblock *o) {
    uint8_t sm[16];
    lode_unpack_scales_mins_k4(scales, sm);
    __m512i q[4], sc[4];
    kq45_unpack(qs, qh, five, _mm256_setzero_si256(), q, sc);
    for (int j = 0; j < 4; ++j) _mm512_store_si512((void *)(o->q + 64 * j), q[j]);
    for (int s = 0; s < 8; ++s) o->sc[s] = sm[s];
    for (int p = 0; p < 4; ++p) o->mp[p] = (int32_t)(((uint32_t)sm[9 + 2 * p] << 16) | sm[8 + 2 * p]);
    o->d = fp16(d);
    o->dmin = fp16(dmin);
}

/* 8 rows x one 16-column group over all nb blocks; w[b * 8 + t]: row t's block b. */
LODE_ALWAYS_INLINE void vt_band(size_t nb, const vt_wblock *w, vt_act y, __m512 acc[VT_ROWS]) {
    for (int t = 0; t < VT_ROWS; ++t) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
        const vt_wblock *x = w + b * VT_ROWS;
        __m512i s1[VT_ROWS];
        for (int t = 0; t < VT_ROWS; ++t) s1[t] = _mm512_setzero_si512();
        for (int s = 0; s < 8; ++s) {
            __m512i raw[VT_ROWS];
            for (int t = 0; t < VT_ROWS; ++t) raw[t] = _mm512_setzero_si512();
            for (int g = 0; g < 8; ++g) {
                const __m512i yc = _mm512_load_si512((const void *)(y.q + ((b * 64 + s * 8 + g) * VT_COLS) * 4));
                for (int t = 0; t < VT_ROWS; ++t) {
                    int32_t u4;
                    memcpy(&u4, x[t].q + 32 * s + 4 * g, 4);
                    raw[t] = _mm512_dpbusd_epi32(raw[t], _mm512_set1_epi32(u4), yc);
                }
            }
            for (int t = 0; t < VT_ROWS; ++t)
                s1[t] = _mm512_add_epi32(s1[t], _mm512_mullo_epi32(raw[t], _mm512_set1_epi32(x[t].sc[s])));
        }
        const __m512 dy = _mm512_load_ps(y.d + b * VT_COLS);
        for (int t = 0; t < VT_ROWS; ++t) {
            __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(s1[t]), _mm512_set1_ps(x[t].d));
            __m512i s2 = _mm512_setzero_si512();
            for (int p = 0; p < 4; ++p)
                s2 = _mm512_dpwssd_epi32(s2, _mm512_load_si512((const void *)(y.bs + (b * 4 + p) * VT_COLS)),
                                         _mm512_set1_epi32(x[t].mp[p]));
            r = _mm512_fmadd_ps(_mm512_set1_ps(-x[t].dmin), _mm512_cvtepi32_ps(s2), r);
            acc[t] = _mm512_fmadd_ps(r, dy, acc[t]);
        }
    }
}

/* Scratch of one thread, kept between calls (the gemm runs on long-lived pool threads). */
static __thread uint8_t *vt_mem;
static __thread size_t vt_cap;
static uint8_t *vt_scratch(size_t bytes) {
    if (bytes > vt_cap) {
        free(vt_mem);
        vt_cap = (bytes + 4095) & ~(size_t)4095;
        vt_mem = aligned_alloc(64, vt_cap);
        if (!vt_mem) vt_cap = 0;
    }
    return vt_mem;
}

/* Q6_K: one weight block of a band row, 256 unsigned codes (0..63) in element order, the 16
 * sub-block scales, the scales in i16 pairs (sub-blocks 2p, 2p+1) and d. The -32 offset
 * of the codes goes through the activation bsums: isum = sum_s sc_s * (q_s . y_s) - 32 *
 * sum_s sc_s * bsum_s, exact, the integer of the scalar kernel. */
typedef struct {
    uint8_t q[QK_K];
    int32_t sc[16];
    int32_t sp[8];
    float d;
} __attribute__((aligned(64))) vt6_wblock;

LODE_ALWAYS_INLINE void vt_unpack_q6k(const block_q6_K *x, vt6_wblock *o) {
    __m512i q[4], sc[4];
    q6k_unpack(x, q6k_scales16(x), q, sc);
    for (int j = 0; j < 4; ++j) _mm512_store_si512((void *)(o->q + 64 * j), q[j]);
    for (int s = 0; s < 16; ++s) o->sc[s] = x->scales[s];
    for (int p = 0; p < 8; ++p)
        o->sp[p] = (int32_t)(((uint32_t)(uint16_t)x->scales[2 * p + 1] << 16) | (uint16_t)x->scales[2 * p]);
    o->d = fp16(x->d);
}

/* vt_band for Q6_K (16-element sub-blocks: 4 dpbusd each). */
LODE_ALWAYS_INLINE void vt_band_q6k(size_t nb, const vt6_wblock *w, vt_act y, __m512 acc[VT_ROWS]) {
    for (int t = 0; t < VT_ROWS; ++t) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
        const vt6_wblock *x = w + b * VT_ROWS;
        __m512i s1[VT_ROWS];
        for (int t = 0; t < VT_ROWS; ++t) s1[t] = _mm512_setzero_si512();
        for (int s = 0; s < 16; ++s) {
            __m512i raw[VT_ROWS];
            for (int t = 0; t < VT_ROWS; ++t) raw[t] = _mm512_setzero_si512();
            for (int g = 0; g < 4; ++g) {
                const __m512i yc = _mm512_load_si512((const void *)(y.q + ((b * 64 + s * 4 + g) * VT_COLS) * 4));
                for (int t = 0; t < VT_ROWS; ++t) {
                    int32_t u4;
                    memcpy(&u4, x[t].q + 16 * s + 4 * g, 4);
                    raw[t] = _mm512_dpbusd_epi32(raw[t], _mm512_set1_epi32(u4), yc);
                }
            }
            for (int t = 0; t < VT_ROWS; ++t)
                s1[t] = _mm512_add_epi32(s1[t], _mm512_mullo_epi32(raw[t], _mm512_set1_epi32(x[t].sc[s])));
        }
        const __m512 dy = _mm512_load_ps(y.d + b * VT_COLS);
        for (int t = 0; t < VT_ROWS; ++t) {
            __m512i s2 = _mm512_setzero_si512();
            for (int p = 0; p < 8; ++p)
                s2 = _mm512_dpwssd_epi32(s2, _mm512_load_si512((const void *)(y.bs + (b * 8 + p) * VT_COLS)),
                                         _mm512_set1_epi32(x[t].sp[p]));
            const __m512i is = _mm512_sub_epi32(s1[t], _mm512_slli_epi32(s2, 5));
            const __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(x[t].d));
            acc[t] = _mm512_fmadd_ps(r, dy, acc[t]);
        }
    }
}

LODE_ALWAYS_INLINE void vt_unpack_q4k(const block_q4_K *x, vt_wblock *o) {
    vt_unpack(x->qs, NULL, 0, x->scales, x->d, x->dmin, o);
}
LODE_ALWAYS_INLINE void vt_unpack_q5k(const block_q5_K *x, vt_wblock *o) {
    vt_unpack(x->qs, x->qh, 1, x->scales, x->d, x->dmin, o);
}

/* The gemm of one type: BLOCK its block, WB its unpacked band block (UNPACK fills one),
 * BAND the 8-row x 16-column product, PAIRS the activation bsum pairs it reads. */
#define VT_GEMM(W, BLOCK, WB, UNPACK, BAND, PAIRS)                                          \
    void gemm_tiled_##W##_q8k_avx512(size_t n, const void *w, size_t w_row_stride,         \
                                     size_t nrows, const void *a, size_t a_row_stride,     \
                                     size_t ncols, float *out, size_t out_col_stride) {    \
        const size_t nb = n / QK_K, bands = nrows / VT_ROWS;                               \
        const size_t act = (vt_act_bytes(n) + 63) & ~(size_t)63;                           \
        uint8_t *mem = bands ? vt_scratch(VT_GROUPS * act + nb * VT_ROWS * sizeof(WB)) : NULL; \
        if (!mem) {                                                                        \
            gemm_tiled8_##W##_q8k_avx512(n, w, w_row_stride, nrows, a, a_row_stride, ncols, \
                                         out, out_col_stride);                             \
            return;                                                                        \
        }                                                                                  \
        WB *wb = (WB *)(mem + VT_GROUPS * act);                                            \
        for (size_t c0 = 0; c0 < ncols; c0 += VT_GROUPS * VT_COLS) {                       \
            vt_act y[VT_GROUPS];                                                           \
            size_t groups = 0;                                                             \
            for (size_t c = c0; c < ncols && groups < VT_GROUPS; c += VT_COLS, ++groups) { \
                const size_t nc = ncols - c < VT_COLS ? ncols - c : VT_COLS;               \
                y[groups] = vt_interleave(n, (const char *)a + c * a_row_stride, a_row_stride, nc, \
                                          PAIRS, mem + groups * act);                      \
            }                                                                              \
            for (size_t band = 0; band < bands; ++band) {                                  \
                const size_t r0 = band * VT_ROWS;                                          \
                for (int t = 0; t < VT_ROWS; ++t) {                                        \
                    const BLOCK *x = (const BLOCK *)((const char *)w + (r0 + t) * w_row_stride); \
                    for (size_t b = 0; b < nb; ++b) UNPACK(&x[b], &wb[b * VT_ROWS + t]);   \
                }                                                                          \
                for (size_t g = 0; g < groups; ++g) {                                      \
                    __m512 acc[VT_ROWS];                                                   \
                    BAND(nb, wb, y[g], acc);                                               \
                    const size_t cg = c0 + g * VT_COLS;                                    \
                    const size_t nc = ncols - cg < VT_COLS ? ncols - cg : VT_COLS;         \
                    for (int t = 0; t < VT_ROWS; ++t) {                                    \
                        float res[VT_COLS];                                                \
                        _mm512_storeu_ps(res, acc[t]);                                     \
                        for (size_t c = 0; c < nc; ++c) out[(cg + c) * out_col_stride + r0 + t] = res[c]; \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (bands * VT_ROWS < nrows)                                                       \
            gemm_tiled8_##W##_q8k_avx512(n, (const char *)w + bands * VT_ROWS * w_row_stride, \
                                         w_row_stride, nrows - bands * VT_ROWS, a, a_row_stride, \
                                         ncols, out + bands * VT_ROWS, out_col_stride);    \
    }

VT_GEMM(q4k, block_q4_K, vt_wblock, vt_unpack_q4k, vt_band, 4)
VT_GEMM(q5k, block_q5_K, vt_wblock, vt_unpack_q5k, vt_band, 4)
VT_GEMM(q6k, block_q6_K, vt6_wblock, vt_unpack_q6k, vt_band_q6k, 8)

/* gemm_<W>_q8_0_avx512: 4 weight rows x up to 8 columns per pass for the 32-element types, so a
 * weight block is unpacked once per 8 columns and an activation block loaded once per 4
 * rows. Rows r, r+1 share one zmm (lanes 0..7 | 8..15), each half computing exactly
 * Q8_0_COLS's 8-lane column arithmetic: |x| by dpbusd against y negated where x < 0 (what
 * dot_i8's sign trick gives), fmadd(dx*dy, lanes, acc), hsum_ps of each half. So every output
 * equals vec_dot bit for bit; one column (decode) and the rows beyond a multiple of 4 go
 * through gemm2_<W>_q8_0. */

LODE_ALWAYS_INLINE __m512i pair256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
LODE_ALWAYS_INLINE __m512 pair_ps(float lo, float hi) {
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

/* Four rows' block i as the column loop uses it: rows 0|1 and 2|3 paired per zmm, their
 * |x|, sign masks and scales. */
typedef struct {
    __m512i aa, ab;
    __m512 da, db;
    __mmask64 ma, mb;
} gemm4_blk;

LODE_ALWAYS_INLINE void gemm4_block_math(const gemm4_blk *b, const block_q8_0 *const *cols,
                                         size_t i, int NC, __m512 acc[8][2]) {
    const __m512i zero = _mm512_setzero_si512();
    for (int c = 0; c < NC; ++c) {
        const block_q8_0 *y = cols[c] + i;
        const __m512i qy = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)y->qs));
        const __m512 dy = _mm512_set1_ps(fp16(y->d));
        const __m512i ya = _mm512_mask_sub_epi8(qy, b->ma, zero, qy);
        const __m512i yb = _mm512_mask_sub_epi8(qy, b->mb, zero, qy);
        const __m512 pa = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, b->aa, ya));
        const __m512 pb = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, b->ab, yb));
        acc[c][0] = _mm512_fmadd_ps(_mm512_mul_ps(b->da, dy), pa, acc[c][0]);
        acc[c][1] = _mm512_fmadd_ps(_mm512_mul_ps(b->db, dy), pb, acc[c][1]);
    }
}

LODE_ALWAYS_INLINE void gemm4_store(__m512 acc[8][2], int NC, float *out, size_t ocs) {
    for (int c = 0; c < NC; ++c)
        for (int h = 0; h < 2; ++h) {
            out[c * ocs + 2 * h] = hsum_ps(_mm512_castps512_ps256(acc[c][h]));
            out[c * ocs + 2 * h + 1] = hsum_ps(_mm512_extractf32x8_ps(acc[c][h], 1));
        }
}
/* gemm4_store for four rows anywhere: row k of the tile goes to out[c * ocs + ro[k]] */
LODE_ALWAYS_INLINE void gemm4_store_rows(__m512 acc[8][2], int NC, float *out, size_t ocs,
                                         const size_t ro[4]) {
    for (int c = 0; c < NC; ++c)
        for (int h = 0; h < 2; ++h) {
            out[c * ocs + ro[2 * h]] = hsum_ps(_mm512_castps512_ps256(acc[c][h]));
            out[c * ocs + ro[2 * h + 1]] = hsum_ps(_mm512_extractf32x8_ps(acc[c][h], 1));
        }
}

/* A few columns (a decode batch of 2..8 sequences): the per-column work per block is what
 * dominates, so it is trimmed while every lane keeps the same integer and the same float
 * steps. Weight codes go in offset to unsigned (x ^ 0x80 = x + 128) and each dpbusd starts
 * from -128 * (the lane's four activation codes): lane = sum(x*y) exactly, the integer the
 * sign trick above gives (activation codes are never -128). The offsets and the activation
 * scales are computed once per call, not once per 4 weight rows. */
#define GEMM4_FEW_COLS 8
#define GEMM4_AHEAD 16
#define GEMM4_FEW_BLOCKS 128
#define GEMM4_FAR_MIN_ROWS 64
typedef struct {
    __m256i off[GEMM4_FEW_COLS][GEMM4_FEW_BLOCKS]; /* -128 * lane sums of the codes */
    float dy[GEMM4_FEW_COLS][GEMM4_FEW_BLOCKS];
    const block_q8_0 *cols[GEMM4_FEW_COLS];
} gemm4_few;

typedef struct {
    __m512i ua, ub; /* rows 0|1 and 2|3, codes + 128 */
    __m512 da, db;
} gemm4_ublk;

static void gemm4_few_prepare(const void *a, size_t a_row_stride, size_t ncols, size_t nb,
                              gemm4_few *f) {
    const __m256i m128 = _mm256_set1_epi8((char)0x80);
    for (size_t c = 0; c < ncols; ++c) {
        const block_q8_0 *y = (const block_q8_0 *)((const char *)a + c * a_row_stride);
        f->cols[c] = y;
        for (size_t i = 0; i < nb; ++i) {
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
            f->off[c][i] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), m128, qy));
            f->dy[c][i] = fp16(y[i].d);
        }
    }
}

LODE_ALWAYS_INLINE void gemm4_few_math(const gemm4_ublk *b, const gemm4_few *f, size_t i,
                                       int NC, __m512 acc[8][2]) {
    for (int c = 0; c < NC; ++c) {
        const __m512i qy = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)f->cols[c][i].qs));
        const __m512i off = _mm512_broadcast_i64x4(f->off[c][i]);
        const __m512 dy = _mm512_set1_ps(f->dy[c][i]);
        const __m512 pa = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(off, b->ua, qy));
        const __m512 pb = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(off, b->ub, qy));
        acc[c][0] = _mm512_fmadd_ps(_mm512_mul_ps(b->da, dy), pa, acc[c][0]);
        acc[c][1] = _mm512_fmadd_ps(_mm512_mul_ps(b->db, dy), pb, acc[c][1]);
    }
}

/* ---- Q4_0 / Q5_0 / Q8_0 x Q8_0 over many columns as VNNI outer products ----
 * ggml's arithmetic is kept lane by lane: lane j (of 8) of a (row, column) product is the
 * integer of elements 4j..4j+3 of each block, accumulated as acc_j = fmadd(dx*dy, lane,
 * acc_j), and the row's result is hsum_ps of the 8 lanes. Here acc_j of 16 columns is one zmm:
 * the activations of 16 columns are interleaved 4 bytes at a time (vq_act), 4 weight codes
 * of one row (offset to unsigned, x ^ 0x80 = x + 128) are broadcast against them in one
 * dpbusd that starts from -128 * (the 4 activation codes' sum), which leaves the exact lane
 * integer; hsum_ps's order ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)) is done with vector adds.
 * So every output equals vec_dot bit for bit. Bands of VQ_ROWS rows; other rows go to the
 * kernels below. */
#define VQ_ROWS 2
typedef struct { int8_t *q; int32_t *off; float *d; } vq_act;

static size_t vq_act_bytes(size_t n) { return n * VT_COLS + n / QK32 * (8 + 1) * VT_COLS * 4; }

/* q[b][j][c][4]: column c's codes 4j..4j+3 of block b; off[b][j][c]: -128 * their sum;
 * d[b][c]: the block scale. Columns past nc are zero. */
static vq_act vq_interleave(size_t n, const void *a, size_t a_row_stride, size_t nc, uint8_t *mem) {
    const size_t nb = n / QK32;
    vq_act v = {(int8_t *)mem, (int32_t *)(mem + n * VT_COLS), NULL};
    v.d = (float *)(v.off + nb * 8 * VT_COLS);
    vt_gather_codes(((const block_q8_0 *)a)->qs, a_row_stride, nc, nb, sizeof(block_q8_0), 8, v.q);
    /* 128 (unsigned) x the codes, summed per lane, negated */
    const __m512i k128 = _mm512_set1_epi8((char)0x80);
    for (size_t i = 0; i < nb * 8; ++i) {
        const __m512i q = _mm512_load_si512((const void *)(v.q + i * VT_COLS * 4));
        _mm512_store_si512((void *)(v.off + i * VT_COLS),
                           _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), k128, q)));
    }
    memset(v.d, 0, nb * VT_COLS * 4);
    for (size_t c = 0; c < nc; ++c) {
        const block_q8_0 *y = (const block_q8_0 *)((const char *)a + c * a_row_stride);
        for (size_t b = 0; b < nb; ++b) v.d[b * VT_COLS + c] = fp16(y[b].d);
    }
    return v;
}

/* VQ_ROWS rows (u: their codes + 128, 32 bytes per block; dx: their block scales) x one
 * 16-column group; writes out[c * ocs + t] for t < VQ_ROWS, c < nc. */
LODE_ALWAYS_INLINE void vq_band(size_t nb, const uint8_t *const *u, const float *const *dx, vq_act y,
                                size_t nc, float *out, size_t ocs) {
    __m512 acc[VQ_ROWS][8];
    for (int t = 0; t < VQ_ROWS; ++t)
        for (int j = 0; j < 8; ++j) acc[t][j] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
        const __m512 dy = _mm512_load_ps(y.d + b * VT_COLS);
        __m512 dxdy[VQ_ROWS];
        for (int t = 0; t < VQ_ROWS; ++t) dxdy[t] = _mm512_mul_ps(_mm512_set1_ps(dx[t][b]), dy);
        for (int j = 0; j < 8; ++j) {
            const __m512i yq = _mm512_load_si512((const void *)(y.q + (b * 8 + j) * VT_COLS * 4));
            const __m512i off = _mm512_load_si512((const void *)(y.off + (b * 8 + j) * VT_COLS));
            for (int t = 0; t < VQ_ROWS; ++t) {
                int32_t u4;
                memcpy(&u4, u[t] + 32 * b + 4 * j, 4);
                const __m512i lane = _mm512_dpbusd_epi32(off, _mm512_set1_epi32(u4), yq);
                acc[t][j] = _mm512_fmadd_ps(dxdy[t], _mm512_cvtepi32_ps(lane), acc[t][j]);
            }
        }
    }
    for (int t = 0; t < VQ_ROWS; ++t) {
        const __m512 r = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][4]), _mm512_add_ps(acc[t][2], acc[t][6])),
            _mm512_add_ps(_mm512_add_ps(acc[t][1], acc[t][5]), _mm512_add_ps(acc[t][3], acc[t][7])));
        float res[VT_COLS];
        _mm512_storeu_ps(res, r);
        for (size_t c = 0; c < nc; ++c) out[c * ocs + t] = res[c];
    }
}

/* W##_vq: the bands of VQ_ROWS rows (returns how many rows it did; 0 if the scratch could
 * not be had). */
#define VQ_GEMM(W, BLOCK, UNPACK, SCALE)                                                    \
    static size_t W##_vq(size_t n, const void *w, size_t w_row_stride, size_t nrows,       \
                         const void *a, size_t a_row_stride, size_t ncols, float *out,     \
                         size_t out_col_stride) {                                          \
        const size_t nb = n / QK32, bands = nrows / VQ_ROWS;                               \
        const size_t act = (vq_act_bytes(n) + 63) & ~(size_t)63;                           \
        if (!bands) return 0;                                                              \
        /* the activation groups, then each band row's codes + 128 and block scales */     \
        uint8_t *mem = vt_scratch(VT_GROUPS * act + VQ_ROWS * nb * (QK32 + 4));            \
        if (!mem) return 0;                                                                \
        uint8_t *ub[VQ_ROWS];                                                              \
        float *dxs[VQ_ROWS];                                                               \
        const uint8_t *u[VQ_ROWS];                                                         \
        const float *dx[VQ_ROWS];                                                          \
        for (int t = 0; t < VQ_ROWS; ++t) {                                                \
            u[t] = ub[t] = mem + VT_GROUPS * act + t * nb * QK32;                          \
            dx[t] = dxs[t] = (float *)(mem + VT_GROUPS * act + VQ_ROWS * nb * QK32) + t * nb; \
        }                                                                                  \
        const __m256i m128 = _mm256_set1_epi8((char)0x80);                                 \
        for (size_t c0 = 0; c0 < ncols; c0 += VT_GROUPS * VT_COLS) {                       \
            vq_act y[VT_GROUPS];                                                           \
            size_t groups = 0;                                                             \
            for (size_t c = c0; c < ncols && groups < VT_GROUPS; c += VT_COLS, ++groups) { \
                const size_t nc = ncols - c < VT_COLS ? ncols - c : VT_COLS;               \
                y[groups] = vq_interleave(n, (const char *)a + c * a_row_stride, a_row_stride, nc, \
                                          mem + groups * act);                             \
            }                                                                              \
            for (size_t band = 0; band < bands; ++band) {                                  \
                const size_t r0 = band * VQ_ROWS;                                          \
                for (int t = 0; t < VQ_ROWS; ++t) {                                        \
                    const BLOCK *x = (const BLOCK *)((const char *)w + (r0 + t) * w_row_stride); \
                    for (size_t b = 0; b < nb; ++b) {                                      \
                        _mm256_storeu_si256((__m256i *)(ub[t] + 32 * b), _mm256_xor_si256(UNPACK(&x[b]), m128)); \
                        dxs[t][b] = SCALE(&x[b]);                                          \
                    }                                                                      \
                }                                                                          \
                for (size_t g = 0; g < groups; ++g) {                                      \
                    const size_t cg = c0 + g * VT_COLS;                                    \
                    const size_t nc = ncols - cg < VT_COLS ? ncols - cg : VT_COLS;         \
                    vq_band(nb, u, dx, y[g], nc, out + cg * out_col_stride + r0, out_col_stride); \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        return bands * VQ_ROWS;                                                            \
    }

#define Q8_0_GEMM4(W, BLOCK, UNPACK, SCALE)                                                 \
    LODE_ALWAYS_INLINE void W##_unpack4(const BLOCK *const *x, size_t i, gemm4_blk *b) {   \
        const __m512i qa = pair256(UNPACK(&x[0][i]), UNPACK(&x[1][i]));                    \
        const __m512i qb = pair256(UNPACK(&x[2][i]), UNPACK(&x[3][i]));                    \
        b->ma = _mm512_movepi8_mask(qa);                                                   \
        b->mb = _mm512_movepi8_mask(qb);                                                   \
        b->aa = _mm512_abs_epi8(qa);                                                       \
        b->ab = _mm512_abs_epi8(qb);                                                       \
        b->da = pair_ps(SCALE(&x[0][i]), SCALE(&x[1][i]));                                 \
        b->db = pair_ps(SCALE(&x[2][i]), SCALE(&x[3][i]));                                 \
    }                                                                                      \
    LODE_ALWAYS_INLINE void W##_rows4_few(size_t nb, const BLOCK *const *x,                \
                                          size_t w_row_stride, const gemm4_few *f, int NC, \
                                          float *out, size_t ocs, const size_t ro[4]) {    \
        const __m512i m128 = _mm512_set1_epi8((char)0x80);                                 \
        __m512 acc[8][2];                                                                  \
        for (int c = 0; c < NC; ++c) acc[c][0] = acc[c][1] = _mm512_setzero_ps();          \
        for (size_t i = 0; i < nb; ++i) {                                                  \
            /* the weights stream past once: fetch GEMM4_AHEAD rows ahead of their use */     \
            for (int k = 0; k < 4; ++k)                                                    \
                _mm_prefetch((const char *)&x[k][i] + GEMM4_AHEAD * w_row_stride,          \
                             _MM_HINT_T0);                                                 \
            gemm4_ublk b;                                                                  \
            b.ua = _mm512_xor_si512(pair256(UNPACK(&x[0][i]), UNPACK(&x[1][i])), m128);    \
            b.ub = _mm512_xor_si512(pair256(UNPACK(&x[2][i]), UNPACK(&x[3][i])), m128);    \
            b.da = pair_ps(SCALE(&x[0][i]), SCALE(&x[1][i]));                              \
            b.db = pair_ps(SCALE(&x[2][i]), SCALE(&x[3][i]));                              \
            gemm4_few_math(&b, f, i, NC, acc);                                             \
        }                                                                                  \
        gemm4_store_rows(acc, NC, out, ocs, ro);                                           \
    }                                                                                      \
    LODE_ALWAYS_INLINE void W##_rows4(size_t nb, const BLOCK *const *x,                    \
                                      const block_q8_0 *const *cols, int NC, float *out,   \
                                      size_t ocs) {                                        \
        __m512 acc[8][2];                                                                  \
        for (int c = 0; c < NC; ++c) acc[c][0] = acc[c][1] = _mm512_setzero_ps();          \
        for (size_t i = 0; i < nb; ++i) {                                                  \
            gemm4_blk b;                                                                   \
            W##_unpack4(x, i, &b);                                                         \
            gemm4_block_math(&b, cols, i, NC, acc);                                        \
        }                                                                                  \
        gemm4_store(acc, NC, out, ocs);                                                    \
    }                                                                                      \
    void gemm_##W##_q8_0_avx512(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                const void *a, size_t a_row_stride, size_t ncols,          \
                                float *out, size_t out_col_stride) {                       \
        /* one column (decode): eight far-apart rows at a time (LODE_MATVEC_FAR), or for  \
         * few rows gemm2's row pairs */                                                   \
        if (ncols == 1 && W##_rows_far(n, w, w_row_stride, nrows, a, out)) return;         \
        size_t r0 = 0;                                                                     \
        const size_t nb = n / QK32;                                                        \
        if (ncols > 1 && ncols <= GEMM4_FEW_COLS && nb <= GEMM4_FEW_BLOCKS) {           \
            gemm4_few f;                                                                   \
            gemm4_few_prepare(a, a_row_stride, ncols, nb, &f);                             \
            /* rows r, r+q, r+2q, r+3q together (q = nrows/4): four far-apart sequential    \
             * streams, as LODE_MATVEC_FAR does for one column; each row's arithmetic is    \
             * the same wherever it sits in the tile, so the bits do not change */          \
            const size_t q = nrows >= GEMM4_FAR_MIN_ROWS ? nrows / 4 : 0;                  \
            const size_t far[4] = {0, q, 2 * q, 3 * q}, near[4] = {0, 1, 2, 3};            \
            const size_t *ro = q ? far : near;                                             \
            const size_t step = q ? 1 : 4, end = q ? q : nrows / 4 * 4;                    \
            for (; r0 < end; r0 += step) {                                                 \
                const BLOCK *x[4];                                                         \
                for (int k = 0; k < 4; ++k)                                                \
                    x[k] = (const BLOCK *)((const char *)w + (r0 + ro[k]) * w_row_stride); \
                float *o = out + r0;                                                       \
                switch (ncols) {                                                           \
                case 8: W##_rows4_few(nb, x, w_row_stride, &f, 8, o, out_col_stride, ro); break; \
                case 7: W##_rows4_few(nb, x, w_row_stride, &f, 7, o, out_col_stride, ro); break; \
                case 6: W##_rows4_few(nb, x, w_row_stride, &f, 6, o, out_col_stride, ro); break; \
                case 5: W##_rows4_few(nb, x, w_row_stride, &f, 5, o, out_col_stride, ro); break; \
                case 4: W##_rows4_few(nb, x, w_row_stride, &f, 4, o, out_col_stride, ro); break; \
                case 3: W##_rows4_few(nb, x, w_row_stride, &f, 3, o, out_col_stride, ro); break; \
                default: W##_rows4_few(nb, x, w_row_stride, &f, 2, o, out_col_stride, ro); break; \
                }                                                                          \
            }                                                                              \
            if (q) r0 = 4 * q;                                                             \
        }                                                                                  \
        if (ncols > 8) r0 = W##_vq(n, w, w_row_stride, nrows, a, a_row_stride, ncols, out,  \
                                   out_col_stride);                                        \
        for (; ncols > 1 && r0 + 4 <= nrows; r0 += 4) {                                    \
            const BLOCK *x[4];                                                             \
            for (int k = 0; k < 4; ++k)                                                    \
                x[k] = (const BLOCK *)((const char *)w + (r0 + k) * w_row_stride);         \
            for (size_t c0 = 0; c0 < ncols; c0 += 8) {                                     \
                const int nc = ncols - c0 < 8 ? (int)(ncols - c0) : 8;                     \
                const block_q8_0 *cols[8];                                                 \
                for (int c = 0; c < nc; ++c)                                               \
                    cols[c] = (const block_q8_0 *)((const char *)a + (c0 + c) * a_row_stride); \
                float *o = out + c0 * out_col_stride + r0;                                 \
                switch (nc) {                                                              \
                case 8: W##_rows4(nb, x, cols, 8, o, out_col_stride); break;               \
                case 7: W##_rows4(nb, x, cols, 7, o, out_col_stride); break;               \
                case 6: W##_rows4(nb, x, cols, 6, o, out_col_stride); break;               \
                case 5: W##_rows4(nb, x, cols, 5, o, out_col_stride); break;               \
                case 4: W##_rows4(nb, x, cols, 4, o, out_col_stride); break;               \
                case 3: W##_rows4(nb, x, cols, 3, o, out_col_stride); break;               \
                case 2: W##_rows4(nb, x, cols, 2, o, out_col_stride); break;               \
                default: W##_rows4(nb, x, cols, 1, o, out_col_stride); break;              \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (r0 < nrows)                                                                    \
            gemm2_##W##_q8_0(n, (const char *)w + r0 * w_row_stride, w_row_stride,         \
                             nrows - r0, a, a_row_stride, ncols, out + r0, out_col_stride); \
    }

VQ_GEMM(q4_0, block_q4_0, unpack_q4_0, scale_d_q4_0)
VQ_GEMM(q5_0, block_q5_0, unpack_q5_0, scale_d_q5_0)
VQ_GEMM(q8_0, block_q8_0, unpack_q8_0, scale_d_q8_0)
Q8_0_GEMM4(q4_0, block_q4_0, unpack_q4_0, scale_d_q4_0)
Q8_0_GEMM4(q5_0, block_q5_0, unpack_q5_0, scale_d_q5_0)
Q8_0_GEMM4(q8_0, block_q8_0, unpack_q8_0, scale_d_q8_0)
