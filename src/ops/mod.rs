//! Tensor ops on f32 activations: quantized weight views and row-parallel matrix products,
//! norms, activations, RoPE, attention. Knows nothing of GGUF keys or architectures: a model
//! file binds tensors and calls these.
//!
//! Threads: matrix products, norms and activations run on [`pool::Pool`] (as many threads as
//! rayon's global pool, which the CLI sizes); kernels are single-threaded row functions, so
//! the split over rows happens here (ggml `ith`/`nth`).

mod act;
mod attention;
pub mod flash;
pub(crate) mod ggml;
mod matmul;
mod norm;
pub mod pool;
mod rope;

pub use act::{
    add_assign, exp_nonpos, geglu, geglu_inplace, gelu_tanh, max_lanes, scale, softcap, softmax,
    tanh,
};
pub use attention::{attend, AttnArith, AttnQuery, KvRows};
pub use matmul::{dequantize_row, Matmul, Precision, QMatrix, Rows};
pub use norm::{rms_norm, rms_norm0, rms_norm_inplace, rms_norm_rows};
pub use rope::Rope;

/// f32 dot product with eight independent accumulators (vectorises; the order differs from a
/// plain left-to-right sum by rounding only).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}
