//! NEOX ("rotate-half") RoPE: dim i pairs with i + D/2, `φ_i = pos · ω_i`,
//! `ω_i = base^(−2i/D) / f_i` with optional per-pair frequency factors `f` (llama.cpp
//! `rope_freqs`; Gemma 4's proportional RoPE is `f = [1]×k + [1e30]×(D/2 − k)`).

/// Precomputed inverse frequencies for one head layout.
#[derive(Clone, Debug)]
pub struct Rope {
    /// ω_i for the rotated pairs (length n_rot / 2).
    inv_freq: Vec<f32>,
    /// Head dimension D (pairs are (i, i + n_rot/2) inside the first n_rot dims).
    n_rot: usize,
}

impl Rope {
    /// `n_rot` dims rotate (pairs (i, i + n_rot/2)), exponent denominator `n_rot`; `freq_scale`
    /// multiplies positions (linear RoPE scaling; 1.0 = none). The inverse frequencies are
    /// computed in f32 like transformers' `_compute_default_rope_parameters`.
    pub fn new(base: f32, n_rot: usize, freq_factors: Option<&[f32]>, freq_scale: f32) -> Rope {
        let inv_freq = (0..n_rot / 2)
            .map(|i| {
                let e = (2 * i) as f32 / n_rot as f32;
                let w = 1.0 / base.powf(e) * freq_scale;
                match freq_factors {
                    Some(f) => w / f[i],
                    None => w,
                }
            })
            .collect();
        Rope { inv_freq, n_rot }
    }

    pub fn n_rot(&self) -> usize {
        self.n_rot
    }

    /// Rotates every head of `x` ([n_head × head_dim]) to position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.n_rot / 2;
        for (i, &w) in self.inv_freq.iter().enumerate() {
            let (s, c) = Self::sin_cos(pos, w);
            for h in x.chunks_exact_mut(head_dim) {
                let (x0, x1) = (h[i], h[i + half]);
                h[i] = x0 * c - x1 * s;
                h[i + half] = x1 * c + x0 * s;
            }
        }
    }

    /// The angle in f32 like transformers (pos · inv_freq), then cos/sin of that f32 value.
    fn sin_cos(pos: usize, w: f32) -> (f32, f32) {
        let a = (pos as f32 * w) as f64;
        (a.sin() as f32, a.cos() as f32)
    }

    /// Floats per position in a [`Rope::table`].
    pub fn table_len(&self) -> usize {
        self.n_rot
    }

    /// cos/sin of positions `p0..p0 + n` into `cs` (`[n × n_rot]`: n_rot/2 cosines, then
    /// n_rot/2 sines), so every layer and head of a batch reuses one sin/cos per angle.
    pub fn table(&self, p0: usize, n: usize, cs: &mut [f32]) {
        let half = self.n_rot / 2;
        for (t, row) in cs[..n * self.n_rot]
            .chunks_exact_mut(self.n_rot)
            .enumerate()
        {
            for (i, &w) in self.inv_freq.iter().enumerate() {
                let (s, c) = Self::sin_cos(p0 + t, w);
                row[i] = c;
                row[half + i] = s;
            }
        }
    }

    /// [`Rope::apply`] with the cos/sin of one position from [`Rope::table`] (same result).
    pub fn apply_table(&self, x: &mut [f32], head_dim: usize, cs: &[f32]) {
        let half = self.n_rot / 2;
        let (cos, sin) = cs[..self.n_rot].split_at(half);
        for h in x.chunks_exact_mut(head_dim) {
            let (a, b) = h[..self.n_rot].split_at_mut(half);
            for i in 0..half {
                let (x0, x1, c, s) = (a[i], b[i], cos[i], sin[i]);
                a[i] = x0 * c - x1 * s;
                b[i] = x1 * c + x0 * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_pairs_half_apart() {
        let r = Rope::new(10000.0, 4, None, 1.0);
        let mut x = [1.0, 0.0, 0.0, 0.0];
        r.apply(&mut x, 4, 1);
        // pair (0, 2) rotates by 1 rad; pair (1, 3) by 0.01 rad on zeros
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(x[1], 0.0);
    }

    #[test]
    fn table_gives_apply_bit_for_bit() {
        let r = Rope::new(10000.0, 8, None, 1.0);
        let mut cs = vec![0.0; 3 * r.table_len()];
        r.table(5, 3, &mut cs);
        for t in 0..3 {
            let mut x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut y = x.clone();
            r.apply(&mut x, 8, 5 + t);
            r.apply_table(&mut y, 8, &cs[t * 8..]);
            assert_eq!(x, y);
        }
    }
}
