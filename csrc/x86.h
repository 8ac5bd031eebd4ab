/* x86.h: the kernel source avx2.c and avx512.c share, compiled into each file under that
 * file's own flags (the file boundary stays the compile-flag boundary). A fix here lands in
 * both, and both keep giving the same bits where tests/kernels.rs asks for it
 * (avx512_equals_avx2_bit_for_bit). scalar.c is the spec. What is here:
 *   - 256-bit kernels both files run: Q4_1, Q5_1, IQ4_NL, MXFP4, Q2_K, Q3_K, IQ4_XS (rare in
 *     Gemma GGUFs, so AVX-512 gets no 512-bit unpacking for them) and the Q8_0 / Q8_K
 *     quantizers, in ggml's AVX2 float order;
 *   - the Q4_K / Q5_K / Q6_K kernels around each file's block unpacking and integer dot
 *     (X86_K_QUANT_KERNELS, see there);
 *   - float kernels over the file's float vector: F32 / F16 / BF16 weights, ggml_dot_f32,
 *     ggml_fma_row and attn_axpy.
 *
 * Included once by each file, after it defines
 *   LODE_SUFFIX                              avx2 / avx512: the suffix of the exported names
 *   __m256i bits_32(const uint8_t *p)        32 bits -> 32 bytes, 0xff where bit j is set
 *   __m256i dot_u8(__m256i u, __m256i s)     unsigned u x signed s bytes -> 8 i32 lanes,
 *                                            each the sum of 4 products
 *   __m256i madd_acc(__m256i acc, __m256i a, __m256i b)   acc + _mm256_madd_epi16(a, b)
 *   vf, vhalf, VF_LANES, VF(op), VF_CAST_PS, VF_FOLD256   its float vector (see the float
 *                                            kernels below)
 * AVX2 builds the integer primitives from maddubs + madd (exact here: u <= 128 and
 * |s| <= 127, so no pair sum saturates i16), AVX-512 from VNNI dpbusd / dpwssd: the same
 * integers. Everything here is static (or a macro the file expands): each object file keeps
 * its own copy, so the linker can never hand the AVX2 path an AVX-512 instruction.
 */
#ifndef LODE_SUFFIX
#error "define LODE_SUFFIX (avx2 or avx512) before including x86.h"
#endif
#define X86_CAT2(a, b) a##_##b
#define X86_CAT(a, b) X86_CAT2(a, b)
#define X86_FN(name) X86_CAT(name, LODE_SUFFIX)

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

/* signed x signed bytes -> 8 i32 lanes of sums of 4 products: |x| times y with x's sign. */
static inline __m256i dot_i8(__m256i x, __m256i y) {
    return dot_u8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* ---- pieces of the Q4_K / Q5_K / Q6_K kernels of both files ---- */

/* the sum of 4 i32 lanes */
static inline int32_t hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* Q4_K / Q5_K: [8 scales | 8 mins] as i16, lode_unpack_scales_mins_k4's 16 bytes computed in
 * one vector from the 12 (a 16-byte load inside the block: the scales are followed by qs).
 * Words 0 and 2 are u0 / u1 & 0x3f; words 1 and 3 the low / high nibbles of u2 with the top two
 * bits of u0 / u1 above them. (Moving four words over from general registers takes a movd and
 * three pinsrd per block; a byte array read back as a vector stalled on store forwarding.
 * With KQ45_ROWS' mins change, the Q4_K matvec ran 2-3 % faster from L2 in a throwaway driver:
 * a lead; the model-level numbers are docs/performance.md's.) */
static inline __m256i scales_mins_k4(const uint8_t *q) {
    const __m128i v = _mm_loadu_si128((const __m128i *)q);
    const __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)); /* u0 u2 u1 u2 */
    const __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)); /* u0 u0 u1 u1 */
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                                     _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m128i hi = _mm_slli_epi32(
        _mm_and_si128(_mm_srli_epi32(b, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303)), 4);
    return _mm256_cvtepu8_epi16(_mm_or_si128(lo, hi));
}

/* The Q8_K block sums of 16 elements added in pairs: the sums of the 8 sub-blocks of 32. */
static inline __m128i bsums_32(const block_q8_K *y) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    return _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
}

/* Q4_K / Q5_K mins term of one column: accm + y.d * dmin * (the 8 i16 mins x bsums_32), 4 lanes */
static inline __m128 kq_mins_fma(const block_q8_K *y, __m128i mins, float dmin, __m128 accm) {
    return _mm_fmadd_ps(_mm_set1_ps(y->d * dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bsums_32(y))), accm);
}

/* Q4_K / Q5_K result of one column: the 8 lanes of the scales term minus the 4 of the mins. */
static inline float kq_minus_mins(__m256 acc, __m128 accm) {
    __m128 s = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return hsum_ps(acc) - _mm_cvtss_f32(s);
}

/* Q6_K: the 16 scales as i16, and the -32 offset of one column as 8 i32 lanes of
 * 32 * sc_j * bsum_j (applied once per column instead of per element). */
static inline __m256i q6k_scales16(const block_q6_K *x) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
}
static inline __m256i q6k_offset(const block_q8_K *y, __m256i sc16) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    return _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
}

