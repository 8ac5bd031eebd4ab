//! `extern "C"` declarations mirroring csrc/kernels.h, and one table of function pointers
//! per ISA. Every weight type has a SIMD kernel on every ISA (`simd: true`); a type without
//! one would point at the scalar kernel with `simd: false`.
//!
//! Generated from the X-macro lists in csrc/kernels.h; keep the two in sync (a kernel declared
//! here but missing in C fails to link).

use std::ffi::c_void;

/// `float vec_dot_W_A_isa(size_t n, const void *w, const void *a)`
pub type VecDotFn = unsafe extern "C" fn(n: usize, w: *const c_void, a: *const c_void) -> f32;
/// `void gemm_W_A_isa(n, w, w_row_stride, nrows, a, a_row_stride, ncols, out, out_col_stride)`
pub type GemmFn = unsafe extern "C" fn(
    n: usize,
    w: *const c_void,
    w_row_stride: usize,
    nrows: usize,
    a: *const c_void,
    a_row_stride: usize,
    ncols: usize,
    out: *mut f32,
    out_col_stride: usize,
);
/// `void quantize_row_q8_*_isa(size_t n, const float *x, void *y)`
pub type QuantizeFn = unsafe extern "C" fn(n: usize, x: *const f32, y: *mut c_void);
/// `void dequantize_row_T_scalar(size_t n, const void *x, float *y)`
pub type DequantizeFn = unsafe extern "C" fn(n: usize, x: *const c_void, y: *mut f32);

/// The kernels of one weight type on one ISA.
#[derive(Clone, Copy)]
pub struct TypeKernels {
    pub vec_dot: VecDotFn,
    pub gemm: GemmFn,
    /// false when this entry is the scalar fallback on a SIMD ISA.
    pub simd: bool,
}

/// Weight types in the order of `LODE_ALL_TYPES` (index into the tables below).
pub const N_WEIGHT_TYPES: usize = 16;

