/* avx2.c: AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c only).
 *
 * Each `*_cols` function computes one weight row against 1..4 activation columns
 * (LODE_GEMM_TILED in common.h builds vec_dot and gemm from it): the weight block is loaded
 * and unpacked once, then multiplied into every column. Integer block dots are exact
 * (maddubs cannot saturate: |u8| <= 127 or <= 63 times |i8| <= 127); only the float
 * accumulation order differs from scalar.c. The kernels avx512.c runs on 256-bit code too
 * live in x86.h, compiled into both files.
 */
#include <immintrin.h>

#include "common.h"
#include "kernels.h"

#define LODE_SUFFIX avx2

/* ---- the primitives x86.h builds on (see there), from maddubs + madd ---- */

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

/* unsigned x signed bytes -> 8 i32 lanes of sums of 4 products (maddubs does not saturate
 * for the kernels' ranges, see x86.h). */
static inline __m256i dot_u8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* acc + madd(a, b): i16 pair products summed into 8 i32 lanes. */
static inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

/* ---- the float vector of x86.h's float kernels: __m256 ---- */

typedef __m256 vf;
typedef __m128i vhalf;
#define VF_LANES 8
#define VF(op) _mm256_##op
#define VF_CAST_PS _mm256_castsi256_ps
#define VF_FOLD256(v) (v)

#include "x86.h"

/* ---- 32-element types x Q8_0: weights unpacked to signed bytes, then dot_i8 per column ---- */

#define Q8_0_COLS(W, BLOCK, UNPACK, SCALE)                                                  \
    LODE_ALWAYS_INLINE void W##_cols(size_t n, const void *vw, const void *const *va, int nc, \
                                     float *res) {                                         \
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
    }                                                                                      \
    /* one column over nr rows (LODE_MATVEC_FAR), per row the same operations */          \
    LODE_ALWAYS_INLINE void W##_rows(size_t n, const void *const *vw, int nr, const void *va, \
                                     float *res) {                                         \
        __m256 acc[LODE_FAR];                                                              \
        for (int r = 0; r < nr; ++r) acc[r] = _mm256_setzero_ps();                         \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            const block_q8_0 *y = (const block_q8_0 *)va + i;                              \
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);                 \
            for (int r = 0; r < nr; ++r) {                                                 \
                const BLOCK *x = (const BLOCK *)vw[r] + i;                                 \
                LODE_PREFETCH_AHEAD(x, sizeof(BLOCK));                                     \
                const __m256 p = _mm256_cvtepi32_ps(dot_i8(UNPACK(x), qy));                \
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(SCALE(x) * fp16(y->d)), p, acc[r]); \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < nr; ++r) res[r] = hsum_ps(acc[r]);                             \
    }                                                                                      \
    LODE_MATVEC_FAR(W##_far, W##_rows)                                                     \
    LODE_GEMM_TILED_MV(W, q8_0, avx2, W##_cols, W##_far)

Q8_0_COLS(q4_0, block_q4_0, unpack_q4_0, scale_d_q4_0)
Q8_0_COLS(q5_0, block_q5_0, unpack_q5_0, scale_d_q5_0)
Q8_0_COLS(q8_0, block_q8_0, unpack_q8_0, scale_d_q8_0)

/* ---- Q4_K / Q5_K / Q6_K x Q8_K: the block unpacking and integer dot of x86.h's K-quant
 * kernels (which do the scales, mins and float order) ---- */

/* Q4_K / Q5_K as 8 chunks of 32, chunk j = sub-block j: the low nibbles of qs[32k..32k+32]
 * are sub-block 2k, the high ones 2k+1, and `five` ORs in the Q5_K fifth bit (bit j of the
 * 32 qh bytes). Per chunk maddubs(quants, q8) gives i16 pair sums, madd with the sub-block
 * scale (broadcast to 16 lanes by pshufb) gives i32. */
typedef __m256i kq45_vec;
#define KQ45_VECS 8
static inline __m256i q5k_bit4(__m256i qh, int bit) {
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, bit), _mm256_set1_epi8(1)), 4);
}
LODE_ALWAYS_INLINE void kq45_unpack(const uint8_t *qs, const uint8_t *qh, int five, __m256i sm16, __m256i q[8],
                                    __m256i sc[8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
        const __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        q[2 * k] = _mm256_and_si256(b, m4);
        q[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        if (five) {
            const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            q[2 * k] = _mm256_or_si256(q[2 * k], q5k_bit4(hb, 2 * k));
            q[2 * k + 1] = _mm256_or_si256(q[2 * k + 1], q5k_bit4(hb, 2 * k + 1));
        }
    }
    const __m256i lo = _mm256_permute2x128_si256(sm16, sm16, 0x00);
    for (int j = 0; j < 8; ++j)
        sc[j] = _mm256_shuffle_epi8(lo, _mm256_set1_epi16((short)((2 * j) | ((2 * j + 1) << 8))));
}
LODE_ALWAYS_INLINE __m256i kq45_dot(const __m256i q[8], const __m256i sc[8], const block_q8_K *y) {
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], qy)));
    }
    return sumi;
}

/* The matvec's (KQ45_ROWS') column: AVX2 reads it from memory per row (16 registers). */
typedef struct { const block_q8_K *y; } kq45_col;
LODE_ALWAYS_INLINE void kq45_col_load(const block_q8_K *y, kq45_col *c) { c->y = y; }
#define kq45_unpack_nib kq45_unpack
LODE_ALWAYS_INLINE __m256i kq45_dot_col(const __m256i q[8], const __m256i sc[8], const kq45_col *c, int five) {
    (void)five;
    return kq45_dot(q, sc, c->y);
}

/* Q6_K: unsigned 6-bit q (0..63) as 8 chunks of 32 (chunk j = sub-blocks 2j, 2j+1) through
 * maddubs, the two i16 scales of a chunk per 128-bit half. */
typedef __m256i q6k_vec;
#define Q6K_VECS 8
LODE_ALWAYS_INLINE void q6k_unpack(const block_q6_K *x, __m256i sc16, __m256i q[8], __m256i sc[8]) {
    (void)sc16; /* the scales are broadcast straight from the block */
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
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
}
LODE_ALWAYS_INLINE __m256i q6k_dot(const __m256i q[8], const __m256i sc[8], const block_q8_K *y, __m256i off) {
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), off);
    for (int j = 0; j < 8; ++j) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc[j], _mm256_maddubs_epi16(q[j], qy)));
    }
    return sumi;
}

X86_K_QUANT_KERNELS()