/* The sum of 8 i32 lanes. */
static inline int32_t hsum_epi32_256(__m256i v) {
    return hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* ---- Q4_K / Q5_K / Q6_K x Q8_K: vec_dot, gemm and gemm_tiled of both files ----
 * What is the same on both: per block the scales and mins, per column the mins term through
 * the bsums, the float accumulation in ggml's order (8 lanes, one FMA per block, hsum at the
 * end) and llama.cpp's tiled float steps (LODE_GEMM_KTILED). The file supplies the block
 * unpacking and the integer dot, which give the same exact integers on both:
 *   kq45_unpack(qs, qh, five, sm16, q, sc)   a Q4_K / Q5_K block (qh: Q5_K's, if five) as
 *                                            KQ45_VECS vectors kq45_vec of quants q and i16
 *                                            sub-block scales sc (sm16 = scales_mins_k4)
 *   kq45_dot(q, sc, y)                       sum_j sc_j * (q_j . y_j) in 8 i32 lanes
 *   q6k_unpack(x, sc16, q, sc), q6k_dot(q, sc, y, off)   the same for Q6_K (sc16 =
 *                                            q6k_scales16), minus the offset lanes off
 * and then expands X86_K_QUANT_KERNELS(). */

/* Q4_K / Q5_K column kernel (see LODE_GEMM_TILED); FIVE: Q5_K, qh at byte 16 of the block */
#define KQ45_COLS(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        __m256 acc[4];                                                                     \
        __m128 accm[4];                                                                    \
        for (int c = 0; c < nc; ++c) {                                                     \
            acc[c] = _mm256_setzero_ps();                                                  \
            accm[c] = _mm_setzero_ps();                                                    \
        }                                                                                  \
        for (size_t i = 0; i < n / QK_K; ++i) {                                            \
            const __m256i sm16 = scales_mins_k4(x[i].scales);                              \
            const __m128i mins = _mm256_extracti128_si256(sm16, 1);                        \
            const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);                          \
            kq45_vec q[KQ45_VECS], sc[KQ45_VECS];                                          \
            kq45_unpack(x[i].qs, (const uint8_t *)&x[i] + 16, FIVE, sm16, q, sc);          \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_K *y = (const block_q8_K *)va[c] + i;                       \
                accm[c] = kq_mins_fma(y, mins, dmin, accm[c]);                             \
                const __m256 p = _mm256_cvtepi32_ps(kq45_dot(q, sc, y));                   \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), p, acc[c]);             \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = kq_minus_mins(acc[c], accm[c]);              \
    }

/* KQ45_COLS over NR rows of one column (LODE_MATVEC_FAR): per row the same operations. */
#define KQ45_ROWS(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *const *vw, int nr, const void *va,  \
                                 float *res) {                                             \
        /* rows in pairs (an odd last row paired with itself): the pair's mins terms in one \
         * 256-bit accumulator, row 2p's in lanes 0..3 of accm[p], row 2p + 1's in lanes    \
         * 4..7: one madd of both rows' mins with [bsums_32 | bsums_32], one conversion and \
         * one FMA by [dmin0 x 4 | dmin1 x 4] (times y->d), each lane kq_mins_fma's steps */ \
        enum { P_ = (LODE_FAR + 1) / 2 };                                                  \
        __m256 acc[2 * P_], accm[P_];                                                      \
        const int np = (nr + 1) / 2;                                                       \
        for (int r = 0; r < 2 * np; ++r) acc[r] = _mm256_setzero_ps();                     \
        for (int p = 0; p < np; ++p) accm[p] = _mm256_setzero_ps();                        \
        const __m256i dmin_idx = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3);                \
        const __m256i d1_idx = _mm256_set1_epi32(2);                                       \
        for (size_t i = 0; i < n / QK_K; ++i) {                                            \
            const block_q8_K *y = (const block_q8_K *)va + i;                              \
            const __m128i bs32 = bsums_32(y);                                              \
            const __m256i bs = _mm256_inserti128_si256(_mm256_castsi128_si256(bs32), bs32, 1); \
            const __m128 yd = _mm_set1_ps(y->d);                                           \
            kq45_col col;                                                                  \
            kq45_col_load(y, &col);                                                        \
            _Pragma("GCC unroll 8")                                                        \
            for (int p = 0; p < np; ++p) {                                                 \
                const BLOCK *x0 = (const BLOCK *)vw[2 * p] + i;                            \
                const BLOCK *x1 = (const BLOCK *)vw[2 * p + 1 < nr ? 2 * p + 1 : 2 * p] + i; \
                LODE_PREFETCH_AHEAD(x0, sizeof(BLOCK));                                    \
                if (2 * p + 1 < nr) LODE_PREFETCH_AHEAD(x1, sizeof(BLOCK));                \
                const __m256i sm0 = scales_mins_k4(x0->scales), sm1 = scales_mins_k4(x1->scales); \
                /* d and dmin of both rows in one conversion, each times y->d (the same f32 \
                 * products): [d0 dmin0 d1 dmin1] */                                       \
                uint32_t dd0, dd1;                                                         \
                memcpy(&dd0, &x0->d, 4);                                                   \
                memcpy(&dd1, &x1->d, 4);                                                   \
                const __m128 ds = _mm_mul_ps(_mm_cvtph_ps(_mm_setr_epi32((int)dd0, (int)dd1, 0, 0)), yd); \
                const __m256 ds8 = _mm256_castps128_ps256(ds);                             \
                accm[p] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(ds8, dmin_idx),         \
                                          _mm256_cvtepi32_ps(_mm256_madd_epi16(            \
                                              _mm256_permute2x128_si256(sm0, sm1, 0x31), bs)), \
                                          accm[p]);                                        \
                kq45_vec q[KQ45_VECS], sc[KQ45_VECS];                                      \
                kq45_unpack_nib(x0->qs, (const uint8_t *)x0 + 16, FIVE, sm0, q, sc);       \
                acc[2 * p] = _mm256_fmadd_ps(_mm256_broadcastss_ps(ds),                    \
                                             _mm256_cvtepi32_ps(kq45_dot_col(q, sc, &col, FIVE)), acc[2 * p]); \
                if (2 * p + 1 < nr) {                                                      \
                    kq45_unpack_nib(x1->qs, (const uint8_t *)x1 + 16, FIVE, sm1, q, sc);   \
                    acc[2 * p + 1] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(ds8, d1_idx), \
                                                     _mm256_cvtepi32_ps(kq45_dot_col(q, sc, &col, FIVE)), \
                                                     acc[2 * p + 1]);                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < nr; ++r)                                                       \
            res[r] = kq_minus_mins(acc[r], (r & 1) ? _mm256_extractf128_ps(accm[r / 2], 1)  \
                                                   : _mm256_castps256_ps128(accm[r / 2])); \
    }

