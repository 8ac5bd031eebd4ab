/* scalar.c: the reference kernels, portable C without intrinsics. This file is the spec:
 * every SIMD kernel is tested against the function of the same name here.
 *
 * Quantized dots follow ggml's _generic kernels: per block an exact int32 dot of the
 * integer quants, then one float multiply-add with the block scales. Float weights are
 * accumulated in double (more accurate than ggml, which rounds to f16 activations).
 */
#include "common.h"
#include "kernels.h"

/* ---- Q4_0 x Q8_0: w = d * (q - 8) ---- */

float vec_dot_q4_0_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_q4_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += ((x[i].qs[j] & 0xf) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sumf += (float)sumi * (lode_fp16_to_fp32(x[i].d) * lode_fp16_to_fp32(y[i].d));
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q4_0, q8_0, scalar)

/* ---- Q4_1 x Q8_0: w = d * q + m; m enters through the activation block sum ---- */

float vec_dot_q4_1_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_q4_1 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        int sumi = 0, suma = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += (x[i].qs[j] & 0xf) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
            suma += y[i].qs[j] + y[i].qs[j + 16];
        }
        const float dy = lode_fp16_to_fp32(y[i].d);
        sumf += (float)sumi * (lode_fp16_to_fp32(x[i].d) * dy) +
                (float)suma * (lode_fp16_to_fp32(x[i].m) * dy);
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q4_1, q8_0, scalar)

/* ---- Q5_0 x Q8_0: w = d * (q - 16), the fifth bit of element j in bit j of qh ---- */

float vec_dot_q5_0_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_q5_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            sumi += (((x[i].qs[j] & 0xf) | h0) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + 16];
        }
        sumf += (float)sumi * (lode_fp16_to_fp32(x[i].d) * lode_fp16_to_fp32(y[i].d));
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q5_0, q8_0, scalar)

/* ---- Q5_1 x Q8_0: w = d * q + m ---- */

float vec_dot_q5_1_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_q5_1 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0, suma = 0;
        for (int j = 0; j < 16; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            sumi += ((x[i].qs[j] & 0xf) | h0) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + 16];
            suma += y[i].qs[j] + y[i].qs[j + 16];
        }
        const float dy = lode_fp16_to_fp32(y[i].d);
        sumf += (float)sumi * (lode_fp16_to_fp32(x[i].d) * dy) +
                (float)suma * (lode_fp16_to_fp32(x[i].m) * dy);
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q5_1, q8_0, scalar)

/* ---- Q8_0 x Q8_0 ---- */

float vec_dot_q8_0_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_q8_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK32; ++j) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += (float)sumi * (lode_fp16_to_fp32(x[i].d) * lode_fp16_to_fp32(y[i].d));
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q8_0, q8_0, scalar)

/* ---- IQ4_NL x Q8_0: w = d * kvalues[q] ---- */

float vec_dot_iq4nl_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_iq4_nl *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += lode_kvalues_iq4nl[x[i].qs[j] & 0xf] * y[i].qs[j];
            sumi += lode_kvalues_iq4nl[x[i].qs[j] >> 4] * y[i].qs[j + 16];
        }
        sumf += (float)sumi * (lode_fp16_to_fp32(x[i].d) * lode_fp16_to_fp32(y[i].d));
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(iq4nl, q8_0, scalar)

/* ---- MXFP4 x Q8_0: w = 2^(e-128) * kvalues_mxfp4[q] ---- */

float vec_dot_mxfp4_q8_0_scalar(size_t n, const void *vw, const void *va) {
    const block_mxfp4 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK32; ++i) {
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += lode_kvalues_mxfp4[x[i].qs[j] & 0xf] * y[i].qs[j];
            sumi += lode_kvalues_mxfp4[x[i].qs[j] >> 4] * y[i].qs[j + 16];
        }
        sumf += (float)sumi * (lode_e8m0_to_fp32_half(x[i].e) * lode_fp16_to_fp32(y[i].d));
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(mxfp4, q8_0, scalar)

/* ---- Q2_K x Q8_K: 16 sub-blocks of 16, w = d*(sc&15)*q - dmin*(sc>>4), q in 0..3 ---- */

