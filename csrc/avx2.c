/* avx2.c: AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c only).
 *
 * Each `*_cols` function computes one weight row against 1..4 activation columns
 * (LODE_GEMM_TILED in common.h builds vec_dot and gemm from it): the weight block is loaded
 * and unpacked once, then multiplied into every column. Integer block dots are exact
 * (maddubs cannot saturate: |u8| <= 127 or <= 63 times |i8| <= 127); only the float
 * accumulation order differs from scalar.c.
 */
#include <immintrin.h>

#include "common.h"
#include "kernels.h"

/* ---- helpers ---- */

static inline float hsum_ps(__m256 x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float fp16(lode_half h) { return _cvtsh_ss(h); }

/* 32 nibbles -> 32 bytes: low nibbles (elements 0..15) then high nibbles (16..31). */
static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, 0xff where bit j of the little-endian word is set. */
static inline __m256i bits_32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* signed x signed bytes -> 8 i32 lanes of sums of 4 products (sign trick for maddubs). */
static inline __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* ---- 32-element types x Q8_0: weights unpacked to signed bytes, then dot_i8 per column ---- */

#define Q8_0_COLS(NAME, BLOCK, UNPACK, SCALE)                                               \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        __m256 acc[4];                                                                     \
        for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();                         \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            const __m256i qx = UNPACK(&x[i]);                                              \
            const float dx = SCALE(&x[i]);                                                 \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);             \
                const __m256 p = _mm256_cvtepi32_ps(dot_i8(qx, qy));                       \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * fp16(y->d)), p, acc[c]);      \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);                             \
    }

static inline float scale_d_q4_0(const block_q4_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q4_0(const block_q4_0 *x) {
    return _mm256_sub_epi8(nibbles_32(x->qs), _mm256_set1_epi8(8));
}
Q8_0_COLS(q4_0_cols, block_q4_0, unpack_q4_0, scale_d_q4_0)
LODE_GEMM_TILED(q4_0, q8_0, avx2, q4_0_cols)

static inline float scale_d_q5_0(const block_q5_0 *x) { return fp16(x->d); }
/* (nibble | bit<<4) - 16: OR 0xf0 into bytes whose fifth bit is clear. */
static inline __m256i unpack_q5_0(const block_q5_0 *x) {
    const __m256i hi = _mm256_andnot_si256(bits_32(x->qh), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles_32(x->qs), hi);
}
Q8_0_COLS(q5_0_cols, block_q5_0, unpack_q5_0, scale_d_q5_0)
LODE_GEMM_TILED(q5_0, q8_0, avx2, q5_0_cols)

static inline float scale_d_q8_0(const block_q8_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q8_0(const block_q8_0 *x) {
    return _mm256_loadu_si256((const __m256i *)x->qs);
}
Q8_0_COLS(q8_0_cols, block_q8_0, unpack_q8_0, scale_d_q8_0)
LODE_GEMM_TILED(q8_0, q8_0, avx2, q8_0_cols)

/* ---- Q4_K x Q8_K ----
 * Per 64 elements: maddubs(nibbles, q8) gives i16 pair sums, madd with the sub-block scale
 * (broadcast i16) gives i32. The mins: sum_j min_j * (bsum_2j + bsum_2j+1) via hadd + madd. */

/* Q4_K / Q5_K: [8 scales | 8 mins] as i16, moved over from general registers (see
 * lode_scales_mins_k4_words), and the scale of sub-block s broadcast to 16 lanes by pshufb. */
static inline __m256i scales_mins_k4(const uint8_t *q) {
    uint32_t w0, w1, w2, w3;
    lode_scales_mins_k4_words(q, &w0, &w1, &w2, &w3);
    return _mm256_cvtepu8_epi16(_mm_set_epi32((int)w3, (int)w2, (int)w1, (int)w0));
}
static inline __m256i scale_k4(__m256i sm16, int s) {
    const __m256i lo = _mm256_permute2x128_si256(sm16, sm16, 0x00);
    return _mm256_shuffle_epi8(lo, _mm256_set1_epi16((short)((2 * s) | ((2 * s + 1) << 8))));
}

LODE_ALWAYS_INLINE void q4k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q4_K *x = vw;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[4];
    __m128 accm[4];
    for (int c = 0; c < nc; ++c) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = _mm_setzero_ps();
    }
    for (size_t i = 0; i < n / QK_K; ++i) {
        const __m256i sm16 = scales_mins_k4(x[i].scales);
        const __m128i mins = _mm256_extracti128_si256(sm16, 1);
        const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);
        __m256i q[8], sc[8];
        for (int j = 0; j < 4; ++j) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            q[2 * j] = _mm256_and_si256(b, m4);
            q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        }
        for (int j = 0; j < 8; ++j) sc[j] = scale_k4(sm16, j);
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            const __m128i bsum = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            accm[c] = _mm_fmadd_ps(_mm_set1_ps(y->d * dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bsum)), accm[c]);
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 8; ++j) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], qy)));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) {
        __m128 s = _mm_add_ps(accm[c], _mm_movehl_ps(accm[c], accm[c]));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        res[c] = hsum_ps(acc[c]) - _mm_cvtss_f32(s);
    }
}
LODE_GEMM_TILED(q4k, q8k, avx2, q4k_cols)

