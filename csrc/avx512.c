/* avx512.c: AVX-512 (F, BW, VL, DQ, VNNI) kernels, compiled alone with those flags.
 *
 * Same structure as avx2.c (a `*_cols` function per type, see LODE_GEMM_TILED). What
 * AVX-512 adds: K-quants unpack a 64-element chunk into one zmm and fold the sub-block scale
 * in with VNNI dpwssd (maddubs + madd + add in one); Q4_0, Q5_0 and Q8_0 take two blocks
 * per zmm through VNNI dpbusd (u8 x s8 -> i32, no saturation). Floats are always
 * accumulated in ggml's AVX2 order (8 lanes), which is what keeps llama.cpp parity. Q4_1, Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS and MXFP4
 * are avx2.c's kernels with 256-bit VNNI (see their section).
 * The quantizers reuse the scalar block code from common.h (quantization is a negligible
 * part of a matvec, and this keeps the bytes identical by construction).
 */
#include <immintrin.h>

#include "common.h"
#include "kernels.h"

/* ---- helpers ---- */

static inline float hsum256(__m256 x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hsum512(__m512 x) {
    return hsum256(_mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1)));
}

static inline float fp16(lode_half h) { return _cvtsh_ss(h); }

static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

static inline __m256i bits_32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    /* AVX-512BW: a 32-bit mask straight to bytes */
    return _mm256_movm_epi8((__mmask32)x);
}

/* signed x signed bytes -> 8 i32 lanes: |x| as u8 times y with x's sign, by VNNI dpbusd */
static inline __m256i dot_i8(__m256i x, __m256i y) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

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
    const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p0)),
                                              _mm_loadu_si128((const __m128i *)p1), 1);
    const __m512i u = _mm512_castsi256_si512(t);
    const __m512i v = _mm512_srli_epi16(u, 4);
    const __m512i idx = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    return _mm512_and_si512(_mm512_permutex2var_epi64(u, idx, v), _mm512_set1_epi8(0x0f));
}

static inline __m512i unpack2_q4_0(const block_q4_0 *x0, const block_q4_0 *x1) {
    return _mm512_sub_epi8(nibbles_64(x0->qs, x1->qs), _mm512_set1_epi8(8));
}
/* (nibble | bit << 4) - 16: OR 0xf0 into bytes whose fifth bit is clear. */
static inline __m512i unpack2_q5_0(const block_q5_0 *x0, const block_q5_0 *x1) {
    uint32_t h0, h1;
    memcpy(&h0, x0->qh, 4);
    memcpy(&h1, x1->qh, 4);
    const __m512i q = nibbles_64(x0->qs, x1->qs);
    const __mmask64 clear = ~((uint64_t)h0 | ((uint64_t)h1 << 32));
    return _mm512_mask_blend_epi8(clear, q, _mm512_or_si512(q, _mm512_set1_epi8((char)0xf0)));
}
static inline __m512i unpack2_q8_0(const block_q8_0 *x0, const block_q8_0 *x1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x0->qs)),
                              _mm256_loadu_si256((const __m256i *)x1->qs), 1);
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
            for (int r = 0; r < NR; ++r) res[c][r] = hsum256(acc[c][r]);                   \
    }