float vec_dot_q2k_q8k_scalar(size_t n, const void *vw, const void *va) {
    const block_q2_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK_K; ++i) {
        int summs = 0;
        for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
        int isum = 0, is = 0;
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        for (int k = 0; k < QK_K / 128; ++k) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; ++half) {
                    int s = 0;
                    for (int l = 0; l < 16; ++l) s += ((q2[half * 16 + l] >> shift) & 3) * q8[l];
                    isum += (x[i].scales[is++] & 0xf) * s;
                    q8 += 16;
                }
            }
            q2 += 32;
        }
        sumf += y[i].d * (lode_fp16_to_fp32(x[i].d) * (float)isum -
                          lode_fp16_to_fp32(x[i].dmin) * (float)summs);
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q2k, q8k, scalar)

/* ---- Q3_K x Q8_K: w = d * (sc-32) * (q - 4*!hbit), q in 0..3 ---- */

float vec_dot_q3k_q8k_scalar(size_t n, const void *vw, const void *va) {
    const block_q3_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK_K; ++i) {
        int8_t sc[16];
        lode_unpack_scales_q3k(x[i].scales, sc);
        int isum = 0, is = 0;
        uint8_t m = 1;
        const uint8_t *q3 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        for (int k = 0; k < QK_K / 128; ++k) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; ++half) {
                    int s = 0;
                    for (int l = 0; l < 16; ++l) {
                        const int idx = half * 16 + l;
                        const int q = ((q3[idx] >> shift) & 3) - ((x[i].hmask[idx] & m) ? 0 : 4);
                        s += q * q8[l];
                    }
                    isum += sc[is++] * s;
                    q8 += 16;
                }
                m <<= 1;
            }
            q3 += 32;
        }
        sumf += y[i].d * lode_fp16_to_fp32(x[i].d) * (float)isum;
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q3k, q8k, scalar)

/* ---- Q4_K x Q8_K: 8 sub-blocks of 32, w = d*sc*q - dmin*m; the mins use the bsums ---- */

float vec_dot_q4k_q8k_scalar(size_t n, const void *vw, const void *va) {
    const block_q4_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK_K; ++i) {
        uint8_t sm[16];
        lode_unpack_scales_mins_k4(x[i].scales, sm);
        int summs = 0;
        for (int j = 0; j < 8; ++j) summs += sm[8 + j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        int isum = 0;
        for (int j = 0; j < 4; ++j) {
            const uint8_t *q4 = x[i].qs + 32 * j;
            const int8_t *q8 = y[i].qs + 64 * j;
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; ++l) {
                lo += (q4[l] & 0xf) * q8[l];
                hi += (q4[l] >> 4) * q8[l + 32];
            }
            isum += sm[2 * j] * lo + sm[2 * j + 1] * hi;
        }
        sumf += y[i].d * (lode_fp16_to_fp32(x[i].d) * (float)isum -
                          lode_fp16_to_fp32(x[i].dmin) * (float)summs);
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q4k, q8k, scalar)

/* ---- Q5_K x Q8_K: Q4_K plus a fifth bit from qh (bit 2j / 2j+1 for chunk j) ---- */

float vec_dot_q5k_q8k_scalar(size_t n, const void *vw, const void *va) {
    const block_q5_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK_K; ++i) {
        uint8_t sm[16];
        lode_unpack_scales_mins_k4(x[i].scales, sm);
        int summs = 0;
        for (int j = 0; j < 8; ++j) summs += sm[8 + j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        int isum = 0;
        for (int j = 0; j < 4; ++j) {
            const uint8_t *q5 = x[i].qs + 32 * j;
            const int8_t *q8 = y[i].qs + 64 * j;
            const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; ++l) {
                lo += ((q5[l] & 0xf) + ((x[i].qh[l] & u1) ? 16 : 0)) * q8[l];
                hi += ((q5[l] >> 4) + ((x[i].qh[l] & u2) ? 16 : 0)) * q8[l + 32];
            }
            isum += sm[2 * j] * lo + sm[2 * j + 1] * hi;
        }
        sumf += y[i].d * (lode_fp16_to_fp32(x[i].d) * (float)isum -
                          lode_fp16_to_fp32(x[i].dmin) * (float)summs);
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q5k, q8k, scalar)

