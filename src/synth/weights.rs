//! What `lode synth` puts in each tensor: random weights with statistics chosen so that a
//! synthetic Gemma 4 behaves like a trained one where the runtime can tell the difference.
//!
//! - **Matrices** (`attn_*`, `ffn_*`, experts): centred, RMS `1/√n_in` (`n_in` = ne0), so
//!   every projection of an RMS-normalised input has outputs of RMS ≈ 1 and activations stay
//!   finite over any depth (the post-norms re-normalise each branch anyway).
//! - **q/k norms**: ≈ `hd^(-1/4)` each, so `q·k` over `hd` dims has std ≈ 1: attention
//!   logits are O(1) (Gemma 4 uses attention scale 1.0), neither uniform nor one-hot.
//! - **Embedding**: token-specific part of RMS 0.2 after the √d scale (like the gemma4-tiny
//!   fixture), small next to the ~√(2L) the layers add, so the tied head does not echo the
//!   current token; `output_norm` ≈ 20 so logits have std ≈ 4 (softcap 30).
//! - **Routing.** The router sees `z = RMSNorm₀(r)·scale/√d` with no bias, so popularity skew
//!   needs a token-independent part of `r`. The first `n_common` coordinates of every
//!   embedding row hold the same vector μ (`±1/√d`), and `post_attention_norm` /
//!   `post_ffw_norm` are zero there, so no layer writes into those coordinates: the residual
//!   keeps exactly `Λ_l·√d·μ` there (`Λ_l` = product of earlier `layer_output_scale`s).
//!   The common part of the embedding adds the same constant to every logit, so the head does
//!   not see it. Each router row has a component along μ⊙scale sized so that its logit gets
//!   `−S·ln(rank_e)` (+ a constant), using a prediction of `rms(r_l)` (every branch output
//!   has mean square `mean(w²)` of its post-norm, and is nearly orthogonal to the residual).
//!   The rest of each row is Gaussian, sized so that the token-dependent logit noise has the
//!   std of a Gumbel variable (π/√6): with Gumbel noise, top-1 choices would follow
//!   `softmax(−S·ln rank)` = Zipf(S) exactly (Gumbel-max), and top-k is Plackett–Luce
//!   sampling from it. `uniform` routing sets S = 0. Temporal locality is not forced: it
//!   comes from attention, whose output moves slowly from token to token.

use super::blocks::{self, centred_blocks, Rng};
use crate::gguf::{GgmlType, Metadata};
use crate::quant::{dequantize_row, quantize_row, TensorDesc};
use crate::{Error, Result};
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// Expert popularity of the synthetic router.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Routing {
    Uniform,
    /// Zipf with exponent S over a per-layer random ranking of the experts.
    Zipf(f32),
}

impl FromStr for Routing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Routing> {
        if s == "uniform" {
            return Ok(Routing::Uniform);
        }
        if let Some(x) = s.strip_prefix("zipf:") {
            if let Ok(v) = x.parse::<f32>() {
                if v.is_finite() && v >= 0.0 {
                    return Ok(Routing::Zipf(v));
                }
            }
        }
        Err(Error::Input(format!(
            "routing `{s}`: expected `uniform` or `zipf:S` with S >= 0 (e.g. zipf:1.0)"
        )))
    }
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Routing::Uniform => f.write_str("uniform"),
            Routing::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// RMS of the token-specific part of `token_embd · √d`.
pub const EMBD_RMS: f32 = 0.2;
/// Per-coordinate size of the common embedding part after the √d scale.
const COMMON_RMS: f32 = 1.0;
/// Mean of the final norm weight.
pub const OUTPUT_NORM_MEAN: f32 = 20.0;
/// Relative spread of norm weights, router scales and per-expert scales.
const NORM_SPREAD: f32 = 0.1;
/// Std of the standard Gumbel distribution, π/√6.
const GUMBEL_STD: f32 = 1.282_55;

/// What a tensor holds, from its GGUF name.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Embedding,
    RopeFreqs,
    OutputNorm,
    QkNorm,
    /// `post_attention_norm`, `post_ffw_norm`: the branch outputs added to the residual.
    ResidualWriteNorm,
    Norm,
    LayerScale(usize),
    Router(usize),
    /// ~1 vectors: `ffn_gate_inp.scale`, `ffn_down_exps.scale`.
    Scale,
    Matrix,
}

fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    rest[..rest.find('.')?].parse().ok()
}

fn role(name: &str, n_dims: usize) -> Result<Role> {
    let layer = || {
        layer_of(name).ok_or_else(|| Error::Input(format!("synth: `{name}` has no layer index")))
    };
    Ok(match name {
        "token_embd.weight" => Role::Embedding,
        "rope_freqs.weight" => Role::RopeFreqs,
        "output_norm.weight" => Role::OutputNorm,
        _ if name.ends_with("attn_q_norm.weight") || name.ends_with("attn_k_norm.weight") => {
            Role::QkNorm
        }
        _ if name.ends_with(".post_attention_norm.weight")
            || name.ends_with(".post_ffw_norm.weight") =>
        {
            Role::ResidualWriteNorm
        }
        _ if name.ends_with("layer_output_scale.weight") => Role::LayerScale(layer()?),
        _ if name.ends_with("ffn_gate_inp.weight") => Role::Router(layer()?),
        _ if name.ends_with(".scale") => Role::Scale,
        _ if name.contains("norm") => Role::Norm,
        _ if n_dims >= 2 => Role::Matrix,
        _ => {
            return Err(Error::Input(format!(
                "synth: don't know what to put in 1-D tensor `{name}`"
            )))
        }
    })
}

/// Options of `lode synth` that change the weights.
#[derive(Clone, Copy, Debug)]
pub struct SynthOptions {
    pub routing: Routing,
    pub seed: u64,
}

/// Everything needed to fill any tensor independently (and so in parallel or in any order).
#[derive(Clone, Debug)]
pub struct Plan {
    opts: SynthOptions,
    n_embd: usize,
    n_expert: usize,
    /// Coordinates 0..n_common of the residual are the token-independent routing channel.
    n_common: usize,
    /// Dequantized common embedding values μ on those coordinates (before the √d scale).
    common: Vec<f32>,
    /// `layer_output_scale` per layer.
    layer_scale: Vec<f32>,
    /// Predicted `Λ_l / rms(r_l)` (router input) and the non-common share of `ms(r_l)`.
    router_in: Vec<(f32, f32)>,
}

impl Plan {
    /// `tensors` is the file's full tensor list (the embedding type decides μ exactly).
    pub fn new(md: &Metadata, tensors: &[TensorDesc], opts: SynthOptions) -> Result<Plan> {
        let arch = md.architecture()?;
        let n_embd = md.usize(&format!("{arch}.embedding_length"))?;
        let n_layer = md.usize(&format!("{arch}.block_count"))?;
        let n_expert = md.usize_opt(&format!("{arch}.expert_count"))?.unwrap_or(0);
        if n_embd < 16 {
            return Err(Error::BadConfig(format!("synth: n_embd {n_embd} < 16")));
        }
        let n_common = ((n_embd / 16) / 16 * 16).clamp(1, 256);
        let mut plan = Plan {
            opts,
            n_embd,
            n_expert,
            n_common,
            common: Vec::new(),
            layer_scale: Vec::new(),
            router_in: Vec::new(),
        };
        plan.layer_scale = (0..n_layer)
            .map(|l| plan.vector(&format!("blk.{l}.layer_output_scale.weight"), 1)[0])
            .collect();
        // μ as the runtime will read it: generate embedding row 0 and dequantize it.
        let embd = tensors.iter().find(|t| t.name == "token_embd.weight");
        plan.common = match embd {
            Some(t) if t.ne.first() == Some(&(n_embd as u64)) => {
                let rb = checked_row_bytes(t.ty, n_embd)?;
                let mut row = vec![0u8; rb];
                plan.embedding_row(t.ty, 0, &mut row)?;
                let mut y = vec![0.0f32; n_embd];
                dequantize_row(t.ty, &row, &mut y)?;
                y.truncate(n_common);
                y
            }
            _ => plan.common_intended(),
        };
        // Residual prediction (see the module doc).
        let ms_common: f32 = plan.common.iter().map(|m| m * m).sum::<f32>();
        let d = n_embd as f32;
        let mut ms_token = EMBD_RMS * EMBD_RMS * (d - n_common as f32) / d;
        let mut lambda = 1.0f32;
        for l in 0..n_layer {
            let ms_of = |stem: &str| -> f32 {
                let w = plan.vector(&format!("blk.{l}.{stem}.weight"), n_embd);
                w.iter().map(|x| x * x).sum::<f32>() / d
            };
            let (a, f) = (ms_of("post_attention_norm"), ms_of("post_ffw_norm"));
            let ms_c = lambda * lambda * ms_common;
            let ms_r = ms_c + ms_token + a;
            plan.router_in
                .push((lambda / ms_r.sqrt(), (ms_token + a) / ms_r));
            ms_token = plan.layer_scale[l].powi(2) * (ms_token + a + f);
            lambda *= plan.layer_scale[l];
        }
        Ok(plan)
    }