/* gemm over 2-row x 4-column tiles; vec_dot is the 1 x 1 tile. */
#define Q8_0_GEMM(W, TILE)                                                                  \
    void gemm_##W##_q8_0_avx512(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                const void *a, size_t a_row_stride, size_t ncols,          \
                                float *out, size_t out_col_stride) {                       \
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
Q8_0_GEMM(q4_0, q4_0_tile)

Q8_0_TILE(q5_0_tile, block_q5_0, unpack2_q5_0)
Q8_0_GEMM(q5_0, q5_0_tile)

Q8_0_TILE(q8_0_tile, block_q8_0, unpack2_q8_0)
Q8_0_GEMM(q8_0, q8_0_tile)

/* Integer lanes l and l + 8 of a K-quant block sum hold the same bytes 4l..4l+3 of two
 * 32-element chunks; added (exactly) they are lane l of ggml's AVX2 sum, so the float
 * accumulation below (8 lanes, one FMA per block, hsum at the end) is ggml_vec_dot_q*_K_q8_K's
 * bit for bit. llama.cpp's x86 build has no 512-bit K-quant dot, so this is its arithmetic. */
static inline __m256i fold8(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* ---- Q4_K / Q5_K x Q8_K ----
 * Chunk j (64 elements) in one zmm: low nibbles of qs[32j..] = sub-block 2j in the lower
 * 256 bits, high nibbles = sub-block 2j+1 in the upper, matching y->qs[64j..64j+64]; two
 * chunks come from one 64-byte load and two 128-bit-lane shuffles. The scales are unpacked
 * in general registers and moved over whole (a byte array read back as a vector stalled on
 * store forwarding), then spread per chunk with permutexvar. The mins go through the bsums
 * exactly as in avx2.c. FIVE selects the Q5_K fifth bit (qh bit 2j / 2j+1, by a byte test). */

static inline __m128i scales_mins_k4(const uint8_t *q) {
    uint32_t w0, w1, w2, w3;
    lode_scales_mins_k4_words(q, &w0, &w1, &w2, &w3);
    return _mm_set_epi32((int)w3, (int)w2, (int)w1, (int)w0); /* 8 scales, then 8 mins */
}

#define KQ45_COLS(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        const __m512i m4 = _mm512_set1_epi8(0x0f), b16 = _mm512_set1_epi8(0x10);           \
        __m512i sidx[4], hsel[4];                                                          \
        for (int j = 0; j < 4; ++j) {                                                      \
            sidx[j] = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)), 1); \
            hsel[j] = _mm512_inserti64x4(_mm512_set1_epi8((char)(1u << (2 * j))),          \
                                         _mm256_set1_epi8((char)(2u << (2 * j))), 1);      \
        }                                                                                  \
        __m256 acc[4];                                                                     \
        __m128 accm[4];                                                                    \
        for (int c = 0; c < nc; ++c) {                                                     \
            acc[c] = _mm256_setzero_ps();                                                  \
            accm[c] = _mm_setzero_ps();                                                    \
        }                                                                                  \
        for (size_t i = 0; i < n / QK_K; ++i) {                                            \
            const __m256i sm16 = _mm256_cvtepu8_epi16(scales_mins_k4(x[i].scales));       \
            const __m128i mins = _mm256_extracti128_si256(sm16, 1);                        \
            const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);                          \
            __m512i q[4], sc[4];                                                           \
            for (int h = 0; h < 2; ++h) {                                                  \
                const __m512i b = _mm512_loadu_si512((const void *)(x[i].qs + 64 * h));    \
                const __m512i lo = _mm512_and_si512(b, m4);                                \
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);          \
                q[2 * h] = _mm512_shuffle_i64x2(lo, hi, 0x44);                             \
                q[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, 0xee);                         \
            }                                                                              \
            if (FIVE) {                                                                    \
                const __m512i hb = _mm512_broadcast_i64x4(                                 \
                    _mm256_loadu_si256((const __m256i *)((const uint8_t *)&x[i] + 16)));   \
                for (int j = 0; j < 4; ++j)                                                \
                    q[j] = _mm512_mask_or_epi32(q[j], 0xffff, q[j],                        \
                                                _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(hb, hsel[j]), b16)); \
            }                                                                              \
            for (int j = 0; j < 4; ++j) sc[j] = _mm512_permutexvar_epi16(sidx[j], _mm512_castsi256_si512(sm16)); \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_K *y = (const block_q8_K *)va[c] + i;                       \
                const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);          \
                const __m128i bsum = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)); \
                accm[c] = _mm_fmadd_ps(_mm_set1_ps(y->d * dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bsum)), accm[c]); \
                __m512i sumi = _mm512_setzero_si512();                                     \
                for (int j = 0; j < 4; ++j) {                                              \
                    const __m512i qy = _mm512_loadu_si512((const void *)(y->qs + 64 * j)); \
                    sumi = _mm512_dpwssd_epi32(sumi, sc[j], _mm512_maddubs_epi16(q[j], qy)); \
                }                                                                          \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), _mm256_cvtepi32_ps(fold8(sumi)), acc[c]); \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            __m128 s = _mm_add_ps(accm[c], _mm_movehl_ps(accm[c], accm[c]));               \
            s = _mm_add_ss(s, _mm_movehdup_ps(s));                                         \
            res[c] = hsum256(acc[c]) - _mm_cvtss_f32(s);                                   \
        }                                                                                  \
    }

KQ45_COLS(q4k_cols, block_q4_K, 0)
LODE_GEMM_TILED(q4k, q8k, avx512, q4k_cols)

KQ45_COLS(q5k_cols, block_q5_K, 1)
LODE_GEMM_TILED(q5k, q8k, avx512, q5k_cols)

/* ---- Q6_K x Q8_K ----
 * Per 128-element half: ql[64k..64k+64] is one zmm (elements 0..31 | 32..63 from the low
 * nibbles, 64..95 | 96..127 from the high ones); qh is broadcast to both halves and shifted
 * per half with srlv. Each zmm spans 4 sub-blocks of 16; their i16 scales are spread with
 * permutexvar. The -32 offset is applied per column through the bsums, as in avx2.c. */

LODE_ALWAYS_INLINE void q6k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q6_K *x = vw;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    const __m512i sh01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    __m512i sidx[4];
    for (int m = 0; m < 4; ++m) {
        int16_t idx[32];
        for (int l = 0; l < 32; ++l) idx[l] = (int16_t)(4 * m + l / 8);
        sidx[m] = _mm512_loadu_si512((const void *)idx);
    }
    __m256 acc[4];
    for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = fp16(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i sc16z = _mm512_castsi256_si512(sc16);
        __m512i q[4], sc[4];
        for (int k = 0; k < 2; ++k) {
            const __m512i l = _mm512_loadu_si512((const void *)(x[i].ql + 64 * k));
            const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * k)));
            q[2 * k] = _mm512_or_si512(_mm512_and_si512(l, m4),
                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, sh01), m2), 4));
            q[2 * k + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, sh23), m2), 4));
        }
        for (int m = 0; m < 4; ++m) sc[m] = _mm512_permutexvar_epi16(sidx[m], sc16z);
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5); /* 32*sc*bsum */
            __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
            for (int m = 0; m < 4; ++m) {
                const __m512i qy = _mm512_loadu_si512((const void *)(y->qs + 64 * m));
                sumi = _mm512_dpwssd_epi32(sumi, sc[m], _mm512_maddubs_epi16(q[m], qy));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), _mm256_cvtepi32_ps(fold8(sumi)), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum256(acc[c]);
}
LODE_GEMM_TILED(q6k, q8k, avx512, q6k_cols)