/* ---- Q6_K x Q8_K: 16 sub-blocks of 16, w = d * sc * (q - 32), q 6-bit from ql + qh ---- */

float vec_dot_q6k_q8k_scalar(size_t n, const void *vw, const void *va) {
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK_K; ++i) {
        int8_t q[QK_K];
        for (int k = 0; k < 2; ++k) {
            const uint8_t *ql = x[i].ql + 64 * k;
            const uint8_t *qh = x[i].qh + 32 * k;
            int8_t *o = q + 128 * k;
            for (int l = 0; l < 32; ++l) {
                o[l + 0] = (int8_t)(((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
                o[l + 32] = (int8_t)(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
                o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += x[i].scales[j] * s;
        }
        sumf += y[i].d * lode_fp16_to_fp32(x[i].d) * (float)isum;
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(q6k, q8k, scalar)

/* ---- IQ4_XS x Q8_K: 8 sub-blocks of 32, w = d * (ls-32) * kvalues[q] ---- */

float vec_dot_iq4xs_q8k_scalar(size_t n, const void *vw, const void *va) {
    const block_iq4_xs *x = vw;
    const block_q8_K *y = va;
    float sumf = 0.0f;
    for (size_t i = 0; i < n / QK_K; ++i) {
        int isum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t *qs = x[i].qs + 16 * ib;
            const int8_t *q8 = y[i].qs + 32 * ib;
            int s = 0;
            for (int j = 0; j < 16; ++j) {
                s += lode_kvalues_iq4nl[qs[j] & 0xf] * q8[j];
                s += lode_kvalues_iq4nl[qs[j] >> 4] * q8[j + 16];
            }
            isum += lode_iq4xs_scale(&x[i], ib) * s;
        }
        sumf += y[i].d * lode_fp16_to_fp32(x[i].d) * (float)isum;
    }
    return sumf;
}
LODE_GEMM_FROM_DOT(iq4xs, q8k, scalar)

/* ---- F32 / F16 / BF16 x F32, accumulated in double ---- */

float vec_dot_f32_f32_scalar(size_t n, const void *vw, const void *va) {
    const float *x = vw, *y = va;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += (double)x[i] * (double)y[i];
    return (float)sum;
}
LODE_GEMM_FROM_DOT(f32, f32, scalar)

float vec_dot_f16_f32_scalar(size_t n, const void *vw, const void *va) {
    const lode_half *x = vw;
    const float *y = va;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += (double)lode_fp16_to_fp32(x[i]) * (double)y[i];
    return (float)sum;
}
LODE_GEMM_FROM_DOT(f16, f32, scalar)

float vec_dot_bf16_f32_scalar(size_t n, const void *vw, const void *va) {
    const uint16_t *x = vw;
    const float *y = va;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += (double)lode_bf16_to_fp32(x[i]) * (double)y[i];
    return (float)sum;
}
LODE_GEMM_FROM_DOT(bf16, f32, scalar)

/* ---- activation quantizers ---- */

void quantize_row_q8_0_scalar(size_t n, const float *x, void *vy) {
    block_q8_0 *y = vy;
    for (size_t i = 0; i < n / QK32; ++i) lode_quantize_q8_0_block(x + i * QK32, &y[i]);
}

void quantize_row_q8_k_scalar(size_t n, const float *x, void *vy) {
    block_q8_K *y = vy;
    for (size_t i = 0; i < n / QK_K; ++i) lode_quantize_q8_k_block(x + i * QK_K, &y[i]);
}

/* ---- attention ----
 * attn_axpy_T: acc[h*acc_stride + i] += sum_j p[h*p_stride + j] * V_j[i] for i < n, h < nh,
 * V_j the row at (const char *)v + j*v_row_stride (the P.V product of one key tile). */

void attn_axpy_f32_scalar(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,
                          size_t p_stride, size_t nh, float *acc, size_t acc_stride) {
    for (size_t h = 0; h < nh; ++h)
        for (size_t j = 0; j < nk; ++j) {
            const float *x = (const float *)((const char *)v + j * v_row_stride);
            const float w = p[h * p_stride + j];
            for (size_t i = 0; i < n; ++i) acc[h * acc_stride + i] += w * x[i];
        }
}

void attn_axpy_f16_scalar(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,
                          size_t p_stride, size_t nh, float *acc, size_t acc_stride) {
    for (size_t h = 0; h < nh; ++h)
        for (size_t j = 0; j < nk; ++j) {
            const lode_half *x = (const lode_half *)((const char *)v + j * v_row_stride);
            const float w = p[h * p_stride + j];
            for (size_t i = 0; i < n; ++i) acc[h * acc_stride + i] += w * lode_fp16_to_fp32(x[i]);
        }
}

void attn_axpy_q8_0_scalar(size_t n, size_t nk, const void *v, size_t v_row_stride, const float *p,
                           size_t p_stride, size_t nh, float *acc, size_t acc_stride) {
    for (size_t h = 0; h < nh; ++h)
        for (size_t j = 0; j < nk; ++j) {
            const block_q8_0 *x = (const block_q8_0 *)((const char *)v + j * v_row_stride);
            const float w = p[h * p_stride + j];
            for (size_t b = 0; b < n / QK32; ++b) {
                const float wd = w * lode_fp16_to_fp32(x[b].d);
                for (int k = 0; k < QK32; ++k) acc[h * acc_stride + b * QK32 + k] += wd * (float)x[b].qs[k];
            }
        }
}

/* ---- dequantizers (test support: the dots above must equal a double dot of these) ---- */

void dequantize_row_q4_0_scalar(size_t n, const void *vx, float *y) {
    const block_q4_0 *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_fp16_to_fp32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)((x[i].qs[j] & 0xf) - 8);
            y[j + 16] = d * (float)((x[i].qs[j] >> 4) - 8);
        }
    }
}

void dequantize_row_q4_1_scalar(size_t n, const void *vx, float *y) {
    const block_q4_1 *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_fp16_to_fp32(x[i].d), m = lode_fp16_to_fp32(x[i].m);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)(x[i].qs[j] & 0xf) + m;
            y[j + 16] = d * (float)(x[i].qs[j] >> 4) + m;
        }
    }
}

