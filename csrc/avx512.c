/* avx512.c: placeholder, kernels land in the next step. */
#include "common.h"
#include "kernels.h"

void quantize_row_q8_0_avx512(size_t n, const float *x, void *vy) {
    block_q8_0 *y = vy;
    for (size_t i = 0; i < n / QK32; ++i) lode_quantize_q8_0_block(x + i * QK32, &y[i]);
}

void quantize_row_q8_k_avx512(size_t n, const float *x, void *vy) {
    block_q8_K *y = vy;
    for (size_t i = 0; i < n / QK_K; ++i) lode_quantize_q8_k_block(x + i * QK_K, &y[i]);
}