/* ---- Q5_K x Q8_K: Q4_K with the fifth bit of chunk j from bits 2j / 2j+1 of qh ---- */

LODE_ALWAYS_INLINE void q5k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q5_K *x = vw;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256 acc[4];
    __m128 accm[4];
    for (int c = 0; c < nc; ++c) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = _mm_setzero_ps();
    }
    for (size_t i = 0; i < n / QK_K; ++i) {
        const __m256i sm16 = scales_mins_k4(x[i].scales);
        const __m128i mins = _mm256_extracti128_si256(sm16, 1);
        const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);
        const __m256i hb = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i q[8], sc[8];
        for (int j = 0; j < 4; ++j) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4);
            q[2 * j] = _mm256_or_si256(_mm256_and_si256(b, m4), h0);
            q[2 * j + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4), h1);
        }
        for (int j = 0; j < 8; ++j) sc[j] = scale_k4(sm16, j);
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            const __m128i bsum = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            accm[c] = _mm_fmadd_ps(_mm_set1_ps(y->d * dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bsum)), accm[c]);
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 8; ++j) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], qy)));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) {
        __m128 s = _mm_add_ps(accm[c], _mm_movehl_ps(accm[c], accm[c]));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        res[c] = hsum_ps(acc[c]) - _mm_cvtss_f32(s);
    }
}
LODE_GEMM_TILED(q5k, q8k, avx2, q5k_cols)

/* ---- Q6_K x Q8_K ----
 * Unsigned 6-bit q (0..63) through maddubs; the -32 offset is applied once per column as
 * 32 * sum_j sc_j * bsum_j instead of per element. */

LODE_ALWAYS_INLINE void q6k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q6_K *x = vw;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    __m256 acc[4];
    for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = fp16(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i q[8], sc[8];
        for (int k = 0; k < 2; ++k) {
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * k));
            const __m256i l2 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * k + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * k));
            q[4 * k + 0] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
            q[4 * k + 1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
            q[4 * k + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
            q[4 * k + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
        }
        for (int j = 0; j < 8; ++j)
            sc[j] = _mm256_set_m128i(_mm_set1_epi16(x[i].scales[2 * j + 1]), _mm_set1_epi16(x[i].scales[2 * j]));
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5); /* 32 * sc * bsum */
            sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
            for (int j = 0; j < 8; ++j) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], qy)));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(q6k, q8k, avx2, q6k_cols)

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
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);           \
        __m256 acc[4], accm[4];                                                            \
        for (int c = 0; c < nc; ++c) acc[c] = accm[c] = _mm256_setzero_ps();               \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            const __m256i qx = UNPACK(&x[i]);                                              \
            const float dx = fp16(x[i].d), mx = fp16(x[i].m);                              \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);             \
                const float dy = fp16(y->d);                                               \
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(qx, qy), ones16); \
                const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, qy), ones16); \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy), _mm256_cvtepi32_ps(p), acc[c]); \
                accm[c] = _mm256_fmadd_ps(_mm256_set1_ps(mx * dy), _mm256_cvtepi32_ps(s), accm[c]); \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]) + hsum_ps(accm[c]);          \
    }

