//! Gemma 4 vision encoder forward (docs/gemma4.md §7.3) and projector: patches → soft tokens.
//!
//! Reference: transformers 5.23 `Gemma4VisionModel` + `Gemma4MultimodalEmbedder`. Matrix products
//! go through [`Matmul`] (the text model's kernels and rayon pool); attention is bidirectional
//! over all patches of one image, in blocks of queries on the attention kernels (scores never
//! exceed one block × all patches).
//!
//! Where llama.cpp (commit 0c1e570) differs and lode follows transformers:
//! - MLP activation: transformers uses gelu_tanh (`hidden_activation = gelu_pytorch_tanh`);
//!   llama.cpp's gemma4v graph uses gelu_quick because the mmproj has no `clip.use_gelu` key.
//!   On the tiny oracle this alone moves llama.cpp's soft tokens by up to 2.7e-2.
//! - The resize policy lives in [`super::preprocess`].

use rayon::prelude::*;

use super::mmproj::{Mmproj, VLayer};
use super::preprocess::Patches;
use crate::gguf::{GgmlType, Gguf};
use crate::kernels::KernelTable;
use crate::ops::{self, Matmul, Precision};
use crate::{Error, Result};

/// The soft tokens of one image: `n × n_proj` values, row-major over the pooled grid
/// (`grid_w` tokens per row).
#[derive(Clone, Debug)]
pub struct SoftTokens {
    pub grid_w: usize,
    pub grid_h: usize,
    pub n_embd: usize,
    pub data: Vec<f32>,
}

impl SoftTokens {
    pub fn len(&self) -> usize {
        self.grid_w * self.grid_h
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Intermediate results kept for debugging against the reference.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// After pooling, ×√d and standardization (HF `hf_vision_pooled`): `[n × n_embd]`.
    pub pooled: Vec<f32>,
}

impl Mmproj {
    /// Runs the encoder and projector over one image's patches.
    pub fn encode(&self, patches: &Patches, precision: Precision) -> Result<SoftTokens> {
        self.encode_traced(patches, precision, None)
    }

