/* kernels.h: the whole C ABI of lode's CPU kernels (src/kernels/ffi.rs mirrors it).
 *
 * Names are <op>_<weight>_<activation>_<isa>. For every weight type W with activation A:
 *
 *   float vec_dot_W_A_<isa>(size_t n, const void *w, const void *a);
 *       dot product of one weight row and one activation row of n elements
 *       (n a multiple of the block length; w and a are whole blocks).
 *
 *   void gemm_W_A_<isa>(size_t n, const void *w, size_t w_row_stride, size_t nrows,
 *                       const void *a, size_t a_row_stride, size_t ncols,
 *                       float *out, size_t out_col_stride);
 *       out[c*out_col_stride + r] = dot(w row r, a row c) for r < nrows, c < ncols.
 *       Strides are in bytes for w and a, in floats for out. SIMD variants reuse each
 *       unpacked weight block across several activation columns.
 *
 * Activation types (chosen like ggml's vec_dot_type):
 *   q4_0 q4_1 q5_0 q5_1 q8_0 iq4nl mxfp4  -> q8_0 (Q4_1/Q5_1 take the block sum of the
 *                                            activation in-kernel instead of ggml's Q8_1)
 *   q2k q3k q4k q5k q6k iq4xs            -> q8k
 *   f32 f16 bf16                         -> f32 (no activation quantization)
 *
 * Quantizers (n a multiple of 32 resp. 256; SIMD variants give the scalar bytes):
 *   void quantize_row_q8_0_<isa>(size_t n, const float *x, void *y);
 *   void quantize_row_q8_k_<isa>(size_t n, const float *x, void *y);
 *
 * Attention (types f32, f16, q8_0; n a multiple of 32 for q8_0):
 *   void attn_axpy_T_<isa>(size_t n, size_t nk, const void *v, size_t v_row_stride,
 *                          const float *p, size_t p_stride, size_t nh,
 *                          float *acc, size_t acc_stride);
 *       acc[h*acc_stride + i] += sum_{j<nk} p[h*p_stride + j] * V_j[i] for i < n, h < nh,
 *       V_j the row at (const char *)v + j*v_row_stride (bytes): the P.V product of a key tile.
 *       The scores q.K of the tile are the gemm of K rows (f16/f32 x f32, q8_0 x q8_0).
 *
 * Test support, scalar only: void dequantize_row_<T>_scalar(size_t n, const void *x, float *y)
 * for every weight type and for q8_0 / q8k.
 *
 * Kernels are single-threaded and pure; callers split rows across threads.
 */
#ifndef LODE_KERNELS_H
#define LODE_KERNELS_H

#include <stddef.h>

/* X(weight, activation) for every supported weight type, in ABI order. */
#define LODE_ALL_TYPES(X)                                                                   \
    X(q4_0, q8_0) X(q4_1, q8_0) X(q5_0, q8_0) X(q5_1, q8_0) X(q8_0, q8_0) X(iq4nl, q8_0)  \
    X(mxfp4, q8_0) X(q2k, q8k) X(q3k, q8k) X(q4k, q8k) X(q5k, q8k) X(q6k, q8k)             \
    X(iq4xs, q8k) X(f32, f32) X(f16, f32) X(bf16, f32)

/* Types with a SIMD kernel on each ISA: every type on every ISA. The order is free; the
 * per-ISA lists in src/kernels/ffi.rs name the same kernels (an ISA without a kernel for a
 * type runs the scalar one there). */
#define LODE_SIMD_TYPES(X)                                                                  \
    X(q4_0, q8_0) X(q5_0, q8_0) X(q8_0, q8_0) X(q4k, q8k) X(q5k, q8k) X(q6k, q8k)         \
    X(q4_1, q8_0) X(q5_1, q8_0) X(iq4nl, q8_0) X(mxfp4, q8_0) X(q2k, q8k) X(q3k, q8k)     \
    X(iq4xs, q8k) X(f32, f32) X(f16, f32) X(bf16, f32)
#define LODE_AVX2_TYPES(X) LODE_SIMD_TYPES(X)
#define LODE_AVX512_TYPES(X) LODE_SIMD_TYPES(X)
#define LODE_NEON_TYPES(X) LODE_SIMD_TYPES(X)
#define LODE_DECLARE_KERNELS(W, A, ISA)                                                     \
    float vec_dot_##W##_##A##_##ISA(size_t n, const void *w, const void *a);               \
    void gemm_##W##_##A##_##ISA(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                const void *a, size_t a_row_stride, size_t ncols,          \
                                float *out, size_t out_col_stride);
#define LODE_DECLARE_QUANTIZERS(ISA)                                                        \
    void quantize_row_q8_0_##ISA(size_t n, const float *x, void *y);                       \
    void quantize_row_q8_k_##ISA(size_t n, const float *x, void *y);