/* The seven types below use 256-bit registers with AVX-512VL VNNI (dpbusd / dpwssd fuse
 * maddubs + madd + add); otherwise they are avx2.c's kernels, in ggml's AVX2 accumulation
 * order. They are rare in Gemma GGUFs, so they get no 512-bit unpacking. The K-quant ones
 * split the dpwssd chain over two integer accumulators (exact, so the order is unchanged):
 * one chain of 8 dependent dpwssd per block ran Q3_K slower than avx2.c's madd + add. */

/* ---- Q4_1 / Q5_1 x Q8_0 ----
 * Unsigned quants (0..15 / 0..31) go straight into maddubs; the min m enters through the
 * activation block sum, a second maddubs against ones. llama.cpp dots these types against
 * Q8_1, whose block sum is stored pre-multiplied and rounded to f16, so no order here could
 * equal it bit for bit: the d term keeps ggml's one 8-lane accumulator, the m term has its
 * own 8-lane accumulator (ggml adds it as a scalar per block). */

#define Q8_0_MIN_COLS(NAME, BLOCK, UNPACK)                                                  \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        const __m256i ones8 = _mm256_set1_epi8(1);                                         \
        __m256 acc[4], accm[4];                                                            \
        for (int c = 0; c < nc; ++c) acc[c] = accm[c] = _mm256_setzero_ps();               \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            const __m256i qx = UNPACK(&x[i]);                                              \
            const float dx = fp16(x[i].d), mx = fp16(x[i].m);                              \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);             \
                const float dy = fp16(y->d);                                               \
                const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), qx, qy); \
                const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones8, qy); \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy), _mm256_cvtepi32_ps(p), acc[c]); \
                accm[c] = _mm256_fmadd_ps(_mm256_set1_ps(mx * dy), _mm256_cvtepi32_ps(s), accm[c]); \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = hsum256(acc[c]) + hsum256(accm[c]);          \
    }

static inline __m256i unpack_q4_1(const block_q4_1 *x) { return nibbles_32(x->qs); }
Q8_0_MIN_COLS(q4_1_cols, block_q4_1, unpack_q4_1)
LODE_GEMM_TILED(q4_1, q8_0, avx512, q4_1_cols)

static inline __m256i unpack_q5_1(const block_q5_1 *x) {
    return _mm256_or_si256(nibbles_32(x->qs), _mm256_and_si256(bits_32(x->qh), _mm256_set1_epi8(0x10)));
}
Q8_0_MIN_COLS(q5_1_cols, block_q5_1, unpack_q5_1)
LODE_GEMM_TILED(q5_1, q8_0, avx512, q5_1_cols)

/* ---- IQ4_NL / MXFP4 x Q8_0: nibbles through a 16-entry pshufb table ----
 * ggml's order: blocks in pairs into two 8-lane accumulators (summed before the final
 * hsum), an odd last block added as a scalar int dot times its scale. */

static inline __m256i lookup_nibbles_32(const uint8_t *qs, __m128i table) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(b, 4), m4)),
                            _mm_shuffle_epi8(table, _mm_and_si128(b, m4)));
}

#define LUT_COLS(NAME, BLOCK, TABLE, SCALE)                                                 \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        const __m128i table = _mm_loadu_si128((const __m128i *)TABLE);                     \
        const size_t nb = n / QK32;                                                        \
        __m256 acc1[4], acc2[4];                                                           \
        for (int c = 0; c < nc; ++c) acc1[c] = acc2[c] = _mm256_setzero_ps();              \
        size_t i = 0;                                                                      \
        for (; i + 1 < nb; i += 2) {                                                       \
            const __m256i q1 = lookup_nibbles_32(x[i].qs, table);                          \
            const __m256i q2 = lookup_nibbles_32(x[i + 1].qs, table);                      \
            const float dx1 = SCALE(&x[i]), dx2 = SCALE(&x[i + 1]);                        \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                const __m256 p1 = _mm256_cvtepi32_ps(dot_i8(q1, _mm256_loadu_si256((const __m256i *)y[0].qs))); \
                const __m256 p2 = _mm256_cvtepi32_ps(dot_i8(q2, _mm256_loadu_si256((const __m256i *)y[1].qs))); \
                acc1[c] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(y[0].d) * dx1), p1, acc1[c]); \
                acc2[c] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(y[1].d) * dx2), p2, acc2[c]); \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = hsum256(_mm256_add_ps(acc1[c], acc2[c]));    \
        if (i < nb) {                                                                      \
            const float dx = SCALE(&x[i]);                                                 \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                int sumi = 0;                                                              \
                for (int j = 0; j < 16; ++j)                                               \
                    sumi += TABLE[x[i].qs[j] & 0xf] * y->qs[j] + TABLE[x[i].qs[j] >> 4] * y->qs[j + 16]; \
                res[c] += fp16(y->d) * dx * (float)sumi;                                   \
            }                                                                              \
        }                                                                                  \
    }

static inline float scale_d_iq4nl(const block_iq4_nl *x) { return fp16(x->d); }
LUT_COLS(iq4nl_cols, block_iq4_nl, lode_kvalues_iq4nl, scale_d_iq4nl)
LODE_GEMM_TILED(iq4nl, q8_0, avx512, iq4nl_cols)