    pub fn encode_traced(
        &self,
        patches: &Patches,
        precision: Precision,
        trace: Option<&mut Trace>,
    ) -> Result<SoftTokens> {
        let c = &self.cfg;
        let g: &Gguf = &self.gguf;
        let (d, pool) = (c.n_embd, c.pool);
        let (gw, gh) = (patches.grid_w, patches.grid_h);
        let n = gw * gh;
        let n_in = 3 * c.patch * c.patch;
        if patches.patch != c.patch || patches.data.len() != n * n_in {
            return Err(Error::Input(format!(
                "patches of {}×{} pixels ({} values) do not fit the encoder's patch {}",
                patches.patch,
                patches.patch,
                patches.data.len(),
                c.patch
            )));
        }
        if n == 0 || gw % pool != 0 || gh % pool != 0 {
            return Err(Error::Input(format!(
                "patch grid {gw}×{gh} is not a non-empty multiple of the pooling kernel {pool}"
            )));
        }
        if gw > c.n_pos || gh > c.n_pos {
            return Err(Error::Input(format!(
                "patch grid {gw}×{gh} exceeds the position table ({} rows)",
                c.n_pos
            )));
        }
        let mut mm = Matmul::new(precision);
        // 1. p → 2p − 1, patch linear, learned x/y position tables
        let x_in: Vec<f32> = patches.data.iter().map(|&p| 2.0 * p - 1.0).collect();
        let mut x = vec![0f32; n * d];
        mm.matmul(&self.w.patch_embd.view(g), &x_in, n, &mut x)?;
        drop(x_in);
        for (i, row) in x.chunks_exact_mut(d).enumerate() {
            let (px, py) = (i % gw, i / gw);
            ops::add_assign(row, &self.w.pos_x[px * d..(px + 1) * d]);
            ops::add_assign(row, &self.w.pos_y[py * d..(py + 1) * d]);
        }
        // 2. layers
        let rope = Rope2d::new(c.head_dim, c.rope_theta, gw.max(gh));
        let mut s = Scratch::new(n, d, c.n_ff);
        for l in &self.w.layers {
            layer(self, l, g, &mut mm, &rope, &mut s, &mut x, gw, n)?;
        }
        // 3. 3×3 average pooling, ×√d (f32)
        let (ow, oh) = (gw / pool, gh / pool);
        let m = ow * oh;
        let mut pooled = vec![0f32; m * d];
        let inv = 1.0 / (pool * pool) as f32;
        let sqrt_d = (d as f32).sqrt();
        for (o, dst) in pooled.chunks_exact_mut(d).enumerate() {
            let (bx, by) = (o % ow, o / ow);
            for dy in 0..pool {
                for dx in 0..pool {
                    let i = (by * pool + dy) * gw + bx * pool + dx;
                    ops::add_assign(dst, &x[i * d..(i + 1) * d]);
                }
            }
            for v in dst.iter_mut() {
                *v = *v * inv * sqrt_d;
            }
        }
        // 4. standardize (26B/31B files)
        if let (Some(b), Some(sc)) = (&self.w.std_bias, &self.w.std_scale) {
            for row in pooled.chunks_exact_mut(d) {
                for ((v, &bi), &si) in row.iter_mut().zip(b).zip(sc) {
                    *v = (*v - bi) * si;
                }
            }
        }
        if let Some(t) = trace {
            t.pooled = pooled.clone();
        }
        // 5. weightless RMSNorm, projection into the text embedding space
        for row in pooled.chunks_exact_mut(d) {
            ops::rms_norm0(row, c.eps, precision);
        }
        let mut out = vec![0f32; m * c.n_proj];
        mm.matmul(&self.w.proj.view(g), &pooled, m, &mut out)?;
        Ok(SoftTokens {
            grid_w: ow,
            grid_h: oh,
            n_embd: c.n_proj,
            data: out,
        })
    }
}

/// Per-image buffers.
struct Scratch {
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    a: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// attention: Kᵀ per head and the V rows, as f32 bytes
    kt: Vec<u8>,
    vb: Vec<u8>,
}

impl Scratch {
    fn new(n: usize, d: usize, f: usize) -> Scratch {
        let z = |len: usize| vec![0f32; len];
        Scratch {
            xb: z(n * d),
            q: z(n * d),
            k: z(n * d),
            v: z(n * d),
            att: z(n * d),
            a: z(n * d),
            gate: z(n * f),
            up: z(n * f),
            kt: Vec::new(),
            vb: Vec::new(),
        }
    }
}

/// One pre/post-norm encoder layer over all `n` patches.
#[allow(clippy::too_many_arguments)]
fn layer(
    mp: &Mmproj,
    l: &VLayer,
    g: &Gguf,
    mm: &mut Matmul,
    rope: &Rope2d,
    s: &mut Scratch,
    x: &mut [f32],
    gw: usize,
    n: usize,
) -> Result<()> {
    let c = &mp.cfg;
    let (d, hd, eps, p) = (c.n_embd, c.head_dim, c.eps, mm.precision);
    ops::rms_norm_rows(&mut s.xb, x, &l.ln1, eps, p);
    mm.matmul_many(
        &[&l.attn_q.view(g), &l.attn_k.view(g), &l.attn_v.view(g)],
        &s.xb,
        n,
        &mut [&mut s.q, &mut s.k, &mut s.v],
    )?;
    let (q, k, v) = (&mut s.q, &mut s.k, &mut s.v);
    q.par_chunks_mut(d)
        .zip(k.par_chunks_mut(d))
        .zip(v.par_chunks_mut(d))
        .enumerate()
        .for_each(|(i, ((q, k), v))| {
            let (px, py) = (i % gw, i / gw);
            for h in q.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.attn_q_norm, eps, p);
                rope.apply(h, px, py);
            }
            for h in k.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.attn_k_norm, eps, p);
                rope.apply(h, px, py);
            }
            for h in v.chunks_exact_mut(hd) {
                ops::rms_norm0(h, eps, p);
            }
        });
    // bidirectional attention, scale 1.0, in parallel blocks of queries (see `attention`)
    attention(KernelTable::detect(), c.n_head, hd, d, n, s)?;
    mm.matmul(&l.attn_out.view(g), &s.att, n, &mut s.a)?;
    for (xr, ar) in x.chunks_exact_mut(d).zip(s.a.chunks_exact_mut(d)) {
        ops::rms_norm_inplace(ar, &l.attn_post_norm, eps, p);
        ops::add_assign(xr, ar);
    }
    // GeGLU MLP with exact gelu_tanh (see the module note on llama.cpp's gelu_quick)
    ops::rms_norm_rows(&mut s.xb, x, &l.ln2, eps, p);
    mm.matmul_many(
        &[&l.ffn_gate.view(g), &l.ffn_up.view(g)],
        &s.xb,
        n,
        &mut [&mut s.gate, &mut s.up],
    )?;
    s.gate
        .par_chunks_mut(c.n_ff)
        .zip(s.up.par_chunks(c.n_ff))
        .for_each(|(g, u)| ops::geglu(g, u));
    mm.matmul(&l.ffn_down.view(g), &s.gate, n, &mut s.a)?;
    for (xr, ar) in x.chunks_exact_mut(d).zip(s.a.chunks_exact_mut(d)) {
        ops::rms_norm_inplace(ar, &l.ffn_post_norm, eps, p);
        ops::add_assign(xr, ar);
        if l.out_scale != 1.0 {
            ops::scale(xr, l.out_scale);
        }
    }
    Ok(())
}

