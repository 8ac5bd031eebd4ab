//! Causal attention for one query row at a time over an f32 cache, in llama.cpp's exact
//! arithmetic (the Gemma 3 parity path, `Precision::Kernels` with an f32 K/V cache). Scores are
//! f32 and live in a caller-provided scratch row (never a [tokens × context] matrix); every
//! other configuration uses the tiled [`super::flash`] attention.

use super::{dot, ggml};

/// An f32 K/V cache read row by row: the `[n_kv_head × head_dim]` K and V of position `t`.
/// (The general path, [`super::flash`], reads f16 / q8_0 caches block-wise.)
pub trait KvRows {
    fn head_dim(&self) -> usize;
    fn k_row(&self, t: usize) -> &[f32];
    fn v_row(&self, t: usize) -> &[f32];
}

/// How attention orders its sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnArith {
    /// lode's own: an 8-accumulator dot, `exp` with an f64 softmax sum, V summed in order.
    Plain,
    /// llama.cpp's CPU path (F32 K/V cache, no flash attention), AVX-512 build, for a batch
    /// of one token: KQ and KQV both through `ggml_vec_dot_f32` ([`ggml::dot_f32`]), softmax
    /// through [`ggml::soft_max`]. Lanes follow the key's cache cell, taken to be its position.
    GgmlToken,
    /// The same for a batch of two or more tokens: KQ as above (its q operand is a permuted
    /// view, so llamafile's sgemm declines it), but KQV goes through llamafile's tinyBLAS
    /// (one 16-lane FMA accumulator per output, `_mm512_reduce_add_ps` at the end).
    GgmlBatch,
}

/// One query head at position `pos`, seeing keys `first..=pos`.
pub struct AttnQuery<'a> {
    pub q: &'a [f32],
    pub kv_head: usize,
    pub first: usize,
    pub pos: usize,
    /// Multiplies the scores (1.0 for Gemma 4; Gemma 3 scales q instead).
    pub scale: f32,
    pub arith: AttnArith,
}

/// llama.cpp pads the KV view it attends over to a multiple of 256 cells.
const GGML_KV_PAD: usize = 256;

/// `out = Σ_t softmax_t(scale · q·k_t) v_t` for t in `first..=pos`. `scratch` is grown as
/// needed and reused between calls.
pub fn attend(kv: &dyn KvRows, a: &AttnQuery, scratch: &mut Vec<f32>, out: &mut [f32]) {
    let hd = kv.head_dim();
    let off = a.kv_head * hd;
    let n = a.pos + 1 - a.first;
    let lanes = match a.arith {
        AttnArith::Plain => 0,
        AttnArith::GgmlBatch => 16,
        AttnArith::GgmlToken => 64,
    };
    if scratch.len() < n + lanes * hd {
        scratch.resize(n + lanes * hd, 0.0);
    }
    let (scores, acc) = scratch.split_at_mut(n);
    let k_at = |t: usize| &kv.k_row(t)[off..off + hd];
    let v_at = |t: usize| &kv.v_row(t)[off..off + hd];
    let out = &mut out[..hd];
    if a.arith == AttnArith::Plain {
        for (j, s) in scores.iter_mut().enumerate() {
            *s = dot(a.q, k_at(a.first + j)) * a.scale;
        }
        super::softmax(scores, super::Precision::Exact);
        out.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            for (o, &x) in out.iter_mut().zip(v_at(a.first + j)) {
                *o += p * x;
            }
        }
        return;
    }
    for (j, s) in scores.iter_mut().enumerate() {
        *s = ggml::dot_f32(k_at(a.first + j), a.q) * a.scale;
    }
    ggml::soft_max(scores, a.first, (a.pos + 1).next_multiple_of(GGML_KV_PAD));
    // KQV: output dim d of lane L accumulates p_t · v_t[d] for the keys t with t % lanes == L
    // (t is the cache cell), in increasing t, by FMA.
    let acc = &mut acc[..lanes * hd];
    acc.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        let t = a.first + j;
        let row = &mut acc[(t % lanes) * hd..][..hd];
        ggml::fma_row(row, v_at(t), p); // = x.mul_add(p, s) per element, in C SIMD
    }
    for (d, o) in out.iter_mut().enumerate() {
        let lane = |l: usize| acc[l * hd + d];
        *o = if lanes == 16 {
            ggml::reduce_add16(&std::array::from_fn(lane))
        } else {
            ggml::reduce_add4x16(&std::array::from_fn(|j| {
                std::array::from_fn(|l| lane(16 * j + l))
            }))
        };
    }
}