static inline float scale_e_mxfp4(const block_mxfp4 *x) { return lode_e8m0_to_fp32_half(x->e); }
LUT_COLS(mxfp4_cols, block_mxfp4, lode_kvalues_mxfp4, scale_e_mxfp4)
LODE_GEMM_TILED(mxfp4, q8_0, avx512, mxfp4_cols)

/* ---- Q2_K / Q3_K x Q8_K, ggml's AVX2 order ----
 * A 32-byte vector of 2-bit fields, shifted by 2k, holds sub-blocks 8j+2k (low 16 bytes) and
 * 8j+2k+1 (high 16); the i16 scales of both are spread by one pshufb (ggml's
 * get_scale_shuffle_q3k). Per block one FMA of the integer lane sums (Q2_K: first one of the
 * mins against the bsums). */

static const uint8_t k_scale_shuffle[128] = {
    0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
    4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
    8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11,
    12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15};

/* i16 scales of sub-blocks (8j+2k, 8j+2k+1), lanes as in the comment above; all16 = 16 i16. */
static inline __m256i scale_pair(__m256i all16, int j, int k) {
    const __m128i h = j ? _mm256_extracti128_si256(all16, 1) : _mm256_castsi256_si128(all16);
    return _mm256_shuffle_epi8(_mm256_set_m128i(h, h), _mm256_loadu_si256((const __m256i *)(k_scale_shuffle + 32 * k)));
}

LODE_ALWAYS_INLINE void q2k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q2_K *x = vw;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc[4];
    for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; ++i) {
        const __m128i ms = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(ms, 4), m4));
        const __m256i all = _mm256_cvtepi8_epi16(_mm_and_si128(ms, m4));
        const float xd = fp16(x[i].d), xmin = fp16(x[i].dmin);
        __m256i q[8], sc[8];
        for (int j = 0; j < 2; ++j) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            for (int k = 0; k < 4; ++k) {
                q[4 * j + k] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                sc[4 * j + k] = scale_pair(all, j, k);
            }
        }
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            const float d = y->d * xd, dmin = -y->d * xmin;
            const __m256i prod = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)y->bsums));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc[c]);
            __m256i sumi2[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int s = 0; s < 8; ++s) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * s));
                sumi2[s & 1] = _mm256_dpwssd_epi32(sumi2[s & 1], sc[s], _mm256_maddubs_epi16(q[s], qy));
            }
            const __m256i sumi = _mm256_add_epi32(sumi2[0], sumi2[1]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum256(acc[c]);
}
LODE_GEMM_TILED(q2k, q8k, avx512, q2k_cols)

/* Q3_K: the weight (q & 3) - 4 * !hbit is kept signed (-4..3) and dotted with the sign
 * trick, which gives the same i16 pair sums as ggml's maddubs(low) - maddubs(high). */
LODE_ALWAYS_INLINE void q3k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q3_K *x = vw;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4), zero = _mm256_setzero_si256();
    __m256 acc[4];
    for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; ++i) {
        int8_t sc8[16];
        lode_unpack_scales_q3k(x[i].scales, sc8);
        const __m256i all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc8));
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        const float xd = fp16(x[i].d);
        __m256i q[8], sc[8];
        for (int j = 0; j < 2; ++j) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            for (int k = 0; k < 4; ++k) {
                const __m256i sel = _mm256_set1_epi8((char)(1u << (4 * j + k)));
                const __m256i hclear = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, sel), zero);
                q[4 * j + k] = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3),
                                               _mm256_and_si256(hclear, four));
                sc[4 * j + k] = scale_pair(all, j, k);
            }
        }
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            const float d = y->d * xd;
            __m256i sumi2[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int s = 0; s < 8; ++s) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * s));
                const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q[s], q[s]), _mm256_sign_epi8(qy, q[s]));
                sumi2[s & 1] = _mm256_dpwssd_epi32(sumi2[s & 1], sc[s], p16);
            }
            const __m256i sumi = _mm256_add_epi32(sumi2[0], sumi2[1]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum256(acc[c]);
}
LODE_GEMM_TILED(q3k, q8k, avx512, q3k_cols)

/* ---- IQ4_XS x Q8_K: IQ4_NL lookup per 32-element sub-block, six-bit scale via madd;
 * ggml's order (integer lane sums per super-block, one FMA). ---- */

