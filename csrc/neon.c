/* neon.c: AArch64 NEON kernels. build.rs compiles this file twice: plainly with
 * LODE_SUFFIX=neon, and with -march=armv8.2-a+dotprod and LODE_SUFFIX=neon_dotprod, where
 * dot_s8 below becomes one SDOT instruction. Same `*_cols` structure as avx2.c.
 * Integer sub-block sums are exact; sub-block scales are applied in int32 (vmlaq_n_s32),
 * so only the float accumulation across blocks differs from scalar.c.
 * Every weight type has a kernel here (the same list and order as avx2.c and avx512.c).
 */
#include <arm_neon.h>

#include "common.h"
#include "kernels.h"

#ifndef LODE_SUFFIX
#error "build with -DLODE_SUFFIX=neon or neon_dotprod"
#endif
#define LODE_CAT2(a, b) a##_##b
#define LODE_CAT(a, b) LODE_CAT2(a, b)
#define FN(name) LODE_CAT(name, LODE_SUFFIX)
#define GEMM_TILED(W, A, ISA, COLS) LODE_GEMM_TILED(W, A, ISA, COLS)

/* 16 signed-byte products summed into 4 i32 lanes. */
static inline int32x4_t dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* ---- 32-element types x Q8_0: the block as two int8x16 (elements 0..15, 16..31) ---- */

#define Q8_0_COLS(NAME, BLOCK, UNPACK, SCALE)                                               \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        float32x4_t acc[4];                                                                \
        for (int c = 0; c < nc; ++c) acc[c] = vdupq_n_f32(0.0f);                           \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            int8x16_t q0, q1;                                                              \
            UNPACK(&x[i], &q0, &q1);                                                       \
            const float dx = SCALE(&x[i]);                                                 \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                int32x4_t p = dot_s8(vdupq_n_s32(0), q0, vld1q_s8(y->qs));                 \
                p = dot_s8(p, q1, vld1q_s8(y->qs + 16));                                   \
                acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(p), vdupq_n_f32(dx * lode_fp16_to_fp32(y->d))); \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = vaddvq_f32(acc[c]);                          \
    }

static inline float scale_d_q4_0(const block_q4_0 *x) { return lode_fp16_to_fp32(x->d); }
static inline void unpack_q4_0(const block_q4_0 *x, int8x16_t *q0, int8x16_t *q1) {
    const uint8x16_t b = vld1q_u8(x->qs);
    *q0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0f))), vdupq_n_s8(8));
    *q1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), vdupq_n_s8(8));
}
Q8_0_COLS(q4_0_cols, block_q4_0, unpack_q4_0, scale_d_q4_0)
GEMM_TILED(q4_0, q8_0, LODE_SUFFIX, q4_0_cols)

/* The five-bit quants of a Q5_0/Q5_1 block, unsigned: elements 0..15 in *lo, 16..31 in *hi
 * (bit j of qh -> 16 added to element j). */
static inline void unpack_q5_bits(const uint8_t *qs, const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bitmask[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bm = vld1q_u8(bitmask), v16 = vdupq_n_u8(16);
    const uint8x16_t h0 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    const uint8x16_t h1 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    const uint8x16_t b = vld1q_u8(qs);
    *lo = vorrq_u8(vandq_u8(b, vdupq_n_u8(0x0f)), vandq_u8(vtstq_u8(h0, bm), v16));
    *hi = vorrq_u8(vshrq_n_u8(b, 4), vandq_u8(vtstq_u8(h1, bm), v16));
}

static inline float scale_d_q5_0(const block_q5_0 *x) { return lode_fp16_to_fp32(x->d); }
/* then -16 */
static inline void unpack_q5_0(const block_q5_0 *x, int8x16_t *q0, int8x16_t *q1) {
    uint8x16_t lo, hi;
    unpack_q5_bits(x->qs, x->qh, &lo, &hi);
    *q0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16));
    *q1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16));
}
Q8_0_COLS(q5_0_cols, block_q5_0, unpack_q5_0, scale_d_q5_0)
GEMM_TILED(q5_0, q8_0, LODE_SUFFIX, q5_0_cols)