void dequantize_row_q5_0_scalar(size_t n, const void *vx, float *y) {
    const block_q5_0 *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_fp16_to_fp32(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = d * (float)(((x[i].qs[j] & 0xf) | h0) - 16);
            y[j + 16] = d * (float)(((x[i].qs[j] >> 4) | h1) - 16);
        }
    }
}

void dequantize_row_q5_1_scalar(size_t n, const void *vx, float *y) {
    const block_q5_1 *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_fp16_to_fp32(x[i].d), m = lode_fp16_to_fp32(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = d * (float)((x[i].qs[j] & 0xf) | h0) + m;
            y[j + 16] = d * (float)((x[i].qs[j] >> 4) | h1) + m;
        }
    }
}

void dequantize_row_q8_0_scalar(size_t n, const void *vx, float *y) {
    const block_q8_0 *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK32; ++j) y[j] = d * (float)x[i].qs[j];
    }
}

void dequantize_row_iq4nl_scalar(size_t n, const void *vx, float *y) {
    const block_iq4_nl *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_fp16_to_fp32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)lode_kvalues_iq4nl[x[i].qs[j] & 0xf];
            y[j + 16] = d * (float)lode_kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

void dequantize_row_mxfp4_scalar(size_t n, const void *vx, float *y) {
    const block_mxfp4 *x = vx;
    for (size_t i = 0; i < n / QK32; ++i, y += QK32) {
        const float d = lode_e8m0_to_fp32_half(x[i].e);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)lode_kvalues_mxfp4[x[i].qs[j] & 0xf];
            y[j + 16] = d * (float)lode_kvalues_mxfp4[x[i].qs[j] >> 4];
        }
    }
}

void dequantize_row_q2k_scalar(size_t n, const void *vx, float *y) {
    const block_q2_K *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d), dmin = lode_fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int k = 0; k < QK_K / 128; ++k) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; ++half) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (float)(sc & 0xf), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * (float)((q[half * 16 + l] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
    }
}