LODE_ALWAYS_INLINE void iq4xs_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_iq4_xs *x = vw;
    const __m128i table = _mm_loadu_si128((const __m128i *)lode_kvalues_iq4nl);
    __m256 acc[4];
    for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; ++i) {
        __m256i q[8], sc[8];
        for (int ib = 0; ib < 8; ++ib) {
            q[ib] = lookup_nibbles_32(x[i].qs + 16 * ib, table);
            sc[ib] = _mm256_set1_epi16((short)lode_iq4xs_scale(&x[i], ib));
        }
        const float xd = fp16(x[i].d);
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            __m256i sumi2[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int ib = 0; ib < 8; ++ib) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * ib));
                const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q[ib], q[ib]), _mm256_sign_epi8(qy, q[ib]));
                sumi2[ib & 1] = _mm256_dpwssd_epi32(sumi2[ib & 1], p16, sc[ib]);
            }
            const __m256i sumi = _mm256_add_epi32(sumi2[0], sumi2[1]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(xd * y->d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum256(acc[c]);
}
LODE_GEMM_TILED(iq4xs, q8k, avx512, iq4xs_cols)

/* ---- F32 / F16 / BF16 x F32: 32 elements per step, two zmm accumulators per column ---- */

#define FLOAT_COLS(NAME, T, LOAD16, SCALAR)                                                 \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const T *x = vw;                                                                   \
        __m512 acc0[4], acc1[4];                                                           \
        for (int c = 0; c < nc; ++c) acc0[c] = acc1[c] = _mm512_setzero_ps();              \
        size_t i = 0;                                                                      \
        for (; i + 32 <= n; i += 32) {                                                     \
            const __m512 w0 = LOAD16(x + i), w1 = LOAD16(x + i + 16);                      \
            for (int c = 0; c < nc; ++c) {                                                 \
                const float *y = (const float *)va[c] + i;                                 \
                acc0[c] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(y), acc0[c]);                \
                acc1[c] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(y + 16), acc1[c]);           \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            float s = hsum512(_mm512_add_ps(acc0[c], acc1[c]));                            \
            const float *y = (const float *)va[c];                                         \
            for (size_t k = i; k < n; ++k) s += SCALAR(x[k]) * y[k];                       \
            res[c] = s;                                                                    \
        }                                                                                  \
    }

static inline __m512 load16_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline float id_f32(float v) { return v; }
FLOAT_COLS(f32_cols, float, load16_f32, id_f32)
LODE_GEMM_TILED(f32, f32, avx512, f32_cols)

static inline __m512 load16_f16(const lode_half *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
FLOAT_COLS(f16_cols, lode_half, load16_f16, lode_fp16_to_fp32)
LODE_GEMM_TILED(f16, f32, avx512, f16_cols)

static inline __m512 load16_bf16(const uint16_t *p) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
FLOAT_COLS(bf16_cols, uint16_t, load16_bf16, lode_bf16_to_fp32)
LODE_GEMM_TILED(bf16, f32, avx512, bf16_cols)

/* ---- quantizers ---- */

void quantize_row_q8_0_avx512(size_t n, const float *x, void *vy) {
    block_q8_0 *y = vy;
    for (size_t i = 0; i < n / QK32; ++i) lode_quantize_q8_0_block(x + i * QK32, &y[i]);
}

void quantize_row_q8_k_avx512(size_t n, const float *x, void *vy) {
    block_q8_K *y = vy;
    for (size_t i = 0; i < n / QK_K; ++i) lode_quantize_q8_k_block(x + i * QK_K, &y[i]);
}

/* ---- batched gemm ----
 * gemm_tiled_<W>_q8k (scalar.c has the spec): the exact block integers of KQ45_COLS /
 * q6k_cols above, summed across lanes, then llama.cpp's tiled float steps
 * (LODE_GEMM_KTILED in common.h) over 8 columns per weight-block unpack. */

static inline int32_t hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline int32_t hsum_epi32_512(__m512i v) {
    const __m256i h = fold8(v);
    return hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

#define KQ45_TBLK(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(const BLOCK *x, const block_q8_K *const *ys, int nc,       \
                                 int32_t *is, int32_t *ms) {                               \
        const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);              \
        uint8_t sm[16];                                                                    \
        lode_unpack_scales_mins_k4(x->scales, sm);                                         \
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8))); \
        __m512i q[4], sc[4];                                                               \
        for (int j = 0; j < 4; ++j) {                                                      \
            const __m256i b = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));       \
            __m256i lo = _mm256_and_si256(b, m4);                                          \
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);                    \
            if (FIVE) {                                                                    \
                const __m256i hb = _mm256_loadu_si256((const __m256i *)((const uint8_t *)x + 16)); \
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4)); \
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4)); \
            }                                                                              \
            q[j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);                  \
            sc[j] = _mm512_inserti64x4(_mm512_set1_epi16(sm[2 * j]), _mm256_set1_epi16(sm[2 * j + 1]), 1); \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            const block_q8_K *y = ys[c];                                                   \
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);              \
            const __m128i bsum = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)); \
            ms[c] = hsum_epi32_128(_mm_madd_epi16(mins, bsum));                            \
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();              \
            s0 = _mm512_dpwssd_epi32(s0, sc[0], _mm512_maddubs_epi16(q[0], _mm512_loadu_si512((const void *)(y->qs + 0)))); \
            s1 = _mm512_dpwssd_epi32(s1, sc[1], _mm512_maddubs_epi16(q[1], _mm512_loadu_si512((const void *)(y->qs + 64)))); \
            s0 = _mm512_dpwssd_epi32(s0, sc[2], _mm512_maddubs_epi16(q[2], _mm512_loadu_si512((const void *)(y->qs + 128)))); \
            s1 = _mm512_dpwssd_epi32(s1, sc[3], _mm512_maddubs_epi16(q[3], _mm512_loadu_si512((const void *)(y->qs + 192)))); \
            is[c] = hsum_epi32_512(_mm512_add_epi32(s0, s1));                              \
        }                                                                                  \
    }

KQ45_TBLK(q4k_tblk, block_q4_K, 0)
LODE_GEMM_KTILED(q4k, avx512, block_q4_K, q4k_tblk, 1, dmin, 8)