extern "C" {
    pub fn vec_dot_q4_0_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_0_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4_1_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_1_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_0_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_0_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_1_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_1_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q8_0_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q8_0_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4nl_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4nl_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_mxfp4_q8_0_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_mxfp4_q8_0_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q2k_q8k_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q2k_q8k_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q3k_q8k_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q3k_q8k_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4k_q8k_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4k_q8k_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5k_q8k_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5k_q8k_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q6k_q8k_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q6k_q8k_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4xs_q8k_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4xs_q8k_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f32_f32_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f32_f32_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f16_f32_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f16_f32_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_bf16_f32_scalar(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_bf16_f32_scalar(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn quantize_row_q8_0_scalar(n: usize, x: *const f32, y: *mut c_void);
    pub fn quantize_row_q8_k_scalar(n: usize, x: *const f32, y: *mut c_void);
    pub fn dequantize_row_q4_0_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q4_1_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q5_0_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q5_1_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q8_0_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_iq4nl_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_mxfp4_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q2k_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q3k_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q4k_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q5k_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q6k_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_iq4xs_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_f32_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_f16_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_bf16_scalar(n: usize, x: *const c_void, y: *mut f32);
    pub fn dequantize_row_q8k_scalar(n: usize, x: *const c_void, y: *mut f32);
}

pub static SCALAR: [TypeKernels; N_WEIGHT_TYPES] = [
    TypeKernels {
        vec_dot: vec_dot_q4_0_q8_0_scalar,
        gemm: gemm_q4_0_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q4_1_q8_0_scalar,
        gemm: gemm_q4_1_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_0_q8_0_scalar,
        gemm: gemm_q5_0_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_1_q8_0_scalar,
        gemm: gemm_q5_1_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q8_0_q8_0_scalar,
        gemm: gemm_q8_0_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4nl_q8_0_scalar,
        gemm: gemm_iq4nl_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_mxfp4_q8_0_scalar,
        gemm: gemm_mxfp4_q8_0_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q2k_q8k_scalar,
        gemm: gemm_q2k_q8k_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q3k_q8k_scalar,
        gemm: gemm_q3k_q8k_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q4k_q8k_scalar,
        gemm: gemm_q4k_q8k_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q5k_q8k_scalar,
        gemm: gemm_q5k_q8k_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_q6k_q8k_scalar,
        gemm: gemm_q6k_q8k_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4xs_q8k_scalar,
        gemm: gemm_iq4xs_q8k_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_f32_f32_scalar,
        gemm: gemm_f32_f32_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_f16_f32_scalar,
        gemm: gemm_f16_f32_scalar,
        simd: false,
    },
    TypeKernels {
        vec_dot: vec_dot_bf16_f32_scalar,
        gemm: gemm_bf16_f32_scalar,
        simd: false,
    },
];

#[cfg(target_arch = "x86_64")]
extern "C" {
    pub fn vec_dot_q4_0_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_0_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_0_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_0_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q8_0_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q8_0_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4k_q8k_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4k_q8k_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5k_q8k_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5k_q8k_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q6k_q8k_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q6k_q8k_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f32_f32_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f32_f32_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f16_f32_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f16_f32_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_bf16_f32_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_bf16_f32_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4_1_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_1_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_1_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_1_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4nl_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4nl_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_mxfp4_q8_0_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_mxfp4_q8_0_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q2k_q8k_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q2k_q8k_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q3k_q8k_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q3k_q8k_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4xs_q8k_avx2(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4xs_q8k_avx2(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn quantize_row_q8_0_avx2(n: usize, x: *const f32, y: *mut c_void);
    pub fn quantize_row_q8_k_avx2(n: usize, x: *const f32, y: *mut c_void);
}

#[cfg(target_arch = "x86_64")]
pub static AVX2: [TypeKernels; N_WEIGHT_TYPES] = [
    TypeKernels {
        vec_dot: vec_dot_q4_0_q8_0_avx2,
        gemm: gemm_q4_0_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4_1_q8_0_avx2,
        gemm: gemm_q4_1_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_0_q8_0_avx2,
        gemm: gemm_q5_0_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_1_q8_0_avx2,
        gemm: gemm_q5_1_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q8_0_q8_0_avx2,
        gemm: gemm_q8_0_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4nl_q8_0_avx2,
        gemm: gemm_iq4nl_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_mxfp4_q8_0_avx2,
        gemm: gemm_mxfp4_q8_0_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q2k_q8k_avx2,
        gemm: gemm_q2k_q8k_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q3k_q8k_avx2,
        gemm: gemm_q3k_q8k_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4k_q8k_avx2,
        gemm: gemm_q4k_q8k_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5k_q8k_avx2,
        gemm: gemm_q5k_q8k_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q6k_q8k_avx2,
        gemm: gemm_q6k_q8k_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4xs_q8k_avx2,
        gemm: gemm_iq4xs_q8k_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f32_f32_avx2,
        gemm: gemm_f32_f32_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f16_f32_avx2,
        gemm: gemm_f16_f32_avx2,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_bf16_f32_avx2,
        gemm: gemm_bf16_f32_avx2,
        simd: true,
    },
];

#[cfg(target_arch = "x86_64")]
extern "C" {
    pub fn vec_dot_q4_0_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_0_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_0_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_0_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q8_0_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q8_0_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4k_q8k_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4k_q8k_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5k_q8k_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5k_q8k_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q6k_q8k_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q6k_q8k_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f32_f32_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f32_f32_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f16_f32_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f16_f32_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_bf16_f32_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_bf16_f32_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4_1_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_1_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_1_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_1_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4nl_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4nl_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_mxfp4_q8_0_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_mxfp4_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q2k_q8k_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q2k_q8k_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q3k_q8k_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q3k_q8k_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4xs_q8k_avx512(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4xs_q8k_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn quantize_row_q8_0_avx512(n: usize, x: *const f32, y: *mut c_void);
    pub fn quantize_row_q8_k_avx512(n: usize, x: *const f32, y: *mut c_void);
}

#[cfg(target_arch = "x86_64")]
pub static AVX512: [TypeKernels; N_WEIGHT_TYPES] = [
    TypeKernels {
        vec_dot: vec_dot_q4_0_q8_0_avx512,
        gemm: gemm4_q4_0_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4_1_q8_0_avx512,
        gemm: gemm_q4_1_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_0_q8_0_avx512,
        gemm: gemm4_q5_0_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_1_q8_0_avx512,
        gemm: gemm_q5_1_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q8_0_q8_0_avx512,
        gemm: gemm4_q8_0_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4nl_q8_0_avx512,
        gemm: gemm_iq4nl_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_mxfp4_q8_0_avx512,
        gemm: gemm_mxfp4_q8_0_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q2k_q8k_avx512,
        gemm: gemm_q2k_q8k_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q3k_q8k_avx512,
        gemm: gemm_q3k_q8k_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4k_q8k_avx512,
        gemm: gemm_q4k_q8k_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5k_q8k_avx512,
        gemm: gemm_q5k_q8k_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q6k_q8k_avx512,
        gemm: gemm_q6k_q8k_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4xs_q8k_avx512,
        gemm: gemm_iq4xs_q8k_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f32_f32_avx512,
        gemm: gemm_f32_f32_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f16_f32_avx512,
        gemm: gemm_f16_f32_avx512,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_bf16_f32_avx512,
        gemm: gemm_bf16_f32_avx512,
        simd: true,
    },
];

#[cfg(target_arch = "aarch64")]
extern "C" {
    pub fn vec_dot_q4_0_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_0_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_0_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_0_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q8_0_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q8_0_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4k_q8k_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4k_q8k_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5k_q8k_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5k_q8k_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q6k_q8k_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q6k_q8k_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f32_f32_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f32_f32_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f16_f32_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f16_f32_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_bf16_f32_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_bf16_f32_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4_1_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_1_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_1_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_1_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4nl_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4nl_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_mxfp4_q8_0_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_mxfp4_q8_0_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q2k_q8k_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q2k_q8k_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q3k_q8k_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q3k_q8k_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4xs_q8k_neon(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4xs_q8k_neon(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn quantize_row_q8_0_neon(n: usize, x: *const f32, y: *mut c_void);
    pub fn quantize_row_q8_k_neon(n: usize, x: *const f32, y: *mut c_void);
}

#[cfg(target_arch = "aarch64")]
pub static NEON: [TypeKernels; N_WEIGHT_TYPES] = [
    TypeKernels {
        vec_dot: vec_dot_q4_0_q8_0_neon,
        gemm: gemm_q4_0_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4_1_q8_0_neon,
        gemm: gemm_q4_1_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_0_q8_0_neon,
        gemm: gemm_q5_0_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_1_q8_0_neon,
        gemm: gemm_q5_1_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q8_0_q8_0_neon,
        gemm: gemm_q8_0_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4nl_q8_0_neon,
        gemm: gemm_iq4nl_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_mxfp4_q8_0_neon,
        gemm: gemm_mxfp4_q8_0_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q2k_q8k_neon,
        gemm: gemm_q2k_q8k_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q3k_q8k_neon,
        gemm: gemm_q3k_q8k_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4k_q8k_neon,
        gemm: gemm_q4k_q8k_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5k_q8k_neon,
        gemm: gemm_q5k_q8k_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q6k_q8k_neon,
        gemm: gemm_q6k_q8k_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4xs_q8k_neon,
        gemm: gemm_iq4xs_q8k_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f32_f32_neon,
        gemm: gemm_f32_f32_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f16_f32_neon,
        gemm: gemm_f16_f32_neon,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_bf16_f32_neon,
        gemm: gemm_bf16_f32_neon,
        simd: true,
    },
];

#[cfg(target_arch = "aarch64")]
extern "C" {
    pub fn vec_dot_q4_0_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_0_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_0_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_0_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q8_0_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q8_0_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4k_q8k_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4k_q8k_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5k_q8k_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5k_q8k_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q6k_q8k_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q6k_q8k_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f32_f32_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f32_f32_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_f16_f32_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_f16_f32_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_bf16_f32_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_bf16_f32_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q4_1_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q4_1_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q5_1_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q5_1_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4nl_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4nl_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_mxfp4_q8_0_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_mxfp4_q8_0_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q2k_q8k_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q2k_q8k_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_q3k_q8k_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_q3k_q8k_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn vec_dot_iq4xs_q8k_neon_dotprod(n: usize, w: *const c_void, a: *const c_void) -> f32;
    pub fn gemm_iq4xs_q8k_neon_dotprod(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn quantize_row_q8_0_neon_dotprod(n: usize, x: *const f32, y: *mut c_void);
    pub fn quantize_row_q8_k_neon_dotprod(n: usize, x: *const f32, y: *mut c_void);
}

#[cfg(target_arch = "aarch64")]
pub static NEON_DOTPROD: [TypeKernels; N_WEIGHT_TYPES] = [
    TypeKernels {
        vec_dot: vec_dot_q4_0_q8_0_neon_dotprod,
        gemm: gemm_q4_0_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4_1_q8_0_neon_dotprod,
        gemm: gemm_q4_1_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_0_q8_0_neon_dotprod,
        gemm: gemm_q5_0_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5_1_q8_0_neon_dotprod,
        gemm: gemm_q5_1_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q8_0_q8_0_neon_dotprod,
        gemm: gemm_q8_0_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4nl_q8_0_neon_dotprod,
        gemm: gemm_iq4nl_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_mxfp4_q8_0_neon_dotprod,
        gemm: gemm_mxfp4_q8_0_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q2k_q8k_neon_dotprod,
        gemm: gemm_q2k_q8k_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q3k_q8k_neon_dotprod,
        gemm: gemm_q3k_q8k_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q4k_q8k_neon_dotprod,
        gemm: gemm_q4k_q8k_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q5k_q8k_neon_dotprod,
        gemm: gemm_q5k_q8k_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_q6k_q8k_neon_dotprod,
        gemm: gemm_q6k_q8k_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_iq4xs_q8k_neon_dotprod,
        gemm: gemm_iq4xs_q8k_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f32_f32_neon_dotprod,
        gemm: gemm_f32_f32_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_f16_f32_neon_dotprod,
        gemm: gemm_f16_f32_neon_dotprod,
        simd: true,
    },
    TypeKernels {
        vec_dot: vec_dot_bf16_f32_neon_dotprod,
        gemm: gemm_bf16_f32_neon_dotprod,
        simd: true,
    },
];

/// Scalar dequantizers in `LODE_ALL_TYPES` order (test support).
pub static DEQUANTIZE: [DequantizeFn; N_WEIGHT_TYPES] = [
    dequantize_row_q4_0_scalar,
    dequantize_row_q4_1_scalar,
    dequantize_row_q5_0_scalar,
    dequantize_row_q5_1_scalar,
    dequantize_row_q8_0_scalar,
    dequantize_row_iq4nl_scalar,
    dequantize_row_mxfp4_scalar,
    dequantize_row_q2k_scalar,
    dequantize_row_q3k_scalar,
    dequantize_row_q4k_scalar,
    dequantize_row_q5k_scalar,
    dequantize_row_q6k_scalar,
    dequantize_row_iq4xs_scalar,
    dequantize_row_f32_scalar,
    dequantize_row_f16_scalar,
    dequantize_row_bf16_scalar,
];

// ---- batched gemm ----
// `gemm_tiled_W_q8k_isa` (csrc/kernels.h `LODE_TILED_TYPES`): llama.cpp's tiled K-quant
// arithmetic, bit-identical on every ISA. Tables in `LODE_TILED_TYPES` order (Q4_K, Q5_K, Q6_K).

/// Weight types with a `gemm_tiled` kernel, in table order.
pub const TILED_TYPES: usize = 3;

macro_rules! tiled_kernels {
    ($table:ident, $cfg:meta, $($f:ident),*) => {
        #[$cfg]
        extern "C" {
            $(pub fn $f(
                n: usize,
                w: *const c_void,
                w_row_stride: usize,
                nrows: usize,
                a: *const c_void,
                a_row_stride: usize,
                ncols: usize,
                out: *mut f32,
                out_col_stride: usize,
            );)*
        }
        #[$cfg]
        pub static $table: [GemmFn; TILED_TYPES] = [$($f),*];
    };
}

tiled_kernels!(
    TILED_SCALAR,
    cfg(all()),
    gemm_tiled_q4k_q8k_scalar,
    gemm_tiled_q5k_q8k_scalar,
    gemm_tiled_q6k_q8k_scalar
);
tiled_kernels!(
    TILED_AVX2,
    cfg(target_arch = "x86_64"),
    gemm_tiled_q4k_q8k_avx2,
    gemm_tiled_q5k_q8k_avx2,
    gemm_tiled_q6k_q8k_avx2
);
tiled_kernels!(
    TILED_AVX512,
    cfg(target_arch = "x86_64"),
    gemm_tiled_q4k_q8k_avx512,
    gemm_tiled_q5k_q8k_avx512,
    gemm_tiled_q6k_q8k_avx512
);
tiled_kernels!(
    TILED_NEON,
    cfg(target_arch = "aarch64"),
    gemm_tiled_q4k_q8k_neon,
    gemm_tiled_q5k_q8k_neon,
    gemm_tiled_q6k_q8k_neon
);
tiled_kernels!(
    TILED_NEON_DOTPROD,
    cfg(target_arch = "aarch64"),
    gemm_tiled_q4k_q8k_neon_dotprod,
    gemm_tiled_q5k_q8k_neon_dotprod,
    gemm_tiled_q6k_q8k_neon_dotprod
);

// `gemm4_W_q8_0_avx512`: the AVX-512 gemm of the 32-element types over 4 rows at a time,
// bit-identical to `gemm_W_q8_0_avx512` (the AVX512 table points at these).
#[cfg(target_arch = "x86_64")]
extern "C" {
    pub fn gemm4_q4_0_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn gemm4_q5_0_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
    pub fn gemm4_q8_0_q8_0_avx512(
        n: usize,
        w: *const c_void,
        w_row_stride: usize,
        nrows: usize,
        a: *const c_void,
        a_row_stride: usize,
        ncols: usize,
        out: *mut f32,
        out_col_stride: usize,
    );
}

/// `float ggml_dot_f32_isa(size_t n, const float *x, const float *y)`
pub type DotF32Fn = unsafe extern "C" fn(n: usize, x: *const f32, y: *const f32) -> f32;

extern "C" {
    pub fn ggml_dot_f32_scalar(n: usize, x: *const f32, y: *const f32) -> f32;
}
#[cfg(target_arch = "x86_64")]
extern "C" {
    pub fn ggml_dot_f32_avx2(n: usize, x: *const f32, y: *const f32) -> f32;
    pub fn ggml_dot_f32_avx512(n: usize, x: *const f32, y: *const f32) -> f32;
}
#[cfg(target_arch = "aarch64")]
extern "C" {
    pub fn ggml_dot_f32_neon(n: usize, x: *const f32, y: *const f32) -> f32;
    pub fn ggml_dot_f32_neon_dotprod(n: usize, x: *const f32, y: *const f32) -> f32;
}

/// `void ggml_fma_row_isa(size_t n, float *acc, const float *x, float p)`
pub type FmaRowFn = unsafe extern "C" fn(n: usize, acc: *mut f32, x: *const f32, p: f32);

extern "C" {
    pub fn ggml_fma_row_scalar(n: usize, acc: *mut f32, x: *const f32, p: f32);
}
#[cfg(target_arch = "x86_64")]
extern "C" {
    pub fn ggml_fma_row_avx2(n: usize, acc: *mut f32, x: *const f32, p: f32);
    pub fn ggml_fma_row_avx512(n: usize, acc: *mut f32, x: *const f32, p: f32);
}
#[cfg(target_arch = "aarch64")]
extern "C" {
    pub fn ggml_fma_row_neon(n: usize, acc: *mut f32, x: *const f32, p: f32);
    pub fn ggml_fma_row_neon_dotprod(n: usize, acc: *mut f32, x: *const f32, p: f32);
}
/// `void attn_axpy_T_isa(n, nk, v, v_row_stride, p, p_stride, nh, acc, acc_stride)`:
/// `acc[h*acc_stride + i] += Σ_j p[h*p_stride + j] · V_j[i]` (csrc/kernels.h).
pub type AttnAxpyFn = unsafe extern "C" fn(
    n: usize,
    nk: usize,
    v: *const c_void,
    v_row_stride: usize,
    p: *const f32,
    p_stride: usize,
    nh: usize,
    acc: *mut f32,
    acc_stride: usize,
);

macro_rules! attn_kernels {
    ($($name:ident),*) => {
        extern "C" {
            $(pub fn $name(
                n: usize,
                nk: usize,
                v: *const c_void,
                v_row_stride: usize,
                p: *const f32,
                p_stride: usize,
                nh: usize,
                acc: *mut f32,
                acc_stride: usize,
            );)*
        }
    };
}

attn_kernels!(
    attn_axpy_f32_scalar,
    attn_axpy_f16_scalar,
    attn_axpy_q8_0_scalar
);
#[cfg(target_arch = "x86_64")]
attn_kernels!(
    attn_axpy_f32_avx2,
    attn_axpy_f16_avx2,
    attn_axpy_q8_0_avx2,
    attn_axpy_f32_avx512,
    attn_axpy_f16_avx512,
    attn_axpy_q8_0_avx512
);
#[cfg(target_arch = "aarch64")]
attn_kernels!(
    attn_axpy_f32_neon,
    attn_axpy_f16_neon,
    attn_axpy_q8_0_neon,
    attn_axpy_f32_neon_dotprod,
    attn_axpy_f16_neon_dotprod,
    attn_axpy_q8_0_neon_dotprod
);
