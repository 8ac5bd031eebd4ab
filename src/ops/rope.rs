//! NEOX ("rotate-half") RoPE: dim i pairs with i + D/2, `φ_i = pos · ω_i`,
//! `ω_i = base^(−2i/D) / f_i` with optional per-pair frequency factors `f` (llama.cpp
//! `rope_freqs`; Gemma 4's proportional RoPE is `f = [1]×k + [1e30]×(D/2 − k)`).
//!
//! Two ways to get the angles and rotate ([`Precision`]): `Exact` follows transformers
//! (`inv_freq` from `powf`, angle `pos · ω_i` in f32, sin/cos of it, plain products);
//! `Kernels` follows ggml's `ggml_compute_forward_rope_flt`: `θ` starts at `pos` and is
//! multiplied by `base^(−2/D)` once per pair (the rounding accumulates), `sinf`/`cosf` in f32,
//! and the rotation as GCC contracts it, `fma(x0, cos, −x1·sin)` and `fma(x0, sin, x1·cos)`.

use super::Precision;
use crate::kernels::KernelTable;

/// Precomputed frequencies for one head layout.
#[derive(Clone, Debug)]
pub struct Rope {
    /// ω_i for the rotated pairs (length n_rot / 2), Exact's angles.
    inv_freq: Vec<f32>,
    /// Per-pair divisors `f_i` (1 when absent), Kernels' angles.
    freq_factors: Vec<f32>,
    /// `powf(base, −2/n_rot)`, ggml's `theta_scale`.
    theta_scale: f32,
    freq_scale: f32,
    /// Head dimension D (pairs are (i, i + n_rot/2) inside the first n_rot dims).
    n_rot: usize,
    precision: Precision,
}

impl Rope {
    /// `n_rot` dims rotate (pairs (i, i + n_rot/2)), exponent denominator `n_rot`; `freq_scale`
    /// multiplies positions (linear RoPE scaling; 1.0 = none). Exact computes the inverse
    /// frequencies in f32 like transformers' `_compute_default_rope_parameters`.
    pub fn new(
        base: f32,
        n_rot: usize,
        freq_factors: Option<&[f32]>,
        freq_scale: f32,
        precision: Precision,
    ) -> Rope {
        let ff = |i: usize| freq_factors.map_or(1.0, |f| f[i]);
        let inv_freq = (0..n_rot / 2)
            .map(|i| {
                let e = (2 * i) as f32 / n_rot as f32;
                1.0 / base.powf(e) * freq_scale / ff(i)
            })
            .collect();
        Rope {
            inv_freq,
            freq_factors: (0..n_rot / 2).map(ff).collect(),
            theta_scale: base.powf(-2.0 / n_rot as f32),
            freq_scale,
            n_rot,
            precision,
        }
    }

    pub fn n_rot(&self) -> usize {
        self.n_rot
    }