static inline float scale_d_q8_0(const block_q8_0 *x) { return lode_fp16_to_fp32(x->d); }
static inline void unpack_q8_0(const block_q8_0 *x, int8x16_t *q0, int8x16_t *q1) {
    *q0 = vld1q_s8(x->qs);
    *q1 = vld1q_s8(x->qs + 16);
}
Q8_0_COLS(q8_0_cols, block_q8_0, unpack_q8_0, scale_d_q8_0)
GEMM_TILED(q8_0, q8_0, LODE_SUFFIX, q8_0_cols)

/* ---- Q4_K / Q5_K x Q8_K: 8 sub-blocks of 32 = 2 int8x16 each; mins through the bsums ---- */

/* The 16 quant vectors of a Q4_K (five = 0) or Q5_K block (`qh` its high bits): sub-block s
 * of 32 in q[2s], q[2s + 1]. */
LODE_ALWAYS_INLINE void kq45_unpack(const uint8_t *qs, const uint8_t *qh, int five, int8x16_t q[16]) {
    for (int j = 0; j < 4; ++j) {
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t b = vld1q_u8(qs + 32 * j + 16 * h);
            uint8x16_t lo = vandq_u8(b, vdupq_n_u8(0x0f)), hi = vshrq_n_u8(b, 4);
            if (five) {
                const uint8x16_t hb = vld1q_u8(qh + 16 * h);
                const uint8x16_t v16 = vdupq_n_u8(16);
                lo = vorrq_u8(lo, vandq_u8(vtstq_u8(hb, vdupq_n_u8((uint8_t)(1u << (2 * j)))), v16));
                hi = vorrq_u8(hi, vandq_u8(vtstq_u8(hb, vdupq_n_u8((uint8_t)(2u << (2 * j)))), v16));
            }
            q[4 * j + h] = vreinterpretq_s8_u8(lo);
            q[4 * j + 2 + h] = vreinterpretq_s8_u8(hi);
        }
    }
}

/* One Q8_K column against an unpacked Q4_K/Q5_K block: *is = Σ_s sm[s]·(q_s·y_s), *ms = the
 * mins (sm[8..16], widened in `mins`) against the column's sub-block sums. */
LODE_ALWAYS_INLINE void kq45_col(const int8x16_t q[16], const uint8_t sm[16], int16x8_t mins,
                                 const block_q8_K *y, int32_t *is, int32_t *ms) {
    const int16x8_t bsum = vpaddq_s16(vld1q_s16(y->bsums), vld1q_s16(y->bsums + 8));
    int32x4_t pm = vmull_s16(vget_low_s16(mins), vget_low_s16(bsum));
    pm = vmlal_high_s16(pm, mins, bsum);
    int32x4_t sumi = vdupq_n_s32(0);
    for (int s = 0; s < 8; ++s) {
        int32x4_t p = dot_s8(vdupq_n_s32(0), q[2 * s], vld1q_s8(y->qs + 32 * s));
        p = dot_s8(p, q[2 * s + 1], vld1q_s8(y->qs + 32 * s + 16));
        sumi = vmlaq_n_s32(sumi, p, sm[s]);
    }
    *is = vaddvq_s32(sumi);
    *ms = vaddvq_s32(pm);
}

#define KQ45_COLS(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};                                          \
        for (size_t i = 0; i < n / QK_K; ++i) {                                            \
            uint8_t sm[16];                                                                \
            lode_unpack_scales_mins_k4(x[i].scales, sm);                                   \
            const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));       \
            const float d = lode_fp16_to_fp32(x[i].d), dmin = lode_fp16_to_fp32(x[i].dmin); \
            int8x16_t q[16];                                                               \
            kq45_unpack(x[i].qs, (const uint8_t *)&x[i] + 16, FIVE, q);                    \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_K *y = (const block_q8_K *)va[c] + i;                       \
                int32_t is, ms;                                                            \
                kq45_col(q, sm, mins, y, &is, &ms);                                        \
                sumf[c] += y->d * (d * (float)is - dmin * (float)ms);                      \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = sumf[c];                                     \
    }