static inline __m256i unpack_q4_1(const block_q4_1 *x) { return nibbles_32(x->qs); }
Q8_0_MIN_COLS(q4_1_cols, block_q4_1, unpack_q4_1)
LODE_GEMM_TILED(q4_1, q8_0, avx2, q4_1_cols)

static inline __m256i unpack_q5_1(const block_q5_1 *x) {
    return _mm256_or_si256(nibbles_32(x->qs), _mm256_and_si256(bits_32(x->qh), _mm256_set1_epi8(0x10)));
}
Q8_0_MIN_COLS(q5_1_cols, block_q5_1, unpack_q5_1)
LODE_GEMM_TILED(q5_1, q8_0, avx2, q5_1_cols)

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
        for (int c = 0; c < nc; ++c) res[c] = hsum_ps(_mm256_add_ps(acc1[c], acc2[c]));    \
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
LODE_GEMM_TILED(iq4nl, q8_0, avx2, iq4nl_cols)

static inline float scale_e_mxfp4(const block_mxfp4 *x) { return lode_e8m0_to_fp32_half(x->e); }
LUT_COLS(mxfp4_cols, block_mxfp4, lode_kvalues_mxfp4, scale_e_mxfp4)
LODE_GEMM_TILED(mxfp4, q8_0, avx2, mxfp4_cols)

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
            __m256i sumi = _mm256_setzero_si256();
            for (int s = 0; s < 8; ++s) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * s));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[s], _mm256_maddubs_epi16(q[s], qy)));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(q2k, q8k, avx2, q2k_cols)

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
            __m256i sumi = _mm256_setzero_si256();
            for (int s = 0; s < 8; ++s) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * s));
                const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q[s], q[s]), _mm256_sign_epi8(qy, q[s]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[s], p16));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(q3k, q8k, avx2, q3k_cols)

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
            __m256i sumi = _mm256_setzero_si256();
            for (int ib = 0; ib < 8; ++ib) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * ib));
                const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q[ib], q[ib]), _mm256_sign_epi8(qy, q[ib]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, sc[ib]));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(xd * y->d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(iq4xs, q8k, avx2, iq4xs_cols)

/* ---- F32 / F16 / BF16 x F32: 16 elements per step, two accumulators per column ---- */

#define FLOAT_COLS(NAME, T, LOAD8, SCALAR)                                                  \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const T *x = vw;                                                                   \
        __m256 acc0[4], acc1[4];                                                           \
        for (int c = 0; c < nc; ++c) acc0[c] = acc1[c] = _mm256_setzero_ps();              \
        size_t i = 0;                                                                      \
        for (; i + 16 <= n; i += 16) {                                                     \
            const __m256 w0 = LOAD8(x + i), w1 = LOAD8(x + i + 8);                         \
            for (int c = 0; c < nc; ++c) {                                                 \
                const float *y = (const float *)va[c] + i;                                 \
                acc0[c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y), acc0[c]);                \
                acc1[c] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(y + 8), acc1[c]);            \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            float s = hsum_ps(_mm256_add_ps(acc0[c], acc1[c]));                            \
            const float *y = (const float *)va[c];                                         \
            for (size_t k = i; k < n; ++k) s += SCALAR(x[k]) * y[k];                       \
            res[c] = s;                                                                    \
        }                                                                                  \
    }