    /// Number of residual coordinates used as the routing channel.
    pub fn n_common(&self) -> usize {
        self.n_common
    }

    fn common_intended(&self) -> Vec<f32> {
        let mut rng = Rng::stream(self.opts.seed, "common", 0);
        let m = COMMON_RMS / (self.n_embd as f32).sqrt();
        (0..self.n_common).map(|_| rng.sign() * m).collect()
    }

    /// Deterministic 1-D tensor values (norms, scales, rope_freqs).
    fn vector(&self, name: &str, len: usize) -> Vec<f32> {
        let mut rng = Rng::stream(self.opts.seed, name, 0);
        let mut around = |mean: f32| -> f32 { mean * (1.0 + NORM_SPREAD * rng.normal()) };
        match role(name, 1) {
            Ok(Role::RopeFreqs) => (0..len)
                .map(|i| if i < len / 4 { 1.0 } else { 1e30 })
                .collect(),
            Ok(Role::OutputNorm) => (0..len).map(|_| around(OUTPUT_NORM_MEAN)).collect(),
            Ok(Role::QkNorm) => {
                let w = (len as f32).powf(-0.25);
                (0..len).map(|_| around(w)).collect()
            }
            Ok(Role::ResidualWriteNorm) => (0..len)
                .map(|i| {
                    let v = around(1.0);
                    if i < self.n_common {
                        0.0
                    } else {
                        v
                    }
                })
                .collect(),
            Ok(Role::LayerScale(_)) => {
                let mut rng = Rng::stream(self.opts.seed, name, 1);
                (0..len).map(|_| 0.9 + 0.2 * rng.uniform()).collect()
            }
            _ => (0..len).map(|_| around(1.0)).collect(),
        }
    }

    /// One row of `token_embd` (token `row`): μ on the common coordinates, noise elsewhere.
    fn embedding_row(&self, ty: GgmlType, row: usize, out: &mut [u8]) -> Result<()> {
        let d = self.n_embd;
        let sigma = EMBD_RMS / (d as f32).sqrt();
        let mut rng = Rng::stream(self.opts.seed, "token_embd.weight", row as u64);
        let signs: Vec<f32> = self.common_intended();
        if ty == GgmlType::Q6K && d % 256 == 0 {
            // Direct: sub-blocks of the common part get sc = 127 and q − 32 = ±31, so every
            // row dequantizes to the same μ; the rest are random centred sub-blocks.
            let (first, rest) = out.split_at_mut(GgmlType::Q6K.block_bytes());
            centred_blocks(GgmlType::Q6K, sigma, &mut rng, rest)?;
            rng.fill(first);
            let m = COMMON_RMS / (d as f32).sqrt();
            let blk_d = m / (31.0 * 127.0);
            let mut scales = [0i8; 16];
            for (k, s) in scales.iter_mut().enumerate() {
                *s = if k < self.n_common / 16 {
                    127
                } else {
                    let f = 0.75 + 0.5 * rng.uniform();
                    let v = (sigma * f / blocks::q6k_sub_rms(blk_d, 1.0)).round();
                    (v.clamp(1.0, 127.0) as i8) * if rng.sign() > 0.0 { 1 } else { -1 }
                };
            }
            blocks::set_q6k_scales(first, blk_d, &scales);
            for (i, s) in signs.iter().enumerate() {
                blocks::set_q6k_quant(first, i, if *s > 0.0 { 63 } else { 1 });
            }
            return Ok(());
        }
        let x: Vec<f32> = (0..d)
            .map(|i| {
                if i < self.n_common {
                    signs[i]
                } else {
                    sigma * rng.normal()
                }
            })
            .collect();
        quantize_row(ty, &x, out)
    }