KQ45_COLS(q4k_cols, block_q4_K, 0)
GEMM_TILED(q4k, q8k, LODE_SUFFIX, q4k_cols)

KQ45_COLS(q5k_cols, block_q5_K, 1)
GEMM_TILED(q5k, q8k, LODE_SUFFIX, q5k_cols)

/* ---- Q6_K x Q8_K: 16 sub-blocks of 16 = one int8x16 each, q - 32 done on the weights ---- */

LODE_ALWAYS_INLINE void q6k_unpack(const block_q6_K *x, int8x16_t q[16]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(3);
    const int8x16_t m32 = vdupq_n_s8(32);
    for (int k = 0; k < 2; ++k) {
        const uint8_t *ql = x->ql + 64 * k, *qh = x->qh + 32 * k;
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t l0 = vld1q_u8(ql + 16 * h), l1 = vld1q_u8(ql + 32 + 16 * h);
            const uint8x16_t hb = vld1q_u8(qh + 16 * h);
            const uint8x16_t v0 = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(hb, m2), 4));
            const uint8x16_t v1 = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m2), 4));
            const uint8x16_t v2 = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m2), 4));
            const uint8x16_t v3 = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
            q[8 * k + 0 + h] = vsubq_s8(vreinterpretq_s8_u8(v0), m32);
            q[8 * k + 2 + h] = vsubq_s8(vreinterpretq_s8_u8(v1), m32);
            q[8 * k + 4 + h] = vsubq_s8(vreinterpretq_s8_u8(v2), m32);
            q[8 * k + 6 + h] = vsubq_s8(vreinterpretq_s8_u8(v3), m32);
        }
    }
}

LODE_ALWAYS_INLINE void q6k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q6_K *x = vw;
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d);
        int8x16_t q[16];
        q6k_unpack(&x[i], q);
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            int32x4_t sumi = vdupq_n_s32(0);
            for (int s = 0; s < 16; ++s)
                sumi = vmlaq_n_s32(sumi, dot_s8(vdupq_n_s32(0), q[s], vld1q_s8(y->qs + 16 * s)), x[i].scales[s]);
            sumf[c] += y->d * d * (float)vaddvq_s32(sumi);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = sumf[c];
}
GEMM_TILED(q6k, q8k, LODE_SUFFIX, q6k_cols)

/* ---- Q4_1 / Q5_1 x Q8_0: unsigned quants (0..31 fit int8); the min m enters through the
 * activation block sum (dot with ones), in its own float accumulator ---- */

#define Q8_0_MIN_COLS(NAME, BLOCK, UNPACK)                                                  \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const BLOCK *x = vw;                                                               \
        const int8x16_t ones = vdupq_n_s8(1);                                              \
        float32x4_t acc[4], accm[4];                                                       \
        for (int c = 0; c < nc; ++c) acc[c] = accm[c] = vdupq_n_f32(0.0f);                 \
        for (size_t i = 0; i < n / QK32; ++i) {                                            \
            int8x16_t q0, q1;                                                              \
            UNPACK(&x[i], &q0, &q1);                                                       \
            const float dx = lode_fp16_to_fp32(x[i].d), mx = lode_fp16_to_fp32(x[i].m);    \
            for (int c = 0; c < nc; ++c) {                                                 \
                const block_q8_0 *y = (const block_q8_0 *)va[c] + i;                       \
                const int8x16_t y0 = vld1q_s8(y->qs), y1 = vld1q_s8(y->qs + 16);           \
                const float dy = lode_fp16_to_fp32(y->d);                                  \
                const int32x4_t p = dot_s8(dot_s8(vdupq_n_s32(0), q0, y0), q1, y1);        \
                const int32x4_t s = dot_s8(dot_s8(vdupq_n_s32(0), ones, y0), ones, y1);    \
                acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(p), vdupq_n_f32(dx * dy));        \
                accm[c] = vfmaq_f32(accm[c], vcvtq_f32_s32(s), vdupq_n_f32(mx * dy));      \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) res[c] = vaddvq_f32(acc[c]) + vaddvq_f32(accm[c]);    \
    }