/* X(type) for the attention kernels. */
#define LODE_ATTN_TYPES(X) X(f32) X(f16) X(q8_0)
#define LODE_DECLARE_ATTN(T, ISA)                                                           \
    void attn_axpy_##T##_##ISA(size_t n, size_t nk, const void *v, size_t v_row_stride,     \
                               const float *p, size_t p_stride, size_t nh, float *acc,      \
                               size_t acc_stride);
#define LODE_ATTN_SCALAR(T) LODE_DECLARE_ATTN(T, scalar)
#define LODE_ATTN_AVX2(T) LODE_DECLARE_ATTN(T, avx2)
#define LODE_ATTN_AVX512(T) LODE_DECLARE_ATTN(T, avx512)
#define LODE_ATTN_NEON(T) LODE_DECLARE_ATTN(T, neon)
#define LODE_ATTN_NEON_DOTPROD(T) LODE_DECLARE_ATTN(T, neon_dotprod)

#define LODE_DECL_SCALAR(W, A) LODE_DECLARE_KERNELS(W, A, scalar)
#define LODE_DECL_AVX2(W, A) LODE_DECLARE_KERNELS(W, A, avx2)
#define LODE_DECL_AVX512(W, A) LODE_DECLARE_KERNELS(W, A, avx512)
#define LODE_DECL_NEON(W, A) LODE_DECLARE_KERNELS(W, A, neon)
#define LODE_DECL_NEON_DOTPROD(W, A) LODE_DECLARE_KERNELS(W, A, neon_dotprod)
#define LODE_DECL_DEQUANT(W, A) void dequantize_row_##W##_scalar(size_t n, const void *x, float *y);

LODE_ALL_TYPES(LODE_DECL_SCALAR)
LODE_DECLARE_QUANTIZERS(scalar)
LODE_ATTN_TYPES(LODE_ATTN_SCALAR)
LODE_ALL_TYPES(LODE_DECL_DEQUANT)
void dequantize_row_q8k_scalar(size_t n, const void *x, float *y);

#if defined(__x86_64__) || defined(_M_X64)
LODE_AVX2_TYPES(LODE_DECL_AVX2)
LODE_DECLARE_QUANTIZERS(avx2)
LODE_ATTN_TYPES(LODE_ATTN_AVX2)
LODE_AVX512_TYPES(LODE_DECL_AVX512)
LODE_DECLARE_QUANTIZERS(avx512)
LODE_ATTN_TYPES(LODE_ATTN_AVX512)
#endif

#if defined(__aarch64__)
LODE_NEON_TYPES(LODE_DECL_NEON)
LODE_DECLARE_QUANTIZERS(neon)
LODE_ATTN_TYPES(LODE_ATTN_NEON)
LODE_NEON_TYPES(LODE_DECL_NEON_DOTPROD)
LODE_DECLARE_QUANTIZERS(neon_dotprod)
LODE_ATTN_TYPES(LODE_ATTN_NEON_DOTPROD)
#endif

/* Scalar gemm built from a vec_dot: the reference for every tiled kernel. */
#define LODE_GEMM_FROM_DOT(W, A, ISA)                                                       \
    void gemm_##W##_##A##_##ISA(size_t n, const void *w, size_t w_row_stride, size_t nrows, \
                                const void *a, size_t a_row_stride, size_t ncols,          \
                                float *out, size_t out_col_stride) {                       \
        for (size_t c = 0; c < ncols; ++c)                                                 \
            for (size_t r = 0; r < nrows; ++r)                                             \
                out[c * out_col_stride + r] = vec_dot_##W##_##A##_##ISA(                   \
                    n, (const char *)w + r * w_row_stride, (const char *)a + c * a_row_stride); \
    }

/* ---- batched gemm ----
 * void gemm_tiled_W_q8k_<isa>(same arguments as gemm_W_q8k_<isa>), W in q4k q5k q6k:
 *     the product llama.cpp computes for K-quant weights over >= 8 activation rows (its
 *     tiled matmul, ggml-cpu/tiled/): per 256-block r = (float)isum*d - dmin*(float)summs
 *     (one FMA), acc = fma(r, y.d, acc). Bit-identical on every ISA (scalar.c is the spec). */
#define LODE_TILED_TYPES(X) X(q4k) X(q5k) X(q6k)
#define LODE_DECLARE_TILED(W, ISA)                                                          \
    void gemm_tiled_##W##_q8k_##ISA(size_t n, const void *w, size_t w_row_stride,          \
                                    size_t nrows, const void *a, size_t a_row_stride,      \
                                    size_t ncols, float *out, size_t out_col_stride);
