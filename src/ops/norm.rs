//! RMSNorm. [`Precision::Exact`] squares and sums in f64; [`Precision::Kernels`] follows
//! ggml's `ggml_compute_forward_rms_norm_f32` bit for bit: each square rounded to f32, the sum
//! in f64, the mean as f32, `1/sqrtf(mean + eps)`, then `(x · scale) · w`.

use super::pool::Pool;
use super::Precision;

#[inline]
fn inv_rms(x: &[f32], eps: f32, p: Precision) -> f32 {
    let ss: f64 = match p {
        Precision::Exact => sum_f64(x, |v| (v as f64) * (v as f64)),
        Precision::Kernels => sum_f64(x, |v| (v * v) as f64),
    };
    let mean = (ss / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `Σ f(v)` in f64 over eight running sums instead of one chain of dependent adds (a throwaway
/// timer on a 26B-A4B decode: q/k norms and RoPE 33 → 27 µs a layer). The f64 order differs
/// from ggml's one running sum; the mean is rounded to f32 after, where the two orders'
/// difference (~1e-16 relative) can show only when the sum sits on an f32 rounding boundary.
fn sum_f64(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// `out = x · (mean(x²) + eps)^(-1/2) ⊙ w`. No `+1` on `w`: Gemma 3 GGUFs already store 1 + w.
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32, p: Precision) {
    let r = inv_rms(x, eps, p);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * r) * g;
    }
}

pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32, p: Precision) {
    let r = inv_rms(x, eps, p);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * r) * g;
    }
}

/// Weightless RMSNorm (Gemma 4's value norm and router input), in place.
pub fn rms_norm0(x: &mut [f32], eps: f32, p: Precision) {
    let r = inv_rms(x, eps, p);
    for v in x.iter_mut() {
        *v *= r;
    }
}

/// Values below which row-wise norms run on the calling thread.
const PAR_MIN: usize = 1 << 14;

/// Row-wise `rms_norm` over `n` rows of `w.len()` values (rows in parallel when there are
/// many: each row's arithmetic is unchanged).
pub fn rms_norm_rows(out: &mut [f32], x: &[f32], w: &[f32], eps: f32, p: Precision) {
    let d = w.len();
    if d == 0 {
        return;
    }
    if out.len().min(x.len()) >= PAR_MIN && rayon::current_num_threads() > 1 {
        const ROWS: usize = 4;
        let rows = out.len().min(x.len()) / d;
        Pool::current().for_chunks(&mut out[..rows * d], ROWS * d, |i, o| {
            let xs = &x[i * ROWS * d..];
            for (o, xi) in o.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
                rms_norm(o, xi, w, eps, p);
            }
        });
        return;
    }
    for (o, xi) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        rms_norm(o, xi, w, eps, p);
    }
}