/* The lane sums of 8 vectors of 8 i32 lanes, as one vector (lane c: the sum of v[c]); exact. */
static inline __m256i hsum8_epi32_256(const __m256i v[8]) {
    const __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                            _mm256_permute2x128_si256(u0, u1, 0x31));
}
/* The same for 8 vectors of 4 i32 lanes. */
static inline __m256i hsum8_epi32_128(const __m128i m[8]) {
    const __m128i lo = _mm_hadd_epi32(_mm_hadd_epi32(m[0], m[1]), _mm_hadd_epi32(m[2], m[3]));
    const __m128i hi = _mm_hadd_epi32(_mm_hadd_epi32(m[4], m[5]), _mm_hadd_epi32(m[6], m[7]));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Q4_K / Q5_K block integers for X86_GEMM_KTILED: the scales and mins sums of the column
 * kernel, summed across lanes (8 columns at once by hsum8, fewer one by one). */
#define KQ45_TBLK(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(const BLOCK *x, const block_q8_K *const *ys, int nc,       \
                                 int32_t *is, int32_t *ms) {                               \
        const __m256i sm16 = scales_mins_k4(x->scales);                                    \
        const __m128i mins = _mm256_extracti128_si256(sm16, 1);                            \
        kq45_vec q[KQ45_VECS], sc[KQ45_VECS];                                              \
        kq45_unpack(x->qs, (const uint8_t *)x + 16, FIVE, sm16, q, sc);                    \
        if (nc == 8) {                                                                     \
            __m256i v[8];                                                                  \
            __m128i m[8];                                                                  \
            for (int c = 0; c < 8; ++c) {                                                  \
                m[c] = _mm_madd_epi16(mins, bsums_32(ys[c]));                              \
                v[c] = kq45_dot(q, sc, ys[c]);                                             \
            }                                                                              \
            _mm256_storeu_si256((__m256i *)is, hsum8_epi32_256(v));                        \
            _mm256_storeu_si256((__m256i *)ms, hsum8_epi32_128(m));                        \
            return;                                                                        \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            ms[c] = hsum_epi32_128(_mm_madd_epi16(mins, bsums_32(ys[c])));                 \
            is[c] = hsum_epi32_256(kq45_dot(q, sc, ys[c]));                                \
        }                                                                                  \
    }

/* Q6_K column kernel and block integers: the -32 offset goes through the bsums (q6k_offset) */
#define Q6K_COLS(NAME)                                                                      \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const block_q6_K *x = vw;                                                          \
        __m256 acc[4];                                                                     \
        for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();                         \
        for (size_t i = 0; i < n / QK_K; ++i) {                                            \
            const float d = fp16(x[i].d);                                                  \
            const __m256i sc16 = q6k_scales16(&x[i]);                                      \
            q6k_vec q[Q6K_VECS], sc[Q6K_VECS];                                             \
            q6k_unpack(&x[i], sc16, q, sc);                                                \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_K *y = (const block_q8_K *)va[c] + i;                       \
                const __m256 p = _mm256_cvtepi32_ps(q6k_dot(q, sc, y, q6k_offset(y, sc16))); \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), p, acc[c]);             \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);                             \
    }