    /// One row (expert `e`) of layer `l`'s router, as floats.
    fn router_row(&self, l: usize, e: usize) -> Vec<f32> {
        let d = self.n_embd;
        let name = format!("blk.{l}.ffn_gate_inp.weight");
        let scale = self.vector(&format!("blk.{l}.ffn_gate_inp.scale"), d);
        let (gain, share) = self.router_in[l];
        let e_s2 = scale.iter().map(|s| s * s).sum::<f32>() / d as f32;
        let sigma = GUMBEL_STD / (e_s2 * share).sqrt();
        let mut rng = Rng::stream(self.opts.seed, &name, e as u64);
        let mut w: Vec<f32> = (0..d).map(|_| sigma * rng.normal()).collect();
        let target = match self.opts.routing {
            Routing::Uniform => 0.0,
            Routing::Zipf(s) => {
                let n = self.n_expert.max(1);
                let rank = self.ranks(l)[e] as f32 + 1.0;
                let mean_ln = (1..=n).map(|r| (r as f32).ln()).sum::<f32>() / n as f32;
                -s * (rank.ln() - mean_ln)
            }
        };
        // logit_C = (Λ/rms(r)) · Σ_C w_i μ_i s_i  →  w_C = target / gain · v / |v|²
        let v: Vec<f32> = (0..self.n_common)
            .map(|i| self.common[i] * scale[i])
            .collect();
        let v2: f32 = v.iter().map(|x| x * x).sum();
        for i in 0..self.n_common {
            w[i] = if v2 > 0.0 {
                target / gain * v[i] / v2
            } else {
                0.0
            };
        }
        w
    }

    /// Popularity rank (0 = most popular) of each expert of layer `l`.
    pub fn ranks(&self, l: usize) -> Vec<usize> {
        let n = self.n_expert;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng::stream(self.opts.seed, "routing", l as u64);
        for i in (1..n).rev() {
            let j = rng.range(0, i as u32) as usize;
            order.swap(i, j);
        }
        let mut rank = vec![0; n];
        for (r, &e) in order.iter().enumerate() {
            rank[e] = r;
        }
        rank
    }

    /// Fills `out` with the whole tensor `t` (rows in parallel).
    pub fn fill(&self, t: &TensorDesc, out: &mut [u8]) -> Result<()> {
        let ne0 = *t.ne.first().unwrap_or(&1) as usize;
        let n_el: u64 = t.ne.iter().product();
        let want = t.ty.row_bytes(n_el).ok_or_else(|| {
            Error::Input(format!("synth: `{}` is not whole {} blocks", t.name, t.ty))
        })? as usize;
        if out.len() != want {
            return Err(Error::Input(format!(
                "synth: `{}` needs {want} bytes, got {}",
                t.name,
                out.len()
            )));
        }
        let n_dims = t.ne.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
        let rb = checked_row_bytes(t.ty, ne0)?;
        match role(t.name, n_dims)? {
            Role::Embedding => out
                .par_chunks_mut(rb)
                .enumerate()
                .try_for_each(|(r, row)| self.embedding_row(t.ty, r, row)),
            Role::Router(l) => out
                .par_chunks_mut(rb)
                .enumerate()
                .try_for_each(|(e, row)| quantize_row(t.ty, &self.router_row(l, e), row)),
            Role::Matrix => {
                let rms = 1.0 / (ne0 as f32).sqrt();
                if blocks::DIRECT_TYPES.contains(&t.ty) {
                    // ~1 MiB chunks, each with its own stream: thread-count independent.
                    let bb = t.ty.block_bytes();
                    let chunk = bb * ((1 << 20) / bb).max(1);
                    out.par_chunks_mut(chunk)
                        .enumerate()
                        .try_for_each(|(i, c)| {
                            let mut rng = Rng::stream(self.opts.seed, t.name, i as u64);
                            centred_blocks(t.ty, rms, &mut rng, c)
                        })
                } else {
                    out.par_chunks_mut(rb).enumerate().try_for_each(|(r, row)| {
                        let mut rng = Rng::stream(self.opts.seed, t.name, r as u64);
                        let x: Vec<f32> = (0..ne0).map(|_| rms * rng.normal()).collect();
                        quantize_row(t.ty, &x, row)
                    })
                }
            }
            _ => {
                let x = self.vector(t.name, n_el as usize);
                quantize_row(t.ty, &x, out)
            }
        }
    }
}