static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline float id_f32(float v) { return v; }
FLOAT_COLS(f32_cols, float, load8_f32, id_f32)
LODE_GEMM_TILED(f32, f32, avx2, f32_cols)

static inline __m256 load8_f16(const lode_half *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
FLOAT_COLS(f16_cols, lode_half, load8_f16, lode_fp16_to_fp32)
LODE_GEMM_TILED(f16, f32, avx2, f16_cols)

static inline __m256 load8_bf16(const uint16_t *p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
FLOAT_COLS(bf16_cols, uint16_t, load8_bf16, lode_bf16_to_fp32)
LODE_GEMM_TILED(bf16, f32, avx2, bf16_cols)

/* ---- quantizers: same bytes as scalar.c ---- */

static inline float hmax_ps(__m256 x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

void quantize_row_q8_0_avx2(size_t n, const float *x, void *vy) {
    block_q8_0 *y = vy;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (size_t i = 0; i < n / QK32; ++i, x += QK32) {
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_and_ps(v[k], abs_mask));
        }
        /* ggml's x86 run-time rounding (see lode_quantize_q8_0_block): 127/amax, ties to even */
        const float amax = hmax_ps(mx);
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = lode_fp32_to_fp16(d);
        __m256i q[4];
        for (int k = 0; k < 4; ++k)
            q[k] = _mm256_cvttps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)),
                                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        /* pack i32 -> i16 -> i8 and undo the in-lane interleave of the packs */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[i].qs, p);
    }
}

void quantize_row_q8_k_avx2(size_t n, const float *x, void *vy) {
    block_q8_K *y = vy;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (size_t i = 0; i < n / QK_K; ++i, x += QK_K) {
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask));
        const float amax = hmax_ps(mx);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float max = 0.0f; /* the first element of largest magnitude, with its sign */
        for (int j = 0; j < QK_K; ++j)
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        const float iscale = -127.0f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            /* cvtps rounds half to even like lode_nearest_int (default MXCSR) */
            for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + k + 8 * j)));
            for (int j = 0; j < 4; ++j) q[j] = _mm256_min_epi32(q[j], _mm256_set1_epi32(127));
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), p);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- batched gemm ----
 * gemm_tiled_<W>_q8k (scalar.c has the spec): the exact block integers of q4k_cols /
 * q5k_cols / q6k_cols above, summed across lanes, then llama.cpp's tiled float steps
 * (LODE_GEMM_KTILED in common.h) over 8 columns per weight-block unpack. */

static inline int32_t hsum_epi32_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline int32_t hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

#define KQ45_TBLK(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(const BLOCK *x, const block_q8_K *const *ys, int nc,       \
                                 int32_t *is, int32_t *ms) {                               \
        const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);              \
        uint8_t sm[16];                                                                    \
        lode_unpack_scales_mins_k4(x->scales, sm);                                         \
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8))); \
        __m256i q[8], sc[8];                                                               \
        for (int j = 0; j < 4; ++j) {                                                      \
            const __m256i b = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));       \
            q[2 * j] = _mm256_and_si256(b, m4);                                            \
            q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);                  \
            if (FIVE) {                                                                    \
                const __m256i hb = _mm256_loadu_si256((const __m256i *)((const uint8_t *)x + 16)); \
                q[2 * j] = _mm256_or_si256(q[2 * j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4)); \
                q[2 * j + 1] = _mm256_or_si256(q[2 * j + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4)); \
            }                                                                              \
        }                                                                                  \
        for (int j = 0; j < 8; ++j) sc[j] = _mm256_set1_epi16(sm[j]);                      \
        for (int c = 0; c < nc; ++c) {                                                     \
            const block_q8_K *y = ys[c];                                                   \
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);              \
            const __m128i bsum = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)); \
            ms[c] = hsum_epi32_128(_mm_madd_epi16(mins, bsum));                            \
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();              \
            for (int j = 0; j < 8; j += 2) {                                               \
                const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));  \
                const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j + 32)); \
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], y0))); \
                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(sc[j + 1], _mm256_maddubs_epi16(q[j + 1], y1))); \
            }                                                                              \
            is[c] = hsum_epi32_256(_mm256_add_epi32(s0, s1));                              \
        }                                                                                  \
    }

