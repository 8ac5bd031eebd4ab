//! Causal attention for one query row at a time, over a cache that may be a ring buffer.
//! Scores are f32 and live in a caller-provided row (never a [tokens × context] matrix).

use super::{dot, softmax};

/// K/V of one layer: `cells` slots of `[n_kv_head × head_dim]`, position t in slot `t % cells`
/// (a full cache has `cells ≥ n_ctx`, so the modulo is the identity there).
#[derive(Clone, Copy)]
pub struct KvView<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub cells: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

/// One query head at position `pos`, seeing keys `first..=pos`.
pub struct AttnQuery<'a> {
    pub q: &'a [f32],
    pub kv_head: usize,
    pub first: usize,
    pub pos: usize,
    /// Multiplies the scores (1.0 for Gemma 4; Gemma 3 scales q instead).
    pub scale: f32,
}

/// `out = Σ_t softmax_t(scale · q·k_t) v_t` for t in `first..=pos`. `scores` needs
/// `pos − first + 1` slots.
pub fn attend(kv: &KvView, a: &AttnQuery, scores: &mut [f32], out: &mut [f32]) {
    let (hd, stride) = (kv.head_dim, kv.n_kv_head * kv.head_dim);
    let off = a.kv_head * hd;
    let n = a.pos + 1 - a.first;
    let scores = &mut scores[..n];
    for (j, s) in scores.iter_mut().enumerate() {
        let cell = (a.first + j) % kv.cells;
        let k = &kv.k[cell * stride + off..][..hd];
        *s = dot(a.q, k) * a.scale;
    }
    softmax(scores);
    out[..hd].fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        let cell = (a.first + j) % kv.cells;
        let v = &kv.v[cell * stride + off..][..hd];
        for (o, &x) in out[..hd].iter_mut().zip(v) {
            *o += p * x;
        }
    }
}