    /// ω_i of each rotated pair (pairs (i, i + n_rot/2)), as `Exact` uses them.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// Rotates every head of `x` ([n_head × head_dim]) to position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        match self.precision {
            Precision::Exact => self.apply_exact(x, head_dim, pos),
            Precision::Kernels => self.apply_ggml(x, head_dim, pos),
        }
    }

    /// The `(sin, cos)` of each rotated pair at `pos` (`n_rot / 2` entries), exactly as
    /// [`Rope::apply`] computes them: compute once per position, then rotate every head (and
    /// every layer with this RoPE) with [`Rope::apply_sin_cos`], the same bits as `apply`.
    pub fn sin_cos(&self, pos: usize, out: &mut [[f32; 2]]) {
        match self.precision {
            Precision::Exact => {
                let p = pos as f32;
                for (o, &w) in out.iter_mut().zip(&self.inv_freq) {
                    let a = (p * w) as f64;
                    *o = [a.sin() as f32, a.cos() as f32];
                }
            }
            Precision::Kernels => {
                let mut theta = pos as f32;
                for (o, &ff) in out.iter_mut().zip(&self.freq_factors) {
                    let t = self.freq_scale * (theta / ff);
                    *o = [t.sin(), t.cos()];
                    theta *= self.theta_scale;
                }
            }
        }
    }

    /// [`Rope::apply`] with the angles of [`Rope::sin_cos`] for the same position.
    pub fn apply_sin_cos(&self, x: &mut [f32], head_dim: usize, sc: &[[f32; 2]]) {
        let half = self.n_rot / 2;
        let sc = &sc[..half];
        let kt = KernelTable::detect();
        for h in x.chunks_exact_mut(head_dim) {
            let (lo, hi) = h[..2 * half].split_at_mut(half);
            match self.precision {
                Precision::Exact => {
                    for ((a, b), &[s, c]) in lo.iter_mut().zip(hi.iter_mut()).zip(sc) {
                        let (x0, x1) = (*a, *b);
                        *a = x0 * c - x1 * s;
                        *b = x1 * c + x0 * s;
                    }
                }
                // `apply_ggml`'s x0.mul_add(c, −x1·s) and x0.mul_add(s, x1·c) per pair, in C
                // (one FMA instruction each where the CPU has them, not a libm `fmaf` call)
                Precision::Kernels => kt.ggml_rope_pairs(lo, hi, sc),
            }
        }
    }

    fn apply_exact(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.n_rot / 2;
        let p = pos as f32;
        for (i, &w) in self.inv_freq.iter().enumerate() {
            // angle in f32 like transformers (pos · inv_freq), then cos/sin of that f32 value
            let a = (p * w) as f64;
            let (s, c) = (a.sin() as f32, a.cos() as f32);
            for h in x.chunks_exact_mut(head_dim) {
                let (x0, x1) = (h[i], h[i + half]);
                h[i] = x0 * c - x1 * s;
                h[i + half] = x1 * c + x0 * s;
            }
        }
    }

    /// `ggml_rope_cache_init` + `rotate_pairs` (ext_factor 0, attn_factor 1). Rust's f32
    /// `sin`/`cos` call the same libm `sinf`/`cosf` as ggml.
    fn apply_ggml(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.n_rot / 2;
        let mut theta = pos as f32;
        for (i, &ff) in self.freq_factors.iter().enumerate() {
            let t = self.freq_scale * (theta / ff);
            let (s, c) = (t.sin(), t.cos());
            theta *= self.theta_scale;
            for h in x.chunks_exact_mut(head_dim) {
                let (x0, x1) = (h[i], h[i + half]);
                h[i] = x0.mul_add(c, -(x1 * s));
                h[i + half] = x0.mul_add(s, x1 * c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_pairs_half_apart() {
        for p in [Precision::Exact, Precision::Kernels] {
            let r = Rope::new(10000.0, 4, None, 1.0, p);
            let mut x = [1.0, 0.0, 0.0, 0.0];
            r.apply(&mut x, 4, 1);
            // pair (0, 2) rotates by 1 rad; pair (1, 3) by 0.01 rad on zeros
            assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[2] - 1f32.sin()).abs() < 1e-6);
            assert_eq!(x[1], 0.0);
        }
    }

    #[test]
    fn sin_cos_table_gives_the_bits_of_apply() {
        for p in [Precision::Exact, Precision::Kernels] {
            let r = Rope::new(10000.0, 16, None, 0.5, p);
            let x0: Vec<f32> = (0..48).map(|i| (i as f32 * 0.77).sin() * 3.0).collect();
            for pos in [0, 1, 7, 300, 4097] {
                let mut want = x0.clone();
                r.apply(&mut want, 16, pos);
                let mut sc = [[0f32; 2]; 8];
                r.sin_cos(pos, &mut sc);
                let mut got = x0.clone();
                r.apply_sin_cos(&mut got, 16, &sc);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{p:?} pos {pos}");
            }
        }
    }
}