static inline void unpack_q4_1(const block_q4_1 *x, int8x16_t *q0, int8x16_t *q1) {
    const uint8x16_t b = vld1q_u8(x->qs);
    *q0 = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0f)));
    *q1 = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
}
Q8_0_MIN_COLS(q4_1_cols, block_q4_1, unpack_q4_1)
GEMM_TILED(q4_1, q8_0, LODE_SUFFIX, q4_1_cols)

static inline void unpack_q5_1(const block_q5_1 *x, int8x16_t *q0, int8x16_t *q1) {
    uint8x16_t lo, hi;
    unpack_q5_bits(x->qs, x->qh, &lo, &hi);
    *q0 = vreinterpretq_s8_u8(lo);
    *q1 = vreinterpretq_s8_u8(hi);
}
Q8_0_MIN_COLS(q5_1_cols, block_q5_1, unpack_q5_1)
GEMM_TILED(q5_1, q8_0, LODE_SUFFIX, q5_1_cols)

/* ---- IQ4_NL / MXFP4 x Q8_0: nibbles through a 16-entry TBL, then the Q8_0 loop ---- */

static inline void lookup_nibbles(const uint8_t *qs, int8x16_t table, int8x16_t *q0, int8x16_t *q1) {
    const uint8x16_t b = vld1q_u8(qs);
    *q0 = vqtbl1q_s8(table, vandq_u8(b, vdupq_n_u8(0x0f)));
    *q1 = vqtbl1q_s8(table, vshrq_n_u8(b, 4));
}

static inline float scale_d_iq4nl(const block_iq4_nl *x) { return lode_fp16_to_fp32(x->d); }
static inline void unpack_iq4nl(const block_iq4_nl *x, int8x16_t *q0, int8x16_t *q1) {
    lookup_nibbles(x->qs, vld1q_s8(lode_kvalues_iq4nl), q0, q1);
}
Q8_0_COLS(iq4nl_cols, block_iq4_nl, unpack_iq4nl, scale_d_iq4nl)
GEMM_TILED(iq4nl, q8_0, LODE_SUFFIX, iq4nl_cols)

static inline float scale_e_mxfp4(const block_mxfp4 *x) { return lode_e8m0_to_fp32_half(x->e); }
static inline void unpack_mxfp4(const block_mxfp4 *x, int8x16_t *q0, int8x16_t *q1) {
    lookup_nibbles(x->qs, vld1q_s8(lode_kvalues_mxfp4), q0, q1);
}
Q8_0_COLS(mxfp4_cols, block_mxfp4, unpack_mxfp4, scale_e_mxfp4)
GEMM_TILED(mxfp4, q8_0, LODE_SUFFIX, mxfp4_cols)

/* ---- Q2_K / Q3_K x Q8_K: 16 sub-blocks of 16 = one int8x16 each, scales in int32 ----
 * Sub-block 8j + 2k + h is bytes 16h..16h+15 of qs[32j..] shifted by 2k (scalar.c order). */