KQ45_TBLK(q5k_tblk, block_q5_K, 1)
LODE_GEMM_KTILED(q5k, avx512, block_q5_K, q5k_tblk, 1, dmin, 8)

LODE_ALWAYS_INLINE void q6k_tblk(const block_q6_K *x, const block_q8_K *const *ys, int nc, int32_t *is,
                                 int32_t *ms) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    const __m512i sh01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    const __m512i sc16z = _mm512_castsi256_si512(sc16);
    __m512i q[4], sc[4];
    for (int k = 0; k < 2; ++k) {
        const __m512i l = _mm512_loadu_si512((const void *)(x->ql + 64 * k));
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * k)));
        q[2 * k] = _mm512_or_si512(_mm512_and_si512(l, m4),
                                   _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, sh01), m2), 4));
        q[2 * k + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, sh23), m2), 4));
    }
    for (int m = 0; m < 4; ++m) {
        /* sub-block 4m + l/8 for i16 lane l (lanes 0..15: 4m, 4m+1; 16..31: 4m+2, 4m+3) */
        const __m512i idx = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * m)),
                                             _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3));
        sc[m] = _mm512_permutexvar_epi16(idx, sc16z);
    }
    for (int c = 0; c < nc; ++c) {
        const block_q8_K *y = ys[c];
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5); /* 32*sc*bsum */
        __m512i s0 = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
        __m512i s1 = _mm512_setzero_si512();
        s0 = _mm512_dpwssd_epi32(s0, sc[0], _mm512_maddubs_epi16(q[0], _mm512_loadu_si512((const void *)(y->qs + 0))));
        s1 = _mm512_dpwssd_epi32(s1, sc[1], _mm512_maddubs_epi16(q[1], _mm512_loadu_si512((const void *)(y->qs + 64))));
        s0 = _mm512_dpwssd_epi32(s0, sc[2], _mm512_maddubs_epi16(q[2], _mm512_loadu_si512((const void *)(y->qs + 128))));
        s1 = _mm512_dpwssd_epi32(s1, sc[3], _mm512_maddubs_epi16(q[3], _mm512_loadu_si512((const void *)(y->qs + 192))));
        is[c] = hsum_epi32_512(_mm512_add_epi32(s0, s1));
        ms[c] = 0;
    }
}
LODE_GEMM_KTILED(q6k, avx512, block_q6_K, q6k_tblk, 0, d, 8)

/* gemm4_<W>_q8_0: 4 weight rows x up to 8 columns per pass for the 32-element types, so a
 * weight block is unpacked once per 8 columns and an activation block loaded once per 4
 * rows. Rows r, r+1 share one zmm (lanes 0..7 | 8..15), each half computing exactly
 * Q8_0_COLS's 8-lane column arithmetic: |x| by dpbusd against y negated where x < 0 (what
 * dot_i8's sign trick gives), fmadd(dx*dy, lanes, acc), hsum256 of each half. So every output
 * equals vec_dot bit for bit; rows beyond a multiple of 4 go through the 1-row gemm. */