/* Q6K_COLS over NR rows of one column (LODE_MATVEC_FAR). */
#define Q6K_ROWS(NAME)                                                                      \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *const *vw, int nr, const void *va,  \
                                 float *res) {                                             \
        __m256 acc[LODE_FAR];                                                              \
        for (int r = 0; r < nr; ++r) acc[r] = _mm256_setzero_ps();                         \
        for (size_t i = 0; i < n / QK_K; ++i) {                                            \
            const block_q8_K *y = (const block_q8_K *)va + i;                              \
            _Pragma("GCC unroll 8")                                                        \
            for (int r = 0; r < nr; ++r) {                                                 \
                const block_q6_K *x = (const block_q6_K *)vw[r] + i;                       \
                LODE_PREFETCH_AHEAD(x, sizeof(block_q6_K));                                \
                const float d = fp16(x->d);                                                \
                const __m256i sc16 = q6k_scales16(x);                                      \
                q6k_vec q[Q6K_VECS], sc[Q6K_VECS];                                         \
                q6k_unpack(x, sc16, q, sc);                                                \
                const __m256 p = _mm256_cvtepi32_ps(q6k_dot(q, sc, y, q6k_offset(y, sc16))); \
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d), p, acc[r]);             \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < nr; ++r) res[r] = hsum_ps(acc[r]);                             \
    }
#define Q6K_TBLK(NAME)                                                                      \
    LODE_ALWAYS_INLINE void NAME(const block_q6_K *x, const block_q8_K *const *ys, int nc,  \
                                 int32_t *is, int32_t *ms) {                               \
        const __m256i sc16 = q6k_scales16(x);                                              \
        q6k_vec q[Q6K_VECS], sc[Q6K_VECS];                                                 \
        q6k_unpack(x, sc16, q, sc);                                                        \
        if (nc == 8) {                                                                     \
            __m256i v[8];                                                                  \
            for (int c = 0; c < 8; ++c) v[c] = q6k_dot(q, sc, ys[c], q6k_offset(ys[c], sc16)); \
            _mm256_storeu_si256((__m256i *)is, hsum8_epi32_256(v));                        \
            _mm256_storeu_si256((__m256i *)ms, _mm256_setzero_si256());                    \
            return;                                                                        \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            is[c] = hsum_epi32_256(q6k_dot(q, sc, ys[c], q6k_offset(ys[c], sc16)));        \
            ms[c] = 0;                                                                     \
        }                                                                                  \
    }

/* llama.cpp's tiled K-quant arithmetic (LODE_GEMM_KTILED in common.h states it per column):
 * for each group of 8 columns the per-(row, column) float steps run as 8 lanes of one vector,
 * the same operations with one rounding each (mul, fma, fma), so the same bits; the last
 * ncols % 8 columns go through the common macro (instantiated here as a static _tail_). */
/* A file with a faster tiled gemm of its own (avx512.c) defines X86_KTILED_NAME(W) and
 * X86_KTILED_LINK (static) before including this file; these then serve its leftovers. */
#ifndef X86_KTILED_NAME
#define X86_KTILED_NAME(W) X86_FN(gemm_tiled_##W##_q8k)
#define X86_KTILED_LINK
#endif
#define X86_GEMM_KTILED(W, BLOCK, BLK, HAS_MIN, DMIN)                                       \
    static LODE_GEMM_KTILED(W, X86_CAT(tail, LODE_SUFFIX), BLOCK, BLK, HAS_MIN, DMIN, 8)     \
    X86_KTILED_LINK void X86_KTILED_NAME(W)(size_t n, const void *w, size_t w_row_stride,  \
                                      size_t nrows, const void *a, size_t a_row_stride,    \
                                      size_t ncols, float *out, size_t out_col_stride) {   \
        const size_t full = ncols - ncols % 8;                                             \
        for (size_t c0 = 0; c0 < full; c0 += 8) {                                          \
            const block_q8_K *cols[8];                                                     \
            for (int c = 0; c < 8; ++c)                                                    \
                cols[c] = (const block_q8_K *)((const char *)a + (c0 + c) * a_row_stride); \
            for (size_t r = 0; r < nrows; ++r) {                                           \
                const BLOCK *x = (const BLOCK *)((const char *)w + r * w_row_stride);      \
                __m256 acc = _mm256_setzero_ps();                                          \
                for (size_t i = 0; i < n / QK_K; ++i) {                                    \
                    int32_t is[8], ms[8];                                                  \
                    const block_q8_K *ys[8];                                               \
                    for (int c = 0; c < 8; ++c) ys[c] = cols[c] + i;                       \
                    BLK(&x[i], ys, 8, is, ms);                                             \
                    __m256 rv = _mm256_mul_ps(                                             \
                        _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)is)),       \
                        _mm256_set1_ps(fp16(x[i].d)));                                     \
                    if (HAS_MIN)                                                           \
                        rv = _mm256_fmadd_ps(                                              \
                            _mm256_set1_ps(-fp16(x[i].DMIN)),                              \
                            _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)ms)), rv); \
                    const __m256 dy = _mm256_set_ps(ys[7]->d, ys[6]->d, ys[5]->d, ys[4]->d, \
                                                    ys[3]->d, ys[2]->d, ys[1]->d, ys[0]->d); \
                    acc = _mm256_fmadd_ps(rv, dy, acc);                                    \
                }                                                                          \
                float res[8];                                                              \
                _mm256_storeu_ps(res, acc);                                                \
                for (int c = 0; c < 8; ++c) out[(c0 + c) * out_col_stride + r] = res[c];   \
            }                                                                              \
        }                                                                                  \
        if (full < ncols)                                                                  \
            X86_FN(gemm_tiled_##W##_q8k_tail)(n, w, w_row_stride, nrows,                   \
                                              (const char *)a + full * a_row_stride,       \
                                              a_row_stride, ncols - full,                  \
                                              out + full * out_col_stride, out_col_stride); \
    }