LODE_ALWAYS_INLINE void q2k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q2_K *x = vw;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < n / QK_K; ++i) {
        const uint8x16_t sc = vld1q_u8(x[i].scales);
        const int16x8_t mins_lo = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_low_u8(sc), 4)));
        const int16x8_t mins_hi = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_high_u8(sc), 4)));
        const float d = lode_fp16_to_fp32(x[i].d), dmin = lode_fp16_to_fp32(x[i].dmin);
        int8x16_t q[16];
        for (int j = 0; j < 2; ++j)
            for (int h = 0; h < 2; ++h) {
                const uint8x16_t b = vld1q_u8(x[i].qs + 32 * j + 16 * h);
                q[8 * j + 0 + h] = vreinterpretq_s8_u8(vandq_u8(b, m3));
                q[8 * j + 2 + h] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 2), m3));
                q[8 * j + 4 + h] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 4), m3));
                q[8 * j + 6 + h] = vreinterpretq_s8_u8(vshrq_n_u8(b, 6));
            }
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            int32x4_t pm = vmull_s16(vget_low_s16(mins_lo), vld1_s16(y->bsums));
            pm = vmlal_high_s16(pm, mins_lo, vld1q_s16(y->bsums));
            pm = vmlal_s16(pm, vget_low_s16(mins_hi), vld1_s16(y->bsums + 8));
            pm = vmlal_high_s16(pm, mins_hi, vld1q_s16(y->bsums + 8));
            int32x4_t sumi = vdupq_n_s32(0);
            for (int s = 0; s < 16; ++s)
                sumi = vmlaq_n_s32(sumi, dot_s8(vdupq_n_s32(0), q[s], vld1q_s8(y->qs + 16 * s)), x[i].scales[s] & 0xf);
            sumf[c] += y->d * (d * (float)vaddvq_s32(sumi) - dmin * (float)vaddvq_s32(pm));
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = sumf[c];
}
GEMM_TILED(q2k, q8k, LODE_SUFFIX, q2k_cols)

LODE_ALWAYS_INLINE void q3k_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_q3_K *x = vw;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < n / QK_K; ++i) {
        int8_t sc[16];
        lode_unpack_scales_q3k(x[i].scales, sc);
        const float d = lode_fp16_to_fp32(x[i].d);
        int8x16_t q[16];
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t hm = vld1q_u8(x[i].hmask + 16 * h);
            for (int j = 0; j < 2; ++j) {
                const uint8x16_t b = vld1q_u8(x[i].qs + 32 * j + 16 * h);
                for (int k = 0; k < 4; ++k) {
                    const uint8x16_t lo = vandq_u8(vshlq_u8(b, vdupq_n_s8((int8_t)(-2 * k))), m3);
                    /* 4 where the high bit 4j+k is clear */
                    const uint8x16_t hi = vbicq_u8(four, vtstq_u8(hm, vdupq_n_u8((uint8_t)(1u << (4 * j + k)))));
                    q[8 * j + 2 * k + h] = vsubq_s8(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi));
                }
            }
        }
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            int32x4_t sumi = vdupq_n_s32(0);
            for (int s = 0; s < 16; ++s)
                sumi = vmlaq_n_s32(sumi, dot_s8(vdupq_n_s32(0), q[s], vld1q_s8(y->qs + 16 * s)), sc[s]);
            sumf[c] += y->d * d * (float)vaddvq_s32(sumi);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = sumf[c];
}
GEMM_TILED(q3k, q8k, LODE_SUFFIX, q3k_cols)

/* ---- IQ4_XS x Q8_K: IQ4_NL lookup per 32-element sub-block, six-bit scale in int32 ---- */

LODE_ALWAYS_INLINE void iq4xs_cols(size_t n, const void *vw, const void *const *va, int nc, float *res) {
    const block_iq4_xs *x = vw;
    const int8x16_t table = vld1q_s8(lode_kvalues_iq4nl);
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < n / QK_K; ++i) {
        int8x16_t q[16];
        int ls[8];
        for (int ib = 0; ib < 8; ++ib) {
            lookup_nibbles(x[i].qs + 16 * ib, table, &q[2 * ib], &q[2 * ib + 1]);
            ls[ib] = lode_iq4xs_scale(&x[i], ib);
        }
        const float d = lode_fp16_to_fp32(x[i].d);
        for (int c = 0; c < nc; ++c) {
            const block_q8_K *y = (const block_q8_K *)va[c] + i;
            int32x4_t sumi = vdupq_n_s32(0);
            for (int ib = 0; ib < 8; ++ib) {
                int32x4_t p = dot_s8(vdupq_n_s32(0), q[2 * ib], vld1q_s8(y->qs + 32 * ib));
                p = dot_s8(p, q[2 * ib + 1], vld1q_s8(y->qs + 32 * ib + 16));
                sumi = vmlaq_n_s32(sumi, p, ls[ib]);
            }
            sumf[c] += y->d * d * (float)vaddvq_s32(sumi);
        }
    }
    for (int c = 0; c < nc; ++c) res[c] = sumf[c];
}
GEMM_TILED(iq4xs, q8k, LODE_SUFFIX, iq4xs_cols)