/* One block unpacked to 32 signed bytes (the row kernels above unpack two blocks per zmm). */
static inline float scale_d_q4_0(const block_q4_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q4_0(const block_q4_0 *x) {
    return _mm256_sub_epi8(nibbles_32(x->qs), _mm256_set1_epi8(8));
}
static inline float scale_d_q5_0(const block_q5_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q5_0(const block_q5_0 *x) {
    const __m256i hi = _mm256_andnot_si256(bits_32(x->qh), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles_32(x->qs), hi);
}
static inline float scale_d_q8_0(const block_q8_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q8_0(const block_q8_0 *x) {
    return _mm256_loadu_si256((const __m256i *)x->qs);
}

LODE_ALWAYS_INLINE __m512i pair256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
LODE_ALWAYS_INLINE __m512 pair_ps(float lo, float hi) {
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

/* Four rows' block i as the column loop uses it: rows 0|1 and 2|3 paired per zmm, their
 * |x|, sign masks and scales. Unpacked once per 4 rows into a stack array (when the row has
 * at most GEMM4_CACHE_BLOCKS blocks) and reread for every group of 8 columns: the same
 * values, so the same bits, without redoing the unpacking 2·ncols/8 times. */
#define GEMM4_CACHE_BLOCKS 64
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
            out[c * ocs + 2 * h] = hsum256(_mm512_castps512_ps256(acc[c][h]));
            out[c * ocs + 2 * h + 1] = hsum256(_mm512_extractf32x8_ps(acc[c][h], 1));
        }
}

/* NC columns against 4 rows held unpacked in blk[0..nb). */
LODE_ALWAYS_INLINE void gemm4_cached_cols(size_t nb, const gemm4_blk *blk,
                                          const block_q8_0 *const *cols, int NC, float *out,
                                          size_t ocs) {
    __m512 acc[8][2];
    for (int c = 0; c < NC; ++c) acc[c][0] = acc[c][1] = _mm512_setzero_ps();
    for (size_t i = 0; i < nb; ++i) gemm4_block_math(&blk[i], cols, i, NC, acc);
    gemm4_store(acc, NC, out, ocs);
}

static void gemm4_cached(size_t nb, const gemm4_blk *blk, const void *a, size_t a_row_stride,
                         size_t ncols, float *out, size_t out_col_stride) {
    for (size_t c0 = 0; c0 < ncols; c0 += 8) {
        const int nc = ncols - c0 < 8 ? (int)(ncols - c0) : 8;
        const block_q8_0 *cols[8];
        for (int c = 0; c < nc; ++c)
            cols[c] = (const block_q8_0 *)((const char *)a + (c0 + c) * a_row_stride);
        float *o = out + c0 * out_col_stride;
        switch (nc) {
        case 8: gemm4_cached_cols(nb, blk, cols, 8, o, out_col_stride); break;
        case 7: gemm4_cached_cols(nb, blk, cols, 7, o, out_col_stride); break;
        case 6: gemm4_cached_cols(nb, blk, cols, 6, o, out_col_stride); break;
        case 5: gemm4_cached_cols(nb, blk, cols, 5, o, out_col_stride); break;
        case 4: gemm4_cached_cols(nb, blk, cols, 4, o, out_col_stride); break;
        case 3: gemm4_cached_cols(nb, blk, cols, 3, o, out_col_stride); break;
        case 2: gemm4_cached_cols(nb, blk, cols, 2, o, out_col_stride); break;
        default: gemm4_cached_cols(nb, blk, cols, 1, o, out_col_stride); break;
        }
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
                                          float *out, size_t ocs) {                        \
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
        gemm4_store(acc, NC, out, ocs);                                                    \
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
    void gemm4_##W##_q8_0_avx512(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                 const void *a, size_t a_row_stride, size_t ncols,         \
                                 float *out, size_t out_col_stride) {                      \
        size_t r0 = 0; /* one column (decode): the 1-row gemm streams rows faster */      \
        const size_t nb = n / QK32;                                                        \
        if (ncols > 1 && ncols <= GEMM4_FEW_COLS && nb <= GEMM4_FEW_BLOCKS) {           \
            gemm4_few f;                                                                   \
            gemm4_few_prepare(a, a_row_stride, ncols, nb, &f);                             \
            for (; r0 + 4 <= nrows; r0 += 4) {                                             \
                const BLOCK *x[4];                                                         \
                for (int k = 0; k < 4; ++k)                                                \
                    x[k] = (const BLOCK *)((const char *)w + (r0 + k) * w_row_stride);     \
                float *o = out + r0;                                                       \
                switch (ncols) {                                                           \
                case 8: W##_rows4_few(nb, x, w_row_stride, &f, 8, o, out_col_stride); break; \
                case 7: W##_rows4_few(nb, x, w_row_stride, &f, 7, o, out_col_stride); break; \
                case 6: W##_rows4_few(nb, x, w_row_stride, &f, 6, o, out_col_stride); break; \
                case 5: W##_rows4_few(nb, x, w_row_stride, &f, 5, o, out_col_stride); break; \
                case 4: W##_rows4_few(nb, x, w_row_stride, &f, 4, o, out_col_stride); break; \
                case 3: W##_rows4_few(nb, x, w_row_stride, &f, 3, o, out_col_stride); break; \
                default: W##_rows4_few(nb, x, w_row_stride, &f, 2, o, out_col_stride); break; \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (ncols > 8 && nb <= GEMM4_CACHE_BLOCKS) {                                       \
            gemm4_blk blk[GEMM4_CACHE_BLOCKS];                                             \
            for (; r0 + 4 <= nrows; r0 += 4) {                                             \
                const BLOCK *x[4];                                                         \
                for (int k = 0; k < 4; ++k)                                                \
                    x[k] = (const BLOCK *)((const char *)w + (r0 + k) * w_row_stride);     \
                for (size_t i = 0; i < nb; ++i) W##_unpack4(x, i, &blk[i]);                \
                gemm4_cached(nb, blk, a, a_row_stride, ncols, out + r0, out_col_stride);   \
            }                                                                              \
        }                                                                                  \
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
            gemm_##W##_q8_0_avx512(n, (const char *)w + r0 * w_row_stride, w_row_stride,   \
                                   nrows - r0, a, a_row_stride, ncols, out + r0,           \
                                   out_col_stride);                                        \
    }

Q8_0_GEMM4(q4_0, block_q4_0, unpack_q4_0, scale_d_q4_0)
Q8_0_GEMM4(q5_0, block_q5_0, unpack_q5_0, scale_d_q5_0)
Q8_0_GEMM4(q8_0, block_q8_0, unpack_q8_0, scale_d_q8_0)

/* ggml_dot_f32 (scalar.c has the spec): ggml_vec_dot_f32's own AVX-512 loop. */
float ggml_dot_f32_avx512(size_t n, const float *x, const float *y) {
    const size_t np = n & ~(size_t)63;
    __m512 acc[4];
    for (int j = 0; j < 4; ++j) acc[j] = _mm512_setzero_ps();
    for (size_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; ++j)
            acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16 * j), _mm512_loadu_ps(y + i + 16 * j), acc[j]);
    const __m512 s16 = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    const __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(s16), _mm512_extractf32x8_ps(s16, 1));
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    float s = _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
    for (size_t i = np; i < n; ++i) s += x[i] * y[i];
    return s;
}

/* ggml_fma_row (scalar.c has the spec) */
void ggml_fma_row_avx512(size_t n, float *acc, const float *x, float p) {
    const __m512 vp = _mm512_set1_ps(p);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(_mm512_loadu_ps(x + i), vp, _mm512_loadu_ps(acc + i)));
    for (; i < n; ++i) acc[i] = fmaf(x[i], p, acc[i]);
}
/* ---- attention: attn_axpy (see scalar.c), 32 elements x up to 4 heads in registers ---- */