KQ45_TBLK(q4k_tblk, block_q4_K, 0)
LODE_GEMM_KTILED(q4k, avx2, block_q4_K, q4k_tblk, 1, dmin, 8)

KQ45_TBLK(q5k_tblk, block_q5_K, 1)
LODE_GEMM_KTILED(q5k, avx2, block_q5_K, q5k_tblk, 1, dmin, 8)

LODE_ALWAYS_INLINE void q6k_tblk(const block_q6_K *x, const block_q8_K *const *ys, int nc, int32_t *is,
                                 int32_t *ms) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    __m256i q[8], sc[8];
    for (int k = 0; k < 2; ++k) {
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * k));
        const __m256i l2 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * k + 32));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * k));
        q[4 * k + 0] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
        q[4 * k + 1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
        q[4 * k + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
        q[4 * k + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
    }
    for (int j = 0; j < 8; ++j)
        sc[j] = _mm256_set_m128i(_mm_set1_epi16(x->scales[2 * j + 1]), _mm_set1_epi16(x->scales[2 * j]));
    for (int c = 0; c < nc; ++c) {
        const block_q8_K *y = ys[c];
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
        __m256i s0 = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        __m256i s1 = _mm256_setzero_si256();
        for (int j = 0; j < 8; j += 2) {
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j + 32));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], y0)));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(sc[j + 1], _mm256_maddubs_epi16(q[j + 1], y1)));
        }
        is[c] = hsum_epi32_256(_mm256_add_epi32(s0, s1));
        ms[c] = 0;
    }
}
LODE_GEMM_KTILED(q6k, avx2, block_q6_K, q6k_tblk, 0, d, 8)

/* ggml_dot_f32 (scalar.c has the spec): each 16-lane ggml accumulator as two ymm. */
float ggml_dot_f32_avx2(size_t n, const float *x, const float *y) {
    const size_t np = n & ~(size_t)63;
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    for (size_t i = 0; i < np; i += 64)
        for (int j = 0; j < 8; ++j)
            acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), _mm256_loadu_ps(y + i + 8 * j), acc[j]);
    /* s16 = (a0 + a2) + (a1 + a3), as halves lo (lanes 0..7) and hi (8..15) */
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    const __m256 t8 = _mm256_add_ps(lo, hi);
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    float s = _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
    for (size_t i = np; i < n; ++i) s += x[i] * y[i];
    return s;
}

/* ggml_fma_row (scalar.c has the spec) */
void ggml_fma_row_avx2(size_t n, float *acc, const float *x, float p) {
    const __m256 vp = _mm256_set1_ps(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vp, _mm256_loadu_ps(acc + i)));
    for (; i < n; ++i) acc[i] = fmaf(x[i], p, acc[i]);
}
/* ---- attention: attn_axpy (see scalar.c), 16 elements x up to 4 heads in registers ---- */

/* Rows stream in order, four at a time (four streams for the prefetchers; V rows are one
 * head of a cache cell, a whole cell apart, so a column-blocked order would touch every
 * row's page for each chunk), and the accumulators of up to 4 heads stay in L1: each
 * accumulator chunk is loaded and stored once per four rows. */