/* ---- F32 / F16 / BF16 x F32: 8 elements per step, two accumulators per column ---- */

#define FLOAT_COLS(NAME, T, LOAD4, SCALAR)                                                  \
    LODE_ALWAYS_INLINE void NAME(size_t n, const void *vw, const void *const *va, int nc,  \
                                 float *res) {                                             \
        const T *x = vw;                                                                   \
        float32x4_t acc0[4], acc1[4];                                                      \
        for (int c = 0; c < nc; ++c) acc0[c] = acc1[c] = vdupq_n_f32(0.0f);                \
        size_t i = 0;                                                                      \
        for (; i + 8 <= n; i += 8) {                                                       \
            const float32x4_t w0 = LOAD4(x + i), w1 = LOAD4(x + i + 4);                    \
            for (int c = 0; c < nc; ++c) {                                                 \
                const float *y = (const float *)va[c] + i;                                 \
                acc0[c] = vfmaq_f32(acc0[c], w0, vld1q_f32(y));                            \
                acc1[c] = vfmaq_f32(acc1[c], w1, vld1q_f32(y + 4));                        \
            }                                                                              \
        }                                                                                  \
        for (int c = 0; c < nc; ++c) {                                                     \
            float s = vaddvq_f32(vaddq_f32(acc0[c], acc1[c]));                             \
            const float *y = (const float *)va[c];                                         \
            for (size_t k = i; k < n; ++k) s += SCALAR(x[k]) * y[k];                       \
            res[c] = s;                                                                    \
        }                                                                                  \
    }

static inline float32x4_t load4_f32(const float *p) { return vld1q_f32(p); }
static inline float id_f32(float v) { return v; }
FLOAT_COLS(f32_cols, float, load4_f32, id_f32)
GEMM_TILED(f32, f32, LODE_SUFFIX, f32_cols)

static inline float32x4_t load4_f16(const lode_half *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
FLOAT_COLS(f16_cols, lode_half, load4_f16, lode_fp16_to_fp32)
GEMM_TILED(f16, f32, LODE_SUFFIX, f16_cols)

static inline float32x4_t load4_bf16(const uint16_t *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}
FLOAT_COLS(bf16_cols, uint16_t, load4_bf16, lode_bf16_to_fp32)
GEMM_TILED(bf16, f32, LODE_SUFFIX, bf16_cols)

/* ---- quantizers: the scalar block code, so the bytes are identical by construction ---- */

void FN(quantize_row_q8_0)(size_t n, const float *x, void *vy) {
    block_q8_0 *y = vy;
    for (size_t i = 0; i < n / QK32; ++i) lode_quantize_q8_0_block(x + i * QK32, &y[i]);
}

void FN(quantize_row_q8_k)(size_t n, const float *x, void *vy) {
    block_q8_K *y = vy;
    for (size_t i = 0; i < n / QK_K; ++i) lode_quantize_q8_k_block(x + i * QK_K, &y[i]);
}

/* ---- batched gemm ----
 * gemm_tiled_<W>_q8k (scalar.c has the spec): the exact block integers of KQ45_COLS /
 * q6k_cols above, then llama.cpp's tiled float steps (LODE_GEMM_KTILED in common.h) over
 * 4 columns per weight-block unpack. */

#define GEMM_KTILED(W, ISA, BLOCK, BLK, HAS_MIN, DMIN, NC) LODE_GEMM_KTILED(W, ISA, BLOCK, BLK, HAS_MIN, DMIN, NC)

#define KQ45_TBLK(NAME, BLOCK, FIVE)                                                        \
    LODE_ALWAYS_INLINE void NAME(const BLOCK *x, const block_q8_K *const *ys, int nc,       \
                                 int32_t *is, int32_t *ms) {                               \
        uint8_t sm[16];                                                                    \
        lode_unpack_scales_mins_k4(x->scales, sm);                                         \
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));           \
        int8x16_t q[16];                                                                   \
        kq45_unpack(x->qs, (const uint8_t *)x + 16, FIVE, q);                              \
        for (int c = 0; c < nc; ++c) kq45_col(q, sm, mins, ys[c], &is[c], &ms[c]);         \
    }