/* Rows stream in order, four at a time (four streams for the prefetchers; V rows are one
 * head of a cache cell, a whole cell apart, so a column-blocked order would touch every
 * row's page for each chunk), and the accumulators of up to 4 heads stay in L1: each
 * accumulator chunk is loaded and stored once per four rows. */
#define ATTN_AXPY(NAME, LOAD32, SCALAR_TAIL)                                                   \
    void NAME(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,         \
              size_t p_stride, size_t nh, float *acc, size_t acc_stride) {                     \
        const size_t nw = n / 32 * 32;                                                        \
        for (size_t h0 = 0; h0 < nh; h0 += 4) {                                                \
            const size_t hn = nh - h0 < 4 ? nh - h0 : 4;                                       \
            size_t j = 0;                                                                      \
            for (; j + 4 <= nk; j += 4) {                                                      \
                const char *row[4];                                                            \
                float w[4][4];                                                                 \
                for (int r = 0; r < 4; ++r) row[r] = (const char *)v + (j + r) * v_row_stride; \
                for (size_t h = 0; h < hn; ++h)                                                \
                    for (int r = 0; r < 4; ++r) w[h][r] = p[(h0 + h) * p_stride + j + r];      \
                for (size_t i = 0; i < nw; i += 32) {                                         \
                    __m512 x0[4], x1[4];                                                       \
                    float d[4];                                                                \
                    for (int r = 0; r < 4; ++r) LOAD32(row[r], i, &x0[r], &x1[r], &d[r]);      \
                    for (size_t h = 0; h < hn; ++h) {                                          \
                        float *a = acc + (h0 + h) * acc_stride + i;                            \
                        __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16);                  \
                        for (int r = 0; r < 4; ++r) {                                          \
                            const __m512 wv = _mm512_set1_ps(w[h][r] * d[r]);                     \
                            a0 = _mm512_fmadd_ps(wv, x0[r], a0);                                \
                            a1 = _mm512_fmadd_ps(wv, x1[r], a1);                                \
                        }                                                                      \
                        _mm512_storeu_ps(a, a0);                                               \
                        _mm512_storeu_ps(a + 16, a1);                                         \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            for (; j < nk; ++j) {                                                              \
                const char *row = (const char *)v + j * v_row_stride;                          \
                float w[4];                                                                    \
                for (size_t h = 0; h < hn; ++h) w[h] = p[(h0 + h) * p_stride + j];             \
                for (size_t i = 0; i < nw; i += 32) {                                         \
                    __m512 x0, x1;                                                             \
                    float d;                                                                   \
                    LOAD32(row, i, &x0, &x1, &d);                                              \
                    for (size_t h = 0; h < hn; ++h) {                                          \
                        float *a = acc + (h0 + h) * acc_stride + i;                            \
                        const __m512 wv = _mm512_set1_ps(w[h] * d);                               \
                        _mm512_storeu_ps(a, _mm512_fmadd_ps(wv, x0, _mm512_loadu_ps(a)));      \
                        _mm512_storeu_ps(a + 16, _mm512_fmadd_ps(wv, x1, _mm512_loadu_ps(a + 16))); \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            for (size_t jj = 0; jj < nk; ++jj)                                                 \
                for (size_t i = nw; i < n; ++i)                                                \
                    for (size_t h = 0; h < hn; ++h)                                            \
                        acc[(h0 + h) * acc_stride + i] +=                                      \
                            p[(h0 + h) * p_stride + jj] *                                      \
                            SCALAR_TAIL((const char *)v + jj * v_row_stride, i);               \
        }                                                                                      \
    }

static inline void attn_load32_f32(const void *row, size_t i, __m512 *x0, __m512 *x1, float *d) {
    const float *x = (const float *)row + i;
    *x0 = _mm512_loadu_ps(x);
    *x1 = _mm512_loadu_ps(x + 16);
    *d = 1.0f;
}
static inline float attn_elem_f32(const void *row, size_t i) { return ((const float *)row)[i]; }
ATTN_AXPY(attn_axpy_f32_avx512, attn_load32_f32, attn_elem_f32)

static inline void attn_load32_f16(const void *row, size_t i, __m512 *x0, __m512 *x1, float *d) {
    const lode_half *x = (const lode_half *)row + i;
    *x0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)x));
    *x1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + 16)));
    *d = 1.0f;
}
static inline float attn_elem_f16(const void *row, size_t i) { return fp16(((const lode_half *)row)[i]); }
ATTN_AXPY(attn_axpy_f16_avx512, attn_load32_f16, attn_elem_f16)

/* q8_0: n is a multiple of 32, one block per step */
static inline void attn_load32_q8_0(const void *row, size_t i, __m512 *x0, __m512 *x1, float *d) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    *x0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->qs)));
    *x1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + 16))));
    *d = fp16(b->d);
}
static inline float attn_elem_q8_0(const void *row, size_t i) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    return fp16(b->d) * (float)b->qs[i % QK32];
}
ATTN_AXPY(attn_axpy_q8_0_avx512, attn_load32_q8_0, attn_elem_q8_0)