#define X86_K_QUANT_KERNELS()                                                               \
    KQ45_COLS(q4k_cols, block_q4_K, 0)                                                      \
    KQ45_ROWS(q4k_rows, block_q4_K, 0)                                                      \
    LODE_MATVEC_FAR(q4k_far, q4k_rows)                                                      \
    LODE_GEMM_TILED_MV(q4k, q8k, LODE_SUFFIX, q4k_cols, q4k_far)                            \
    KQ45_COLS(q5k_cols, block_q5_K, 1)                                                      \
    KQ45_ROWS(q5k_rows, block_q5_K, 1)                                                      \
    LODE_MATVEC_FAR(q5k_far, q5k_rows)                                                      \
    LODE_GEMM_TILED_MV(q5k, q8k, LODE_SUFFIX, q5k_cols, q5k_far)                            \
    Q6K_COLS(q6k_cols)                                                                      \
    Q6K_ROWS(q6k_rows)                                                                      \
    LODE_MATVEC_FAR(q6k_far, q6k_rows)                                                      \
    LODE_GEMM_TILED_MV(q6k, q8k, LODE_SUFFIX, q6k_cols, q6k_far)                            \
    KQ45_TBLK(q4k_tblk, block_q4_K, 0)                                                      \
    X86_GEMM_KTILED(q4k, block_q4_K, q4k_tblk, 1, dmin)                    \
    KQ45_TBLK(q5k_tblk, block_q5_K, 1)                                                      \
    X86_GEMM_KTILED(q5k, block_q5_K, q5k_tblk, 1, dmin)                    \
    Q6K_TBLK(q6k_tblk)                                                                      \
    X86_GEMM_KTILED(q6k, block_q6_K, q6k_tblk, 0, d)

/* ---- one block of Q4_0 / Q5_0 / Q8_0 as 32 signed bytes, and its scale ---- */

static inline float scale_d_q4_0(const block_q4_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q4_0(const block_q4_0 *x) {
    return _mm256_sub_epi8(nibbles_32(x->qs), _mm256_set1_epi8(8));
}
static inline float scale_d_q5_0(const block_q5_0 *x) { return fp16(x->d); }
/* (nibble | bit<<4) - 16: OR 0xf0 into bytes whose fifth bit is clear. */
static inline __m256i unpack_q5_0(const block_q5_0 *x) {
    const __m256i hi = _mm256_andnot_si256(bits_32(x->qh), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles_32(x->qs), hi);
}
static inline float scale_d_q8_0(const block_q8_0 *x) { return fp16(x->d); }
static inline __m256i unpack_q8_0(const block_q8_0 *x) {
    return _mm256_loadu_si256((const __m256i *)x->qs);
}

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
        __m256 acc[4], accm[4];                                                            \
        for (int c = 0; c < nc; ++c) acc[c] = accm[c] = _mm256_setzero_ps();               \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            const __m256i qx = UNPACK(&x[i]);                                              \
            const float dx = fp16(x[i].d), mx = fp16(x[i].m);                              \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);             \
                const float dy = fp16(y->d);                                               \
                const __m256i p = dot_u8(qx, qy);                                          \
                const __m256i s = dot_u8(_mm256_set1_epi8(1), qy); /* y's block sum */     \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy), _mm256_cvtepi32_ps(p), acc[c]); \
                accm[c] = _mm256_fmadd_ps(_mm256_set1_ps(mx * dy), _mm256_cvtepi32_ps(s), accm[c]); \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]) + hsum_ps(accm[c]);          \
    }

static inline __m256i unpack_q4_1(const block_q4_1 *x) { return nibbles_32(x->qs); }
Q8_0_MIN_COLS(q4_1_cols, block_q4_1, unpack_q4_1)
LODE_GEMM_TILED(q4_1, q8_0, LODE_SUFFIX, q4_1_cols)

static inline __m256i unpack_q5_1(const block_q5_1 *x) {
    return _mm256_or_si256(nibbles_32(x->qs), _mm256_and_si256(bits_32(x->qh), _mm256_set1_epi8(0x10)));
}
Q8_0_MIN_COLS(q5_1_cols, block_q5_1, unpack_q5_1)
LODE_GEMM_TILED(q5_1, q8_0, LODE_SUFFIX, q5_1_cols)

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
LODE_GEMM_TILED(iq4nl, q8_0, LODE_SUFFIX, iq4nl_cols)

static inline float scale_e_mxfp4(const block_mxfp4 *x) { return lode_e8m0_to_fp32_half(x->e); }
LUT_COLS(mxfp4_cols, block_mxfp4, lode_kvalues_mxfp4, scale_e_mxfp4)
LODE_GEMM_TILED(mxfp4, q8_0, LODE_SUFFIX, mxfp4_cols)