KQ45_TBLK(q4k_tblk, block_q4_K, 0)
GEMM_KTILED(q4k, LODE_SUFFIX, block_q4_K, q4k_tblk, 1, dmin, 4)

KQ45_TBLK(q5k_tblk, block_q5_K, 1)
GEMM_KTILED(q5k, LODE_SUFFIX, block_q5_K, q5k_tblk, 1, dmin, 4)

LODE_ALWAYS_INLINE void q6k_tblk(const block_q6_K *x, const block_q8_K *const *ys, int nc, int32_t *is,
                                 int32_t *ms) {
    int8x16_t q[16];
    q6k_unpack(x, q);
    for (int c = 0; c < nc; ++c) {
        const block_q8_K *y = ys[c];
        int32x4_t sumi = vdupq_n_s32(0);
        for (int s = 0; s < 16; ++s)
            sumi = vmlaq_n_s32(sumi, dot_s8(vdupq_n_s32(0), q[s], vld1q_s8(y->qs + 16 * s)), x->scales[s]);
        is[c] = vaddvq_s32(sumi);
        ms[c] = 0;
    }
}
GEMM_KTILED(q6k, LODE_SUFFIX, block_q6_K, q6k_tblk, 0, d, 4)

/* ggml_dot_f32 (scalar.c has the spec): each 16-lane ggml accumulator as four float32x4. */
float FN(ggml_dot_f32)(size_t n, const float *x, const float *y) {
    const size_t np = n & ~(size_t)63;
    float32x4_t acc[16];
    for (int j = 0; j < 16; ++j) acc[j] = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < np; i += 64)
        for (int j = 0; j < 16; ++j) acc[j] = vfmaq_f32(acc[j], vld1q_f32(x + i + 4 * j), vld1q_f32(y + i + 4 * j));
    /* s16 quarter q (lanes 4q..4q+3) = (a0 + a2) + (a1 + a3); ggml accumulator j is acc[4j..4j+3] */
    float32x4_t s[4];
    for (int q = 0; q < 4; ++q)
        s[q] = vaddq_f32(vaddq_f32(acc[q], acc[8 + q]), vaddq_f32(acc[4 + q], acc[12 + q]));
    const float32x4_t t8a = vaddq_f32(s[0], s[2]), t8b = vaddq_f32(s[1], s[3]);
    const float32x4_t t4 = vaddq_f32(t8a, t8b);
    float s1 = (vgetq_lane_f32(t4, 0) + vgetq_lane_f32(t4, 2)) + (vgetq_lane_f32(t4, 1) + vgetq_lane_f32(t4, 3));
    for (size_t i = np; i < n; ++i) s1 += x[i] * y[i];
    return s1;
}

/* ggml_rope_pairs (common.h has the spec; fmaf is one instruction on aarch64) */
void FN(ggml_rope_pairs)(size_t n, float *lo, float *hi, const float *sc) {
    lode_rope_pairs(n, lo, hi, sc);
}

/* ggml_fma_row (scalar.c has the spec) */
void FN(ggml_fma_row)(size_t n, float *acc, const float *x, float p) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(acc + i, vfmaq_n_f32(vld1q_f32(acc + i), vld1q_f32(x + i), p));
    for (; i < n; ++i) acc[i] = fmaf(x[i], p, acc[i]);
}

/* ggml_round_f16_row (scalar.c has the spec): fcvtn / fcvtl, round to nearest even (the FPCR
 * default) */
void FN(ggml_round_f16_row)(size_t n, float *x) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    if (i < n) ggml_round_f16_row_scalar(n - i, x + i);
}