#define LODE_DECL_TILED_SCALAR(W) LODE_DECLARE_TILED(W, scalar)
#define LODE_DECL_TILED_AVX2(W) LODE_DECLARE_TILED(W, avx2)
#define LODE_DECL_TILED_AVX512(W) LODE_DECLARE_TILED(W, avx512)
#define LODE_DECL_TILED_NEON(W) LODE_DECLARE_TILED(W, neon)
#define LODE_DECL_TILED_NEON_DOTPROD(W) LODE_DECLARE_TILED(W, neon_dotprod)
LODE_TILED_TYPES(LODE_DECL_TILED_SCALAR)
#if defined(__x86_64__) || defined(_M_X64)
LODE_TILED_TYPES(LODE_DECL_TILED_AVX2)
LODE_TILED_TYPES(LODE_DECL_TILED_AVX512)
#endif
/* float ggml_dot_f32_<isa>(size_t n, const float *x, const float *y): ggml_vec_dot_f32 of
 * llama.cpp's AVX-512 build (64 FMA lanes, its fold order), bit-identical on every ISA. */
float ggml_dot_f32_scalar(size_t n, const float *x, const float *y);
#if defined(__x86_64__) || defined(_M_X64)
float ggml_dot_f32_avx2(size_t n, const float *x, const float *y);
float ggml_dot_f32_avx512(size_t n, const float *x, const float *y);
#endif
#if defined(__aarch64__)
float ggml_dot_f32_neon(size_t n, const float *x, const float *y);
float ggml_dot_f32_neon_dotprod(size_t n, const float *x, const float *y);
#endif
/* void ggml_rope_pairs_<isa>(size_t n, float *lo, float *hi, const float *sc): common.h's
 * lode_rope_pairs (ggml's RoPE rotation with FMA), bit-identical on every ISA. */
void ggml_rope_pairs_scalar(size_t n, float *lo, float *hi, const float *sc);
#if defined(__x86_64__) || defined(_M_X64)
void ggml_rope_pairs_avx2(size_t n, float *lo, float *hi, const float *sc);
void ggml_rope_pairs_avx512(size_t n, float *lo, float *hi, const float *sc);
#endif
#if defined(__aarch64__)
void ggml_rope_pairs_neon(size_t n, float *lo, float *hi, const float *sc);
void ggml_rope_pairs_neon_dotprod(size_t n, float *lo, float *hi, const float *sc);
#endif
/* void ggml_fma_row_<isa>(size_t n, float *acc, const float *x, float p):
 * acc[i] = fma(x[i], p, acc[i]), bit-identical on every ISA. */
void ggml_fma_row_scalar(size_t n, float *acc, const float *x, float p);
#if defined(__x86_64__) || defined(_M_X64)
void ggml_fma_row_avx2(size_t n, float *acc, const float *x, float p);
void ggml_fma_row_avx512(size_t n, float *acc, const float *x, float p);
#endif
#if defined(__aarch64__)
void ggml_fma_row_neon(size_t n, float *acc, const float *x, float p);
void ggml_fma_row_neon_dotprod(size_t n, float *acc, const float *x, float p);
#endif
/* void ggml_round_f16_row_<isa>(size_t n, float *x): x[i] = f32(f16(x[i])), round to nearest
 * even (ggml's F16 accumulators: ggml_vec_mad_f16 / ggml_vec_scale_f16 store each lane as
 * F16), bit-identical on every ISA for every non-NaN input. */
void ggml_round_f16_row_scalar(size_t n, float *x);
#if defined(__x86_64__) || defined(_M_X64)
void ggml_round_f16_row_avx2(size_t n, float *x);
void ggml_round_f16_row_avx512(size_t n, float *x);
#endif
#if defined(__aarch64__)
void ggml_round_f16_row_neon(size_t n, float *x);
void ggml_round_f16_row_neon_dotprod(size_t n, float *x);
#endif
/* void ggml_f16_to_f32_row_<isa>(size_t n, const void *x, float *y): n binary16 values (any
 * alignment) to f32, exact (an F16 K/V cache read back). */
void ggml_f16_to_f32_row_scalar(size_t n, const void *x, float *y);
#if defined(__x86_64__) || defined(_M_X64)
void ggml_f16_to_f32_row_avx2(size_t n, const void *x, float *y);
void ggml_f16_to_f32_row_avx512(size_t n, const void *x, float *y);
#endif
#if defined(__aarch64__)
void ggml_f16_to_f32_row_neon(size_t n, const void *x, float *y);
void ggml_f16_to_f32_row_neon_dotprod(size_t n, const void *x, float *y);
#endif
#if defined(__aarch64__)
LODE_TILED_TYPES(LODE_DECL_TILED_NEON)
LODE_TILED_TYPES(LODE_DECL_TILED_NEON_DOTPROD)
#endif

#endif