/// Queries per attention task (`ATT_BLOCK × n` f32 of scores each).
const ATT_BLOCK: usize = 32;

/// `len` bytes of `buf` starting 64-byte aligned (the kernels take f32 rows as bytes).
fn aligned(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buf.resize(len + 64, 0);
    let off = buf.as_ptr().align_offset(64).min(64);
    &mut buf[off..off + len]
}

/// `s.att[t, head h] = Σ_j softmax_j(q_t,h · k_j,h) v_j,h` over all `n` patches.
///
/// Both products run on the kernels' `attn_axpy` (broadcast-FMA over rows, no horizontal
/// sums): scores of a block of queries as `Σ_i q_t[i] · Kᵀ_h[i]` over the `hd` rows of the
/// head's transposed keys, then `Σ_j p_t[j] · V_j,h` straight from the V rows. Blocks of
/// queries run in parallel; the scores never exceed `ATT_BLOCK × n`.
fn attention(
    kt: &KernelTable,
    n_head: usize,
    hd: usize,
    d: usize,
    n: usize,
    s: &mut Scratch,
) -> Result<()> {
    // Kᵀ per head: [n_head][hd][n]; V rows as bytes: [n][d]
    let ktb = aligned(&mut s.kt, n_head * hd * n * 4);
    ktb.par_chunks_mut(n * 4).enumerate().for_each(|(r, dst)| {
        let (h, i) = (r / hd, r % hd);
        let col = h * hd + i;
        for (j, o) in dst.chunks_exact_mut(4).enumerate() {
            o.copy_from_slice(&s.k[j * d + col].to_le_bytes());
        }
    });
    let vb = aligned(&mut s.vb, n * d * 4);
    vb.par_chunks_mut(d * 4)
        .zip(s.v.par_chunks(d))
        .for_each(|(dst, src)| {
            for (o, x) in dst.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        });
    let (ktb, vb, q) = (&*ktb, &*vb, &s.q);
    s.att[..n * d]
        .par_chunks_mut(ATT_BLOCK * d)
        .enumerate()
        .try_for_each_init(
            || (vec![0f32; ATT_BLOCK * n], [0f32; ATT_BLOCK]),
            |(scores, inv), (blk, att)| -> Result<()> {
                let t0 = blk * ATT_BLOCK;
                let b = att.len() / d;
                let scores = &mut scores[..b * n];
                att.fill(0.0);
                for h in 0..n_head {
                    let off = h * hd;
                    scores.fill(0.0);
                    kt.attn_axpy(
                        GgmlType::F32,
                        n,
                        hd,
                        &ktb[h * hd * n * 4..(h + 1) * hd * n * 4],
                        n * 4,
                        &q[t0 * d + off..],
                        d,
                        b,
                        scores,
                        n,
                    )?;
                    for (row, inv) in scores.chunks_exact_mut(n).zip(inv.iter_mut()) {
                        *inv = exp_row(row);
                    }
                    kt.attn_axpy(
                        GgmlType::F32,
                        hd,
                        n,
                        &vb[off * 4..],
                        d * 4,
                        scores,
                        n,
                        b,
                        &mut att[off..],
                        d,
                    )?;
                    for (row, &inv) in att.chunks_exact_mut(d).zip(inv.iter()) {
                        ops::scale(&mut row[off..off + hd], inv);
                    }
                }
                Ok(())
            },
        )
}