/* ggml_f16_to_f32_row (scalar.c has the spec): fcvtl from byte loads (any alignment) */
void FN(ggml_f16_to_f32_row)(size_t n, const void *x, float *y) {
    const uint8_t *p = x;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p + 2 * i))));
    if (i < n) ggml_f16_to_f32_row_scalar(n - i, p + 2 * i, y + i);
}
/* ---- attention: attn_axpy (see scalar.c), 16 elements x up to 4 heads in registers ---- */

/* Rows stream in order (j outer) and the accumulators of up to 4 heads stay in L1 (see
 * avx2.c). */
#define ATTN_AXPY(NAME, LOAD16, SCALAR_TAIL)                                                   \
    void NAME(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,         \
              size_t p_stride, size_t nh, float *acc, size_t acc_stride) {                     \
        const size_t n16 = n / 16 * 16;                                                        \
        for (size_t h0 = 0; h0 < nh; h0 += 4) {                                                \
            const size_t hn = nh - h0 < 4 ? nh - h0 : 4;                                       \
            for (size_t j = 0; j < nk; ++j) {                                                  \
                const char *row = (const char *)v + j * v_row_stride;                          \
                float w[4];                                                                    \
                for (size_t h = 0; h < hn; ++h) w[h] = p[(h0 + h) * p_stride + j];             \
                for (size_t i = 0; i < n16; i += 16) {                                         \
                    float32x4_t x[4];                                                          \
                    float d;                                                                   \
                    LOAD16(row, i, x, &d);                                                     \
                    for (size_t h = 0; h < hn; ++h) {                                          \
                        float *a = acc + (h0 + h) * acc_stride + i;                            \
                        const float wd = w[h] * d;                                             \
                        for (int k = 0; k < 4; ++k)                                            \
                            vst1q_f32(a + 4 * k, vfmaq_n_f32(vld1q_f32(a + 4 * k), x[k], wd)); \
                    }                                                                          \
                }                                                                              \
                for (size_t i = n16; i < n; ++i)                                               \
                    for (size_t h = 0; h < hn; ++h)                                            \
                        acc[(h0 + h) * acc_stride + i] += w[h] * SCALAR_TAIL(row, i);          \
            }                                                                                  \
        }                                                                                      \
    }

static inline void attn_load16_f32(const void *row, size_t i, float32x4_t *x, float *d) {
    const float *r = (const float *)row + i;
    for (int k = 0; k < 4; ++k) x[k] = vld1q_f32(r + 4 * k);
    *d = 1.0f;
}
static inline float attn_elem_f32(const void *row, size_t i) { return ((const float *)row)[i]; }
ATTN_AXPY(FN(attn_axpy_f32), attn_load16_f32, attn_elem_f32)

static inline void attn_load16_f16(const void *row, size_t i, float32x4_t *x, float *d) {
    const lode_half *r = (const lode_half *)row + i;
    for (int k = 0; k < 4; ++k) x[k] = load4_f16(r + 4 * k);
    *d = 1.0f;
}
static inline float attn_elem_f16(const void *row, size_t i) {
    return lode_fp16_to_fp32(((const lode_half *)row)[i]);
}
ATTN_AXPY(FN(attn_axpy_f16), attn_load16_f16, attn_elem_f16)

/* q8_0: n is a multiple of 32, so a 16-element step never straddles a block */
static inline void attn_load16_q8_0(const void *row, size_t i, float32x4_t *x, float *d) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    const int8x16_t q = vld1q_s8(b->qs + i % QK32);
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    x[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    x[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    x[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    x[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
    *d = lode_fp16_to_fp32(b->d);
}
static inline float attn_elem_q8_0(const void *row, size_t i) {
    const block_q8_0 *b = (const block_q8_0 *)row + i / QK32;
    return lode_fp16_to_fp32(b->d) * (float)b->qs[i % QK32];
}
ATTN_AXPY(FN(attn_axpy_q8_0), attn_load16_q8_0, attn_elem_q8_0)