/* ---- Q2_K / Q3_K x Q8_K, ggml's AVX2 order ----
 * A 32-byte vector of 2-bit fields, shifted by 2k, holds sub-blocks 8j+2k (low 16 bytes) and
 * 8j+2k+1 (high 16); the i16 scales of both are spread by one pshufb (ggml's
 * get_scale_shuffle_q3k). Per block one FMA of the integer lane sums (Q2_K: first one of the
 * mins against the bsums). The integer sums run as two chains (exact, so the order does not
 * matter): one chain of 8 dependent dpwssd per block ran Q3_K slower than AVX2's madd + add. */

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
                sumi2[s & 1] = madd_acc(sumi2[s & 1], sc[s], _mm256_maddubs_epi16(q[s], qy));
            }
            const __m256i sumi = _mm256_add_epi32(sumi2[0], sumi2[1]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(q2k, q8k, LODE_SUFFIX, q2k_cols)

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
                sumi2[s & 1] = madd_acc(sumi2[s & 1], sc[s], p16);
            }
            const __m256i sumi = _mm256_add_epi32(sumi2[0], sumi2[1]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(q3k, q8k, LODE_SUFFIX, q3k_cols)

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
                sumi2[ib & 1] = madd_acc(sumi2[ib & 1], p16, sc[ib]);
            }
            const __m256i sumi = _mm256_add_epi32(sumi2[0], sumi2[1]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(xd * y->d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = hsum_ps(acc[c]);
}
LODE_GEMM_TILED(iq4xs, q8k, LODE_SUFFIX, iq4xs_cols)

/* ---- quantizers: same bytes as scalar.c ---- */

static inline float hmax_ps(__m256 x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

void X86_FN(quantize_row_q8_0)(size_t n, const float *x, void *vy) {
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

void X86_FN(quantize_row_q8_k)(size_t n, const float *x, void *vy) {
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

/* ---- float kernels, written once for the float vector each file picks ----
 * F32 / F16 / BF16 weights, ggml_dot_f32, ggml_fma_row and attn_axpy. The file defines vf
 * (__m256 in avx2.c, __m512 in avx512.c), VF_LANES its floats, VF(op) its intrinsic
 * (VF(fmadd_ps) is _mm256_fmadd_ps / _mm512_fmadd_ps), vhalf the integer vector of VF_LANES
 * 16-bit values, VF_CAST_PS its integer -> float bit cast and VF_FOLD256(v) the sum of v's
 * 256-bit halves. */

static inline float vf_hsum(vf v) { return hsum_ps(VF_FOLD256(v)); }
/* VF_LANES elements -> floats */
static inline vf vf_load_f32(const float *p) { return VF(loadu_ps)(p); }
static inline vf vf_load_f16(const lode_half *p) {
    vhalf h;
    memcpy(&h, p, sizeof h);
    return VF(cvtph_ps)(h);
}
static inline vf vf_load_bf16(const uint16_t *p) {
    vhalf h;
    memcpy(&h, p, sizeof h);
    return VF_CAST_PS(VF(slli_epi32)(VF(cvtepu16_epi32)(h), 16));
}
static inline vf vf_load_i8(const int8_t *p) {
    __m128i q = _mm_setzero_si128();
    memcpy(&q, p, VF_LANES);
    return VF(cvtepi32_ps)(VF(cvtepi8_epi32)(q));
}

/* F32 / F16 / BF16 x F32: 2 * VF_LANES elements per step, two accumulators per column */
#define FLOAT_COLS(W, T, LOAD, SCALAR)                                                      \
    LODE_ALWAYS_INLINE void W##_cols(size_t n, const void *vw, const void *const *va, int nc, \
                                     float *res) {                                         \
        const T *x = vw;                                                                   \
        vf acc0[4], acc1[4];                                                               \
        for (int c = 0; c < nc; ++c) acc0[c] = acc1[c] = VF(setzero_ps)();                 \
        size_t i = 0;                                                                      \
        for (; i + 2 * VF_LANES <= n; i += 2 * VF_LANES) {                                 \
            const vf w0 = LOAD(x + i), w1 = LOAD(x + i + VF_LANES);                        \
            for (int c = 0; c < nc; ++c) {                                                 \
                const float *y = (const float *)va[c] + i;                                 \
                acc0[c] = VF(fmadd_ps)(w0, VF(loadu_ps)(y), acc0[c]);                      \
                acc1[c] = VF(fmadd_ps)(w1, VF(loadu_ps)(y + VF_LANES), acc1[c]);           \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            float s = vf_hsum(VF(add_ps)(acc0[c], acc1[c]));                               \
            const float *y = (const float *)va[c];                                         \
            for (size_t k = i; k < n; ++k) s += SCALAR(x[k]) * y[k];                       \
            res[c] = s;                                                                    \
        }                                                                                  \
    }                                                                                      \
    /* W##_cols's one-column arithmetic over NR far rows (LODE_MATVEC_FAR), streams prefetched */ \
    LODE_ALWAYS_INLINE void W##_rows(size_t n, const void *const *vw, int nr, const void *va, \
                                     float *res) {                                         \
        const float *y = va;                                                               \
        vf acc0[LODE_FAR], acc1[LODE_FAR];                                                 \
        for (int r = 0; r < nr; ++r) acc0[r] = acc1[r] = VF(setzero_ps)();                 \
        size_t i = 0;                                                                      \
        for (; i + 2 * VF_LANES <= n; i += 2 * VF_LANES) {                                 \
            const vf y0 = VF(loadu_ps)(y + i), y1 = VF(loadu_ps)(y + i + VF_LANES);        \
            for (int r = 0; r < nr; ++r) {                                                 \
                const T *x = (const T *)vw[r] + i;                                         \
                LODE_PREFETCH_AHEAD(x, 2 * VF_LANES * sizeof(T));                          \
                acc0[r] = VF(fmadd_ps)(LOAD(x), y0, acc0[r]);                              \
                acc1[r] = VF(fmadd_ps)(LOAD(x + VF_LANES), y1, acc1[r]);                   \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < nr; ++r) {                                                     \
            const T *x = vw[r];                                                            \
            float s = vf_hsum(VF(add_ps)(acc0[r], acc1[r]));                               \
            for (size_t k = i; k < n; ++k) s += SCALAR(x[k]) * y[k];                       \
            res[r] = s;                                                                    \
        }                                                                                  \
    }                                                                                      \
    LODE_MATVEC_FAR(W##_far, W##_rows)                                                     \
    LODE_GEMM_TILED_MV(W, f32, LODE_SUFFIX, W##_cols, W##_far)

static inline float id_f32(float v) { return v; }
FLOAT_COLS(f32, float, vf_load_f32, id_f32)
FLOAT_COLS(f16, lode_half, vf_load_f16, lode_fp16_to_fp32)
FLOAT_COLS(bf16, uint16_t, vf_load_bf16, lode_bf16_to_fp32)

/* ggml_dot_f32 (scalar.c has the spec): ggml_vec_dot_f32's four 16-lane accumulators (its
 * AVX-512 build), each as V = 16 / VF_LANES vectors, and its fold order. */
float X86_FN(ggml_dot_f32)(size_t n, const float *x, const float *y) {
    enum { V = 16 / VF_LANES };
    const size_t np = n & ~(size_t)63;
    vf acc[4][V], s[V];
    for (int k = 0; k < 4; ++k)
        for (int h = 0; h < V; ++h) acc[k][h] = VF(setzero_ps)();
    for (size_t i = 0; i < np; i += 64)
        for (int k = 0; k < 4; ++k)
            for (int h = 0; h < V; ++h) {
                const size_t at = i + 16 * k + VF_LANES * h;
                acc[k][h] = VF(fmadd_ps)(VF(loadu_ps)(x + at), VF(loadu_ps)(y + at), acc[k][h]);
            }
    /* (a0 + a2) + (a1 + a3), then its V parts added */
    for (int h = 0; h < V; ++h)
        s[h] = VF(add_ps)(VF(add_ps)(acc[0][h], acc[2][h]), VF(add_ps)(acc[1][h], acc[3][h]));
    for (int h = 1; h < V; ++h) s[0] = VF(add_ps)(s[0], s[h]);
    float r = vf_hsum(s[0]);
    for (size_t i = np; i < n; ++i) r += x[i] * y[i];
    return r;
}

/* ggml_rope_pairs (common.h has the spec; with -mfma, fmaf is one instruction) */
void X86_FN(ggml_rope_pairs)(size_t n, float *lo, float *hi, const float *sc) {
    lode_rope_pairs(n, lo, hi, sc);
}

/* ggml_fma_row (scalar.c has the spec) */
void X86_FN(ggml_fma_row)(size_t n, float *acc, const float *x, float p) {
    const vf vp = VF(set1_ps)(p);
    size_t i = 0;
    for (; i + VF_LANES <= n; i += VF_LANES)
        VF(storeu_ps)(acc + i, VF(fmadd_ps)(VF(loadu_ps)(x + i), vp, VF(loadu_ps)(acc + i)));
    for (; i < n; ++i) acc[i] = fmaf(x[i], p, acc[i]);
}

/* ggml_round_f16_row (scalar.c has the spec): F16C there and back, round to nearest even */
void X86_FN(ggml_round_f16_row)(size_t n, float *x) {
    size_t i = 0;
    for (; i + VF_LANES <= n; i += VF_LANES)
        VF(storeu_ps)(x + i, VF(cvtph_ps)(VF(cvtps_ph)(VF(loadu_ps)(x + i), _MM_FROUND_TO_NEAREST_INT)));
    if (i < n) ggml_round_f16_row_scalar(n - i, x + i);
}

/* ggml_f16_to_f32_row (scalar.c has the spec): F16C */
void X86_FN(ggml_f16_to_f32_row)(size_t n, const void *x, float *y) {
    const lode_half *h = x; /* read through memcpy (vf_load_f16): any alignment */
    size_t i = 0;
    for (; i + VF_LANES <= n; i += VF_LANES) VF(storeu_ps)(y + i, vf_load_f16(h + i));
    if (i < n) ggml_f16_to_f32_row_scalar(n - i, h + i, y + i);
}

/* ---- attention: attn_axpy (see scalar.c), 2 * VF_LANES elements x up to 4 heads in
 * registers ---- */

/* Rows stream in order, four at a time (four streams for the prefetchers; V rows are one
 * head of a cache cell, a whole cell apart, so a column-blocked order would touch every
 * row's page for each chunk), and the accumulators of up to 4 heads stay in L1: each
 * accumulator chunk is loaded and stored once per four rows. LOAD(row, i, &x0, &x1, &d)
 * reads elements i .. i + 2 * VF_LANES of a row as two vectors and the scale they share. */
#define ATTN_AXPY(NAME, LOAD, SCALAR_TAIL)                                                         \
    void NAME(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,             \
              size_t p_stride, size_t nh, float *acc, size_t acc_stride) {                         \
        const size_t nw = n / (2 * VF_LANES) * (2 * VF_LANES);                                     \
        for (size_t h0 = 0; h0 < nh; h0 += 4) {                                                    \
            const size_t hn = nh - h0 < 4 ? nh - h0 : 4;                                           \
            size_t j = 0;                                                                          \
            for (; j + 4 <= nk; j += 4) {                                                          \
                const char *row[4];                                                                \
                float w[4][4];                                                                     \
                for (int r = 0; r < 4; ++r) row[r] = (const char *)v + (j + r) * v_row_stride;     \
                for (size_t h = 0; h < hn; ++h)                                                    \
                    for (int r = 0; r < 4; ++r) w[h][r] = p[(h0 + h) * p_stride + j + r];          \
                for (size_t i = 0; i < nw; i += 2 * VF_LANES) {                                    \
                    vf x0[4], x1[4];                                                               \
                    float d[4];                                                                    \
                    for (int r = 0; r < 4; ++r) LOAD(row[r], i, &x0[r], &x1[r], &d[r]);            \
                    for (size_t h = 0; h < hn; ++h) {                                              \
                        float *a = acc + (h0 + h) * acc_stride + i;                                \
                        vf a0 = VF(loadu_ps)(a), a1 = VF(loadu_ps)(a + VF_LANES);                  \
                        for (int r = 0; r < 4; ++r) {                                              \
                            const vf wv = VF(set1_ps)(w[h][r] * d[r]);                             \
                            a0 = VF(fmadd_ps)(wv, x0[r], a0);                                      \
                            a1 = VF(fmadd_ps)(wv, x1[r], a1);                                      \
                        }                                                                          \
                        VF(storeu_ps)(a, a0);                                                      \
                        VF(storeu_ps)(a + VF_LANES, a1);                                           \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            for (; j < nk; ++j) {                                                                  \
                const char *row = (const char *)v + j * v_row_stride;                              \
                float w[4];                                                                        \
                for (size_t h = 0; h < hn; ++h) w[h] = p[(h0 + h) * p_stride + j];                 \
                for (size_t i = 0; i < nw; i += 2 * VF_LANES) {                                    \
                    vf x0, x1;                                                                     \
                    float d;                                                                       \
                    LOAD(row, i, &x0, &x1, &d);                                                    \
                    for (size_t h = 0; h < hn; ++h) {                                              \
                        float *a = acc + (h0 + h) * acc_stride + i;                                \
                        const vf wv = VF(set1_ps)(w[h] * d);                                       \
                        VF(storeu_ps)(a, VF(fmadd_ps)(wv, x0, VF(loadu_ps)(a)));                   \
                        VF(storeu_ps)(a + VF_LANES, VF(fmadd_ps)(wv, x1, VF(loadu_ps)(a + VF_LANES))); \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            for (size_t jj = 0; jj < nk; ++jj)                                                     \
                for (size_t i = nw; i < n; ++i)                                                    \
                    for (size_t h = 0; h < hn; ++h)                                                \
                        acc[(h0 + h) * acc_stride + i] +=                                          \
                            p[(h0 + h) * p_stride + jj] *                                          \
                            SCALAR_TAIL((const char *)v + jj * v_row_stride, i);                   \
        }                                                                                          \
    }

static inline void attn_load_f32(const void *row, size_t i, vf *x0, vf *x1, float *d) {
    const float *x = (const float *)row + i;
    *x0 = vf_load_f32(x);
    *x1 = vf_load_f32(x + VF_LANES);
    *d = 1.0f;
}
static inline float attn_elem_f32(const void *row, size_t i) { return ((const float *)row)[i]; }
ATTN_AXPY(X86_FN(attn_axpy_f32), attn_load_f32, attn_elem_f32)

static inline void attn_load_f16(const void *row, size_t i, vf *x0, vf *x1, float *d) {
    const lode_half *x = (const lode_half *)row + i;
    *x0 = vf_load_f16(x);
    *x1 = vf_load_f16(x + VF_LANES);
    *d = 1.0f;
}
static inline float attn_elem_f16(const void *row, size_t i) { return fp16(((const lode_half *)row)[i]); }
ATTN_AXPY(X86_FN(attn_axpy_f16), attn_load_f16, attn_elem_f16)

/* q8_0: n is a multiple of 32, which 2 * VF_LANES divides: a step never straddles a block */
static inline void attn_load_q8_0(const void *row, size_t i, vf *x0, vf *x1, float *d) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    *x0 = vf_load_i8(b->qs + i % QK32);
    *x1 = vf_load_i8(b->qs + i % QK32 + VF_LANES);
    *d = fp16(b->d);
}
static inline float attn_elem_q8_0(const void *row, size_t i) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    return fp16(b->d) * (float)b->qs[i % QK32];
}
ATTN_AXPY(X86_FN(attn_axpy_q8_0), attn_load_q8_0, attn_elem_q8_0)