#define ATTN_AXPY(NAME, LOAD16, SCALAR_TAIL)                                                   \
    void NAME(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,         \
              size_t p_stride, size_t nh, float *acc, size_t acc_stride) {                     \
        const size_t nw = n / 16 * 16;                                                        \
        for (size_t h0 = 0; h0 < nh; h0 += 4) {                                                \
            const size_t hn = nh - h0 < 4 ? nh - h0 : 4;                                       \
            size_t j = 0;                                                                      \
            for (; j + 4 <= nk; j += 4) {                                                      \
                const char *row[4];                                                            \
                float w[4][4];                                                                 \
                for (int r = 0; r < 4; ++r) row[r] = (const char *)v + (j + r) * v_row_stride; \
                for (size_t h = 0; h < hn; ++h)                                                \
                    for (int r = 0; r < 4; ++r) w[h][r] = p[(h0 + h) * p_stride + j + r];      \
                for (size_t i = 0; i < nw; i += 16) {                                         \
                    __m256 x0[4], x1[4];                                                       \
                    float d[4];                                                                \
                    for (int r = 0; r < 4; ++r) LOAD16(row[r], i, &x0[r], &x1[r], &d[r]);      \
                    for (size_t h = 0; h < hn; ++h) {                                          \
                        float *a = acc + (h0 + h) * acc_stride + i;                            \
                        __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8);                  \
                        for (int r = 0; r < 4; ++r) {                                          \
                            const __m256 wv = _mm256_set1_ps(w[h][r] * d[r]);                     \
                            a0 = _mm256_fmadd_ps(wv, x0[r], a0);                                \
                            a1 = _mm256_fmadd_ps(wv, x1[r], a1);                                \
                        }                                                                      \
                        _mm256_storeu_ps(a, a0);                                               \
                        _mm256_storeu_ps(a + 8, a1);                                         \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            for (; j < nk; ++j) {                                                              \
                const char *row = (const char *)v + j * v_row_stride;                          \
                float w[4];                                                                    \
                for (size_t h = 0; h < hn; ++h) w[h] = p[(h0 + h) * p_stride + j];             \
                for (size_t i = 0; i < nw; i += 16) {                                         \
                    __m256 x0, x1;                                                             \
                    float d;                                                                   \
                    LOAD16(row, i, &x0, &x1, &d);                                              \
                    for (size_t h = 0; h < hn; ++h) {                                          \
                        float *a = acc + (h0 + h) * acc_stride + i;                            \
                        const __m256 wv = _mm256_set1_ps(w[h] * d);                               \
                        _mm256_storeu_ps(a, _mm256_fmadd_ps(wv, x0, _mm256_loadu_ps(a)));      \
                        _mm256_storeu_ps(a + 8, _mm256_fmadd_ps(wv, x1, _mm256_loadu_ps(a + 8))); \
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

static inline void attn_load16_f32(const void *row, size_t i, __m256 *x0, __m256 *x1, float *d) {
    const float *x = (const float *)row + i;
    *x0 = _mm256_loadu_ps(x);
    *x1 = _mm256_loadu_ps(x + 8);
    *d = 1.0f;
}
static inline float attn_elem_f32(const void *row, size_t i) { return ((const float *)row)[i]; }
ATTN_AXPY(attn_axpy_f32_avx2, attn_load16_f32, attn_elem_f32)

static inline void attn_load16_f16(const void *row, size_t i, __m256 *x0, __m256 *x1, float *d) {
    const lode_half *x = (const lode_half *)row + i;
    *x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x));
    *x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 8)));
    *d = 1.0f;
}
static inline float attn_elem_f16(const void *row, size_t i) {
    return lode_fp16_to_fp32(((const lode_half *)row)[i]);
}
ATTN_AXPY(attn_axpy_f16_avx2, attn_load16_f16, attn_elem_f16)

/* q8_0: n is a multiple of 32, so a 16-element step never straddles a block */
static inline void attn_load16_q8_0(const void *row, size_t i, __m256 *x0, __m256 *x1, float *d) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    const __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + i % QK32));
    *x0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    *x1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    *d = _cvtsh_ss(b->d);
}
static inline float attn_elem_q8_0(const void *row, size_t i) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    return lode_fp16_to_fp32(b->d) * (float)b->qs[i % QK32];
}
ATTN_AXPY(attn_axpy_q8_0_avx2, attn_load16_q8_0, attn_elem_q8_0)
