//! RMSNorm in f32 with an f64 sum of squares (ggml sums in double too).

#[inline]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (ss / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out = x · (mean(x²) + eps)^(-1/2) ⊙ w`. No `+1` on `w`: Gemma 3 GGUFs already store 1 + w.
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let r = inv_rms(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * r) * g;
    }
}

pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let r = inv_rms(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * r) * g;
    }
}

/// Weightless RMSNorm (Gemma 4's value norm and router input), in place.
pub fn rms_norm0(x: &mut [f32], eps: f32) {
    let r = inv_rms(x, eps);
    for v in x.iter_mut() {
        *v *= r;
    }
}

/// Row-wise `rms_norm` over `n` rows of `w.len()` values.
pub fn rms_norm_rows(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let d = w.len();
    for (o, xi) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        rms_norm(o, xi, w, eps);
    }
}