void dequantize_row_q3k_scalar(size_t n, const void *vx, float *y) {
    const block_q3_K *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d);
        int8_t sc[16];
        lode_unpack_scales_q3k(x[i].scales, sc);
        const uint8_t *q = x[i].qs;
        int is = 0;
        uint8_t m = 1;
        for (int k = 0; k < QK_K / 128; ++k) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; ++half) {
                    const float dl = d * (float)sc[is++];
                    for (int l = 0; l < 16; ++l) {
                        const int idx = half * 16 + l;
                        *y++ = dl * (float)(((q[idx] >> shift) & 3) - ((x[i].hmask[idx] & m) ? 0 : 4));
                    }
                }
                m <<= 1;
            }
            q += 32;
        }
    }
}

void dequantize_row_q4k_scalar(size_t n, const void *vx, float *y) {
    const block_q4_K *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d), dmin = lode_fp16_to_fp32(x[i].dmin);
        uint8_t sm[16];
        lode_unpack_scales_mins_k4(x[i].scales, sm);
        for (int j = 0; j < 4; ++j) {
            const uint8_t *q = x[i].qs + 32 * j;
            const float d1 = d * sm[2 * j], m1 = dmin * sm[8 + 2 * j];
            const float d2 = d * sm[2 * j + 1], m2 = dmin * sm[8 + 2 * j + 1];
            for (int l = 0; l < 32; ++l) *y++ = d1 * (float)(q[l] & 0xf) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void dequantize_row_q5k_scalar(size_t n, const void *vx, float *y) {
    const block_q5_K *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d), dmin = lode_fp16_to_fp32(x[i].dmin);
        uint8_t sm[16];
        lode_unpack_scales_mins_k4(x[i].scales, sm);
        for (int j = 0; j < 4; ++j) {
            const uint8_t *q = x[i].qs + 32 * j;
            const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
            const float d1 = d * sm[2 * j], m1 = dmin * sm[8 + 2 * j];
            const float d2 = d * sm[2 * j + 1], m2 = dmin * sm[8 + 2 * j + 1];
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)((q[l] & 0xf) + ((x[i].qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)((q[l] >> 4) + ((x[i].qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

void dequantize_row_q6k_scalar(size_t n, const void *vx, float *y) {
    const block_q6_K *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d);
        for (int k = 0; k < 2; ++k) {
            const uint8_t *ql = x[i].ql + 64 * k;
            const uint8_t *qh = x[i].qh + 32 * k;
            const int8_t *sc = x[i].scales + 8 * k;
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                y[l + 0] = d * sc[is + 0] * (float)(((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
                y[l + 32] = d * sc[is + 2] * (float)(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
                y[l + 64] = d * sc[is + 4] * (float)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                y[l + 96] = d * sc[is + 6] * (float)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            y += 128;
        }
    }
}

void dequantize_row_iq4xs_scalar(size_t n, const void *vx, float *y) {
    const block_iq4_xs *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i) {
        const float d = lode_fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const float dl = d * (float)lode_iq4xs_scale(&x[i], ib);
            const uint8_t *qs = x[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * (float)lode_kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * (float)lode_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

void dequantize_row_f32_scalar(size_t n, const void *vx, float *y) { memcpy(y, vx, n * sizeof(float)); }

void dequantize_row_f16_scalar(size_t n, const void *vx, float *y) { ggml_f16_to_f32_row_scalar(n, vx, y); }

void dequantize_row_bf16_scalar(size_t n, const void *vx, float *y) {
    const uint16_t *x = vx;
    for (size_t i = 0; i < n; ++i) y[i] = lode_bf16_to_fp32(x[i]);
}

void dequantize_row_q8k_scalar(size_t n, const void *vx, float *y) {
    const block_q8_K *x = vx;
    for (size_t i = 0; i < n / QK_K; ++i, y += QK_K)
        for (int j = 0; j < QK_K; ++j) y[j] = x[i].d * (float)x[i].qs[j];
}

/* ---- batched gemm ----
 * gemm_tiled_<W>_q8k: llama.cpp's tiled K-quant matmul arithmetic (ggml-cpu/tiled/,
 * tiled_run_micro_vnni_8x16), which llama.cpp uses for K-quant weights over >= 8 activation
 * rows; src/ops/ggml.rs `tiled_matmul` is the Rust statement of it. Per 256-block the exact
 * integers are isum = sum_s sc_s * raw_s (the Q6_K -32 offset through the bsums) and, for
 * Q4_K/Q5_K, summs = sum_s m_s * bsum_s, the same integers vec_dot computes; then
 *     r = (float)isum * d;  r = fma(-dmin, (float)summs, r);  acc = fma(r, y.d, acc)
 * blocks in order, acc starting at 0. Since the integers are exact in any order and the float
 * steps are per (row, column), every ISA gives these bits. */

static void isum_q4k(const block_q4_K *x, const block_q8_K *y, int32_t *isum, int32_t *summs) {
    uint8_t sm[16];
    lode_unpack_scales_mins_k4(x->scales, sm);
    int s2 = 0, s1 = 0;
    for (int j = 0; j < 8; ++j) s2 += sm[8 + j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    for (int j = 0; j < 4; ++j) {
        const uint8_t *q4 = x->qs + 32 * j;
        const int8_t *q8 = y->qs + 64 * j;
        int lo = 0, hi = 0;
        for (int l = 0; l < 32; ++l) {
            lo += (q4[l] & 0xf) * q8[l];
            hi += (q4[l] >> 4) * q8[l + 32];
        }
        s1 += sm[2 * j] * lo + sm[2 * j + 1] * hi;
    }
    *isum = s1;
    *summs = s2;
}

static void isum_q5k(const block_q5_K *x, const block_q8_K *y, int32_t *isum, int32_t *summs) {
    uint8_t sm[16];
    lode_unpack_scales_mins_k4(x->scales, sm);
    int s2 = 0, s1 = 0;
    for (int j = 0; j < 8; ++j) s2 += sm[8 + j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    for (int j = 0; j < 4; ++j) {
        const uint8_t *q5 = x->qs + 32 * j;
        const int8_t *q8 = y->qs + 64 * j;
        const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
        int lo = 0, hi = 0;
        for (int l = 0; l < 32; ++l) {
            lo += ((q5[l] & 0xf) + ((x->qh[l] & u1) ? 16 : 0)) * q8[l];
            hi += ((q5[l] >> 4) + ((x->qh[l] & u2) ? 16 : 0)) * q8[l + 32];
        }
        s1 += sm[2 * j] * lo + sm[2 * j + 1] * hi;
    }
    *isum = s1;
    *summs = s2;
}

static void isum_q6k(const block_q6_K *x, const block_q8_K *y, int32_t *isum, int32_t *summs) {
    int s1 = 0;
    for (int k = 0; k < 2; ++k) {
        const uint8_t *ql = x->ql + 64 * k;
        const uint8_t *qh = x->qh + 32 * k;
        const int8_t *q8 = y->qs + 128 * k;
        const int8_t *sc = x->scales + 8 * k;
        for (int l = 0; l < 32; ++l) {
            const int q0 = (ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4);
            const int q1 = (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4);
            const int q2 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            const int q3 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            const int is = l / 16;
            s1 += sc[is + 0] * (q0 - 32) * q8[l] + sc[is + 2] * (q1 - 32) * q8[l + 32] +
                  sc[is + 4] * (q2 - 32) * q8[l + 64] + sc[is + 6] * (q3 - 32) * q8[l + 96];
        }
    }
    *isum = s1;
    *summs = 0;
}

#define TILED_SCALAR(W, BLOCK, ISUM, HAS_MIN)                                               \
    void gemm_tiled_##W##_q8k_scalar(size_t n, const void *w, size_t w_row_stride,         \
                                     size_t nrows, const void *a, size_t a_row_stride,     \
                                     size_t ncols, float *out, size_t out_col_stride) {    \
        for (size_t r = 0; r < nrows; ++r) {                                               \
            const BLOCK *x = (const BLOCK *)((const char *)w + r * w_row_stride);          \
            for (size_t c = 0; c < ncols; ++c) {                                           \
                const block_q8_K *y = (const block_q8_K *)((const char *)a + c * a_row_stride); \
                float acc = 0.0f;                                                          \
                for (size_t i = 0; i < n / QK_K; ++i) {                                    \
                    int32_t s1, s2;                                                        \
                    ISUM(&x[i], &y[i], &s1, &s2);                                          \
                    acc = lode_tiled_step(s1, s2, lode_fp16_to_fp32(x[i].d),               \
                                          HAS_MIN ? lode_fp16_to_fp32(LODE_DMIN_##W(x[i])) : 0.0f, \
                                          HAS_MIN, y[i].d, acc);                           \
                }                                                                          \
                out[c * out_col_stride + r] = acc;                                         \
            }                                                                              \
        }                                                                                  \
    }
#define LODE_DMIN_q4k(b) (b).dmin
#define LODE_DMIN_q5k(b) (b).dmin
#define LODE_DMIN_q6k(b) (b).d
TILED_SCALAR(q4k, block_q4_K, isum_q4k, 1)
TILED_SCALAR(q5k, block_q5_K, isum_q5k, 1)
TILED_SCALAR(q6k, block_q6_K, isum_q6k, 0)

/* ggml_dot_f32: ggml_vec_dot_f32 as llama.cpp's AVX-512 build computes it (the Rust statement
 * is src/ops/ggml.rs): lane i % 16 of accumulator (i / 16) % 4 takes x[i]*y[i] by FMA over
 * the first n & ~63 elements; the accumulators fold as (a0 + a2) + (a1 + a3), then 16 -> 8 ->
 * 4 lanes by halves and (t0 + t2) + (t1 + t3); the tail is a plain sum after that. Every ISA
 * gives these bits. */
float ggml_dot_f32_scalar(size_t n, const float *x, const float *y) {
    const size_t np = n & ~(size_t)63;
    float acc[4][16] = {{0}};
    for (size_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 16; ++l) acc[j][l] = fmaf(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
    float s16[16], t8[8], t4[4];
    for (int l = 0; l < 16; ++l) s16[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    for (int l = 0; l < 8; ++l) t8[l] = s16[l] + s16[l + 8];
    for (int l = 0; l < 4; ++l) t4[l] = t8[l] + t8[l + 4];
    float s = (t4[0] + t4[2]) + (t4[1] + t4[3]);
    for (size_t i = np; i < n; ++i) s += x[i] * y[i];
    return s;
}

/* ggml_rope_pairs: common.h's lode_rope_pairs (fmaf is a library call here, the reference) */
void ggml_rope_pairs_scalar(size_t n, float *lo, float *hi, const float *sc) {
    lode_rope_pairs(n, lo, hi, sc);
}

/* ggml_fma_row: acc[i] = fma(x[i], p, acc[i]), one rounding per element (ggml_vec_mad_f32's
 * lane operation), so every ISA gives these bits. */
void ggml_fma_row_scalar(size_t n, float *acc, const float *x, float p) {
    for (size_t i = 0; i < n; ++i) acc[i] = fmaf(x[i], p, acc[i]);
}

/* ggml_round_f16_row: x[i] = f32(f16(x[i])) by common.h's exact conversions (round to
 * nearest even, subnormals kept, overflow to infinity), the bits of F16C and of NEON's fcvt. */
void ggml_round_f16_row_scalar(size_t n, float *x) {
    for (size_t i = 0; i < n; ++i) x[i] = lode_fp16_to_fp32(lode_fp32_to_fp16(x[i]));
}

/* ggml_f16_to_f32_row: y[i] = the f32 value of the binary16 x[i] (exact; a signaling NaN
 * comes out quiet with its payload, as F16C's vcvtph2ps and NEON's fcvtl give it) */
void ggml_f16_to_f32_row_scalar(size_t n, const void *x, float *y) {
    const unsigned char *p = x;
    for (size_t i = 0; i < n; ++i) {
        lode_half h;
        memcpy(&h, p + 2 * i, 2);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) h |= 0x200u;
        y[i] = lode_fp16_to_fp32(h);
    }
}