fn checked_row_bytes(ty: GgmlType, n: usize) -> Result<usize> {
    ty.row_bytes(n as u64)
        .map(|b| b as usize)
        .ok_or_else(|| Error::Input(format!("synth: rows of {n} are not whole {ty} blocks")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value;

    /// A gemma4-shaped config (no tensors: μ is the intended one).
    fn metadata(n_embd: usize, n_layer: usize, n_expert: usize) -> Metadata {
        let mut md = Metadata::default();
        md.insert(
            "general.architecture".into(),
            Value::String("gemma4".into()),
        );
        md.insert("gemma4.embedding_length".into(), Value::U32(n_embd as u32));
        md.insert("gemma4.block_count".into(), Value::U32(n_layer as u32));
        md.insert("gemma4.expert_count".into(), Value::U32(n_expert as u32));
        md
    }

    /// Router popularity on residuals built as the design predicts them (common channel +
    /// Gaussian token part of the predicted size): `(count per expert, rank per expert)`.
    fn popularity(routing: Routing, layer: usize) -> (Vec<usize>, Vec<usize>) {
        let (d, n_layer, n_expert, k) = (512, 8, 32, 4);
        let plan = Plan::new(
            &metadata(d, n_layer, n_expert),
            &[],
            SynthOptions { routing, seed: 5 },
        )
        .unwrap();
        let (gain, share) = plan.router_in[layer];
        let lambda = plan.layer_scale[..layer].iter().product::<f32>();
        let ms_r = (lambda / gain).powi(2);
        let token_std = ((ms_r * share) * d as f32 / (d - plan.n_common) as f32).sqrt();
        let scale = plan.vector(&format!("blk.{layer}.ffn_gate_inp.scale"), d);
        let rows: Vec<Vec<f32>> = (0..n_expert).map(|e| plan.router_row(layer, e)).collect();
        let mut rng = Rng::new(99);
        let mut count = vec![0usize; n_expert];
        for _ in 0..4000 {
            let r: Vec<f32> = (0..d)
                .map(|i| {
                    if i < plan.n_common {
                        lambda * (d as f32).sqrt() * plan.common[i]
                    } else {
                        token_std * rng.normal()
                    }
                })
                .collect();
            let rms = (r.iter().map(|x| x * x).sum::<f32>() / d as f32).sqrt();
            let z: Vec<f32> = (0..d)
                .map(|i| r[i] / rms * scale[i] / (d as f32).sqrt())
                .collect();
            let mut logits: Vec<(f32, usize)> = rows
                .iter()
                .enumerate()
                .map(|(e, w)| (w.iter().zip(&z).map(|(a, b)| a * b).sum(), e))
                .collect();
            logits.sort_by(|a, b| b.0.total_cmp(&a.0));
            for &(l, e) in &logits[..k] {
                assert!(l.is_finite() && l.abs() < 20.0, "logit {l}");
                count[e] += 1;
            }
        }
        (count, plan.ranks(layer))
    }

    #[test]
    fn zipf_router_prefers_low_ranks_and_uniform_router_does_not() {
        for layer in [0, 7] {
            let (count, rank) = popularity(Routing::Zipf(1.0), layer);
            let mut by_rank = vec![0; count.len()];
            for (e, &c) in count.iter().enumerate() {
                by_rank[rank[e]] = c;
            }
            // most popular quarter vs least popular quarter
            let top: usize = by_rank[..8].iter().sum();
            let bottom: usize = by_rank[24..].iter().sum();
            assert!(top > 4 * bottom, "layer {layer}: {by_rank:?}");
            let (count, _) = popularity(Routing::Uniform, layer);
            let (max, min) = (*count.iter().max().unwrap(), *count.iter().min().unwrap());
            assert!(max < 3 * min, "layer {layer} uniform: {count:?}");
        }
    }
}