/// The unnormalized softmax of one row in place, `x ← e^(x − max x)` ([`ops::exp_nonpos`]); returns
/// `1 / Σ x` (summed in 16 f32 lanes, folded in f64).
fn exp_row(x: &mut [f32]) -> f32 {
    const L: usize = 16;
    let max = ops::max_lanes(x, |&v| v);
    let mut acc = [0f32; L];
    let mut it = x.chunks_exact_mut(L);
    for ch in &mut it {
        for (a, v) in acc.iter_mut().zip(ch.iter_mut()) {
            *v = ops::exp_nonpos(*v - max);
            *a += *v;
        }
    }
    let mut sum: f64 = acc.iter().map(|&a| a as f64).sum();
    for v in it.into_remainder() {
        *v = ops::exp_nonpos(*v - max);
        sum += *v as f64;
    }
    (1.0 / sum) as f32
}

/// 2-D RoPE: the first half of each head rotates with the column x, the second half with the
/// row y; NEOX pairs (i, i + hd/4) inside each half, `ω_i = θ^(−2i/(hd/2))` (HF axial RoPE:
/// inverse frequencies in f32, angle `pos · ω` in f32).
struct Rope2d {
    half: usize,
    /// `[pos][hd/4]` cos and sin
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope2d {
    fn new(head_dim: usize, theta: f32, n_pos: usize) -> Rope2d {
        let half = head_dim / 2;
        let quarter = half / 2;
        let inv: Vec<f32> = (0..quarter)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / half as f32))
            .collect();
        let mut cos = Vec::with_capacity(n_pos * quarter);
        let mut sin = Vec::with_capacity(n_pos * quarter);
        for pos in 0..n_pos {
            for &w in &inv {
                let a = (pos as f32 * w) as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Rope2d { half, cos, sin }
    }

    fn apply(&self, h: &mut [f32], px: usize, py: usize) {
        let (half, quarter) = (self.half, self.half / 2);
        for (part, pos) in [(0, px), (1, py)] {
            let x = &mut h[part * half..(part + 1) * half];
            let (cs, sn) = (
                &self.cos[pos * quarter..(pos + 1) * quarter],
                &self.sin[pos * quarter..(pos + 1) * quarter],
            );
            for i in 0..quarter {
                let (x0, x1) = (x[i], x[i + quarter]);
                x[i] = x0 * cs[i] - x1 * sn[i];
                x[i + quarter] = x1 * cs[i] + x0 * sn[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_row_is_a_softmax() {
        // 37 values (two 16-lane chunks and a tail) against softmax in f64
        let x: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0)
            .collect();
        let mut y = x.clone();
        let inv = exp_row(&mut y);
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (&xi, &yi) in x.iter().zip(&y) {
            let want = (xi as f64 - max).exp() / sum;
            let got = (yi * inv) as f64;
            assert!(
                (got - want).abs() < 1e-6 * want.max(1e-3),
                "{got} vs {want}"
            );
        }
    }
}
