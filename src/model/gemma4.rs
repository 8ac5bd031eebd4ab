//! Gemma 4 text decoder (`general.architecture = "gemma4"`), e.g. gemma-4-26B-A4B.
//!
//! References: transformers 5.23 `models/gemma4/modeling_gemma4.py`; llama.cpp
//! `src/models/gemma4.cpp` (commit 0c1e570); `docs/gemma4.md` §3.
//! Differences from Gemma 3: norm weights used as-is (no stored `1 + w`), attention scale 1.0
//! with q/k RMSNorm, a weightless value norm on every layer, global layers with K = V (no
//! `attn_v`) and proportional RoPE (`rope_freqs`), per-layer head dims and KV-head counts,
//! a routed MoE block beside the dense MLP, a per-layer output scale, final logit softcap.
//! Not supported yet: per-layer embeddings (E2B/E4B) and KV-shared layers (refused at load).

use std::sync::Arc;

use rayon::prelude::*;

use super::batch::{self, Layout};
use super::config::ArchKeys;
use super::kv_cache::{KFromV, KvCache, LayerSpec};
use super::weights::{mat, mat_opt, vector, vector_opt, Mat};
use super::{
    check_input, check_kv_fits, resolve_ctx, EmbdSpan, KvEstimate, Logits, Model, ModelOptions,
    SeqInput,
};
use crate::gguf::Gguf;
use crate::ops::flash::{self, Flash};
use crate::ops::pool::Pool;
use crate::ops::{self, Matmul, Precision, QMatrix, Rope};
use crate::paging::index::{ExpertIndex, ExpertMatrix};
use crate::paging::pager::{OtherMemory, Pager};
use crate::{Error, Result};

use super::N_UBATCH;

// ---------------------------------------------------------------------------------------------
// Config

/// Per-layer attention geometry.
#[derive(Clone, Copy, Debug)]
pub struct LayerConfig {
    /// `attention.sliding_window_pattern[il]` (true = sliding).
    pub sliding: bool,
    /// `attention.head_count_kv[il]`.
    pub n_head_kv: usize,
    /// `attention.key_length_swa` on sliding layers, `attention.key_length` on global ones.
    pub head_dim: usize,
    /// `feed_forward_length[il]`.
    pub n_ff: usize,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `block_count`
    pub n_layer: usize,
    /// `embedding_length`
    pub n_embd: usize,
    /// rows of `token_embd.weight`
    pub n_vocab: usize,
    /// `context_length`
    pub n_ctx_train: usize,
    /// `attention.head_count`
    pub n_head: usize,
    pub layers: Vec<LayerConfig>,
    /// `attention.sliding_window`
    pub window: usize,
    /// `attention.layer_norm_rms_epsilon`
    pub rms_eps: f32,
    /// `rope.freq_base` (global layers)
    pub rope_base: f32,
    /// `rope.freq_base_swa` (sliding layers; default 1e4)
    pub rope_base_swa: f32,
    /// `rope.dimension_count` (global layers; default = global head dim)
    pub n_rot: usize,
    /// `rope.dimension_count_swa` (default = sliding head dim)
    pub n_rot_swa: usize,
    /// `expert_count` (0 = dense model)
    pub n_expert: usize,
    /// `expert_used_count`
    pub n_expert_used: usize,
    /// `expert_feed_forward_length`
    pub n_ff_exp: usize,
    /// `final_logit_softcapping`
    pub final_softcap: Option<f32>,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let k = ArchKeys::new(g.metadata(), "gemma4");
        let n_layer = k.usize("block_count")?;
        let n_embd = k.usize("embedding_length")?;
        let head_dim = k.usize("attention.key_length")?;
        let head_dim_swa = k.usize("attention.key_length_swa")?;
        for (key, v, want) in [
            (
                "attention.value_length",
                k.usize_opt("attention.value_length")?,
                head_dim,
            ),
            (
                "attention.value_length_swa",
                k.usize_opt("attention.value_length_swa")?,
                head_dim_swa,
            ),
        ] {
            if v.is_some_and(|v| v != want) {
                return Err(Error::BadConfig(format!(
                    "{} = {v:?} differs from the key length {want}",
                    k.key(key)
                )));
            }
        }
        let n_head_kv = k.usize_per_layer("attention.head_count_kv", n_layer)?;
        let n_ff = k.usize_per_layer("feed_forward_length", n_layer)?;
        // true = sliding; Gemma 4 files always carry the bool array.
        let sliding = k
            .bool_per_layer("attention.sliding_window_pattern", n_layer)?
            .ok_or_else(|| Error::MissingKey(k.key("attention.sliding_window_pattern")))?;
        let layers: Vec<LayerConfig> = (0..n_layer)
            .map(|il| LayerConfig {
                sliding: sliding[il],
                n_head_kv: n_head_kv[il],
                head_dim: if sliding[il] { head_dim_swa } else { head_dim },
                n_ff: n_ff[il],
            })
            .collect();
        let token_embd = g.require("token_embd.weight")?;
        let cfg = Config {
            n_layer,
            n_embd,
            n_vocab: token_embd.dims.get(1).copied().unwrap_or(0) as usize,
            n_ctx_train: k.usize("context_length")?,
            n_head: k.usize("attention.head_count")?,
            layers,
            window: k.usize("attention.sliding_window")?,
            rms_eps: k.f32("attention.layer_norm_rms_epsilon")?,
            rope_base: k.f32("rope.freq_base")?,
            rope_base_swa: k.f32_opt("rope.freq_base_swa")?.unwrap_or(10_000.0),
            n_rot: k.usize_opt("rope.dimension_count")?.unwrap_or(head_dim),
            n_rot_swa: k
                .usize_opt("rope.dimension_count_swa")?
                .unwrap_or(head_dim_swa),
            n_expert: k.usize_opt("expert_count")?.unwrap_or(0),
            n_expert_used: k.usize_opt("expert_used_count")?.unwrap_or(0),
            n_ff_exp: k.usize_opt("expert_feed_forward_length")?.unwrap_or(0),
            final_softcap: k.f32_opt("final_logit_softcapping")?.filter(|&c| c > 0.0),
        };
        if k.usize_opt("embedding_length_per_layer_input")?
            .unwrap_or(0)
            != 0
        {
            return Err(Error::BadConfig(
                "per-layer embeddings (Gemma 4 E2B/E4B) are not supported yet".into(),
            ));
        }
        if k.usize_opt("attention.shared_kv_layers")?.unwrap_or(0) != 0 {
            return Err(Error::BadConfig(
                "KV-shared layers (Gemma 4 E2B/E4B) are not supported yet".into(),
            ));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::BadConfig(m));
        if self.n_layer == 0 || self.n_embd == 0 || self.n_head == 0 || self.n_vocab == 0 {
            return bad(format!(
                "gemma4: zero size (layers {}, embd {}, heads {}, vocab {})",
                self.n_layer, self.n_embd, self.n_head, self.n_vocab
            ));
        }
        if self.window == 0 {
            return bad("gemma4: sliding window 0".into());
        }
        for (il, l) in self.layers.iter().enumerate() {
            if l.n_head_kv == 0 || self.n_head % l.n_head_kv != 0 {
                return bad(format!(
                    "gemma4 layer {il}: {} query heads over {} KV heads",
                    self.n_head, l.n_head_kv
                ));
            }
            let n_rot = if l.sliding {
                self.n_rot_swa
            } else {
                self.n_rot
            };
            if l.head_dim == 0 || n_rot > l.head_dim || n_rot % 2 != 0 {
                return bad(format!(
                    "gemma4 layer {il}: RoPE over {n_rot} of {} dims",
                    l.head_dim
                ));
            }
        }
        if self.n_expert > 0 && (self.n_expert_used == 0 || self.n_expert_used > self.n_expert) {
            return bad(format!(
                "gemma4: expert_used_count {} of {}",
                self.n_expert_used, self.n_expert
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Weights

/// The routed-expert block of one layer (the expert matrices come from [`ExpertIndex`]).
#[derive(Debug)]
struct Moe {
    /// `[n_embd] → [n_expert]` router
    ffn_gate_inp: Mat,
    /// `[n_embd]` router input scale (absent → 1)
    ffn_gate_inp_scale: Vec<f32>,
    /// `[n_expert]` per-expert output scale (absent → 1)
    ffn_down_exps_scale: Vec<f32>,
    pre_ffw_norm_2: Vec<f32>,
    post_ffw_norm_1: Vec<f32>,
    post_ffw_norm_2: Vec<f32>,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    /// `[n_embd] → [n_head · head_dim]`
    attn_q: Mat,
    /// `[n_embd] → [n_head_kv · head_dim]`
    attn_k: Mat,
    /// `[n_embd] → [n_head_kv · head_dim]`; absent on K = V layers (V is the raw K projection)
    attn_v: Option<Mat>,
    /// `[head_dim]`, shared by all heads
    attn_q_norm: Vec<f32>,
    attn_k_norm: Vec<f32>,
    /// `[n_head · head_dim] → [n_embd]`
    attn_output: Mat,
    post_attention_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// `[n_embd] → [n_ff]`
    ffn_gate: Mat,
    ffn_up: Mat,
    /// `[n_ff] → [n_embd]`
    ffn_down: Mat,
    post_ffw_norm: Vec<f32>,
    moe: Option<Moe>,
    /// `layer_output_scale.weight` (absent → 1)
    layer_output_scale: f32,
}

#[derive(Debug)]
struct Weights {
    /// `[n_embd] → [n_vocab]`: embedding table and (tied) LM head
    token_embd: Mat,
    /// `output.weight` if the file has an untied head
    output: Option<Mat>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
}

impl Weights {
    fn bind(g: &Gguf, c: &Config, experts: &ExpertIndex) -> Result<Weights> {
        let d = c.n_embd;
        let mut layers = Vec::with_capacity(c.n_layer);
        for (il, lc) in c.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{il}.{s}.weight");
            let (hd, nkv) = (lc.head_dim, lc.n_head_kv);
            let moe = match g.tensor(&n("ffn_gate_inp")) {
                // Experts without their router would silently run the layer dense-only.
                None if experts.n_expert(il) > 0 => {
                    return Err(Error::MissingTensor(n("ffn_gate_inp")))
                }
                None => None,
                Some(_) => {
                    if c.n_expert == 0 {
                        return Err(Error::BadConfig(format!(
                            "{} exists but gemma4.expert_count is missing",
                            n("ffn_gate_inp")
                        )));
                    }
                    let want = (experts.n_expert(il), experts.dims(il));
                    if want != (c.n_expert, Some((d, c.n_ff_exp))) {
                        return Err(Error::BadConfig(format!(
                            "layer {il} experts: file has {} experts of (n_embd, n_ff) {:?}, \
                             config says {} of ({d}, {})",
                            want.0, want.1, c.n_expert, c.n_ff_exp
                        )));
                    }
                    Some(Moe {
                        ffn_gate_inp: mat(g, &n("ffn_gate_inp"), d, c.n_expert)?,
                        ffn_gate_inp_scale: vector_opt(
                            g,
                            &format!("blk.{il}.ffn_gate_inp.scale"),
                            d,
                        )?
                        .unwrap_or_else(|| vec![1.0; d]),
                        ffn_down_exps_scale: vector_opt(
                            g,
                            &format!("blk.{il}.ffn_down_exps.scale"),
                            c.n_expert,
                        )?
                        .unwrap_or_else(|| vec![1.0; c.n_expert]),
                        pre_ffw_norm_2: vector(g, &n("pre_ffw_norm_2"), d)?,
                        post_ffw_norm_1: vector(g, &n("post_ffw_norm_1"), d)?,
                        post_ffw_norm_2: vector(g, &n("post_ffw_norm_2"), d)?,
                    })
                }
            };
            layers.push(Layer {
                attn_norm: vector(g, &n("attn_norm"), d)?,
                attn_q: mat(g, &n("attn_q"), d, c.n_head * hd)?,
                attn_k: mat(g, &n("attn_k"), d, nkv * hd)?,
                attn_v: mat_opt(g, &n("attn_v"), d, nkv * hd)?,
                attn_q_norm: vector(g, &n("attn_q_norm"), hd)?,
                attn_k_norm: vector(g, &n("attn_k_norm"), hd)?,
                attn_output: mat(g, &n("attn_output"), c.n_head * hd, d)?,
                post_attention_norm: vector(g, &n("post_attention_norm"), d)?,
                ffn_norm: vector(g, &n("ffn_norm"), d)?,
                ffn_gate: mat(g, &n("ffn_gate"), d, lc.n_ff)?,
                ffn_up: mat(g, &n("ffn_up"), d, lc.n_ff)?,
                ffn_down: mat(g, &n("ffn_down"), lc.n_ff, d)?,
                post_ffw_norm: vector(g, &n("post_ffw_norm"), d)?,
                moe,
                layer_output_scale: vector_opt(g, &n("layer_output_scale"), 1)?
                    .map_or(1.0, |v| v[0]),
            });
        }
        Ok(Weights {
            token_embd: mat(g, "token_embd.weight", d, c.n_vocab)?,
            output: mat_opt(g, "output.weight", d, c.n_vocab)?,
            output_norm: vector(g, "output_norm.weight", d)?,
            layers,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// State: every activation buffer, sized for one batch (grown on demand, never shrunk)

#[derive(Debug, Default)]
struct State {
    mm: Matmul,
    /// residual stream `[n × n_embd]`
    x: Vec<f32>,
    /// normed input of a block `[n × n_embd]`
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// attention output before `attn_output` `[n × n_head · head_dim]`
    att: Vec<f32>,
    /// block output `[n × n_embd]`
    a: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// dense branch `[n × n_embd]`
    m1: Vec<f32>,
    /// expert branch `[n × n_embd]`
    m2: Vec<f32>,
    /// router logits `[n × n_expert]`
    router: Vec<f32>,
    /// chosen experts and weights `[n × n_expert_used]`
    top_ids: Vec<usize>,
    top_w: Vec<f32>,
    /// distinct experts routed by the batch in the current layer, ascending
    used: Vec<usize>,
    /// tokens routed to the current expert, gathered `[m × n_embd]`, and their results
    rows: Vec<(usize, f32)>,
    /// where each used expert's entries start in `rows` (one more entry at the end)
    row_start: Vec<usize>,
    /// `[n × n_expert_used]`: each token's entries of `rows`, by ascending expert
    tok_rows: Vec<usize>,
    xe: Vec<f32>,
    eg: Vec<f32>,
    eu: Vec<f32>,
    ed: Vec<f32>,
    embd_row: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Model

fn layer_specs(cfg: &Config, w: &Weights, rope: &Rope, rope_swa: &Rope) -> Vec<LayerSpec> {
    cfg.layers
        .iter()
        .zip(&w.layers)
        .map(|(l, lw)| LayerSpec {
            n_kv_head: l.n_head_kv,
            head_dim: l.head_dim,
            window: l.sliding.then_some(cfg.window),
            // K = V: store V once, derive K = RoPE(V ⊙ k_norm) on read
            k_from_v: lw.attn_v.is_none().then(|| KFromV {
                norm: lw.attn_k_norm.clone(),
                inv_freq: if l.sliding { rope_swa } else { rope }.inv_freq().to_vec(),
            }),
        })
        .collect()
}

/// Spans must be in order, disjoint, inside the input, `len × n_embd` values each, and fit
/// one batch.
fn check_spans(spans: &[EmbdSpan], n_tok: usize, d: usize, max: usize) -> Result<()> {
    let mut end = 0;
    for sp in spans {
        if sp.len == 0 || sp.start < end || sp.start + sp.len > n_tok {
            return Err(Error::Input(format!(
                "embedding span {}..{} is empty, overlaps another or leaves the {n_tok} tokens",
                sp.start,
                sp.start + sp.len
            )));
        }
        if sp.embd.len() != sp.len * d {
            return Err(Error::Input(format!(
                "embedding span of {} positions has {} values, expected {} × {d}",
                sp.len,
                sp.embd.len(),
                sp.len
            )));
        }
        if sp.len > max {
            return Err(Error::Input(format!(
                "an image of {} soft tokens exceeds the {max} the model was prepared for \
                 (reserve_image_tokens)",
                sp.len
            )));
        }
        end = sp.start + sp.len;
    }
    Ok(())
}

pub struct Gemma4 {
    gguf: Arc<Gguf>,
    cfg: Config,
    w: Weights,
    pager: Pager,
    rope: Rope,
    rope_swa: Rope,
    /// One KV cache per sequence slot.
    caches: Vec<KvCache>,
    /// The slot the single-sequence methods address ([`Model::select_seq`]).
    seq: usize,
    s: State,
    /// Longest batch the sliding-window cache holds (≥ N_UBATCH; raised for image spans by
    /// [`Model::reserve_image_tokens`]).
    ubatch_max: usize,
}

impl Gemma4 {
    pub fn load(gguf: Arc<Gguf>, opts: &ModelOptions, precision: Precision) -> Result<Gemma4> {
        let cfg = Config::from_gguf(&gguf)?;
        let experts = ExpertIndex::new(gguf.clone(), cfg.n_layer)?;
        let w = Weights::bind(&gguf, &cfg, &experts)?;
        let freqs = vector_opt(&gguf, "rope_freqs.weight", cfg.n_rot / 2)?;
        let rope = Rope::new(cfg.rope_base, cfg.n_rot, freqs.as_deref(), 1.0, precision);
        let rope_swa = Rope::new(cfg.rope_base_swa, cfg.n_rot_swa, None, 1.0, precision);
        let n_ctx = resolve_ctx(opts.n_ctx, cfg.n_ctx_train);
        let specs = layer_specs(&cfg, &w, &rope, &rope_swa);
        let caches = batch::new_caches(&specs, opts.kv_type, n_ctx, N_UBATCH, opts.n_seq)?;
        let est = caches[0].estimate();
        check_kv_fits(&est, opts.kv_type, n_ctx, caches.len())?;
        let kv_bytes = est.total() * caches.len() as u64;
        let pager = Pager::new(experts, &opts.paging, OtherMemory { kv_bytes })?;
        let mut mm = Matmul::new(precision);
        mm.ggml_tiled &= !opts.batch_invariant;
        Ok(Gemma4 {
            gguf,
            cfg,
            w,
            pager,
            rope,
            rope_swa,
            caches,
            seq: 0,
            s: State {
                mm,
                ..State::default()
            },
            ubatch_max: N_UBATCH,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The KV cache (tests poison it to prove what attention reads).
    #[doc(hidden)]
    pub fn kv_cache_mut(&mut self) -> &mut KvCache {
        &mut self.caches[self.seq]
    }

    /// Runs one batch (≤ `ubatch_max` tokens per sequence) through every layer, leaving the
    /// final residual in `s.x`. With `hidden`, the residual after the embedding and after every
    /// layer is appended (for layer-by-layer comparison with a reference).
    fn batch(&mut self, lay: &Layout, mut hidden: Option<&mut Vec<f32>>) -> Result<()> {
        let (c, n, d) = (&self.cfg, lay.n(), self.cfg.n_embd);
        let tokens = &lay.tokens;
        let g: &Gguf = &self.gguf;
        let s = &mut self.s;
        grow(&mut s.x, n * d);
        grow(&mut s.embd_row, d);
        // h₀ = E[token] · √d
        let embd = self.w.token_embd.view(g);
        let sqrt_d = (d as f32).sqrt();
        for (t, &tok) in tokens.iter().enumerate() {
            embd.dequantize_row(tok as usize, &mut s.x[t * d..(t + 1) * d])?;
            ops::scale(&mut s.x[t * d..(t + 1) * d], sqrt_d);
        }
        // given embeddings (image soft tokens) replace their placeholders, unscaled
        for &(t0, e) in &lay.embd {
            s.x[t0 * d..t0 * d + e.len()].copy_from_slice(e);
        }
        if let Some(h) = hidden.as_deref_mut() {
            h.extend_from_slice(&s.x[..n * d]);
        }
        for il in 0..c.n_layer {
            let rope = if c.layers[il].sliding {
                &self.rope_swa
            } else {
                &self.rope
            };
            attention(c, &self.w.layers[il], il, g, rope, &mut self.caches, s, lay)?;
            ffn(c, &self.w.layers[il], il, g, &mut self.pager, s, lay)?;
            if let Some(h) = hidden.as_deref_mut() {
                h.extend_from_slice(&s.x[..n * d]);
            }
            // Router look-ahead: layer il+1's router on layer il's output predicts its experts
            // (its true input only adds il+1's attention), so their reads overlap that attention.
            let next = self.w.layers.get(il + 1).and_then(|l| l.moe.as_ref());
            if let (true, Some(moe)) = (self.pager.prefetch_enabled(), next) {
                route(c, moe, g, s, n)?;
                used_experts(&s.top_ids, &mut s.used);
                self.pager.prefetch(il + 1, &s.used);
            }
        }
        self.pager.advance(n);
        Ok(())
    }

    /// Final norm, LM head and softcap for rows `rows` of the last batch, appended to `out`.
    fn head(&mut self, rows: std::ops::Range<usize>, out: &mut Vec<f32>) -> Result<()> {
        let (c, d, s) = (&self.cfg, self.cfg.n_embd, &mut self.s);
        let m = rows.len();
        grow(&mut s.xb, m * d);
        ops::rms_norm_rows(
            &mut s.xb[..m * d],
            &s.x[rows.start * d..rows.end * d],
            &self.w.output_norm,
            c.rms_eps,
            s.mm.precision,
        );
        let head = self.w.output.as_ref().unwrap_or(&self.w.token_embd);
        let at = out.len();
        out.resize(at + m * c.n_vocab, 0.0);
        s.mm.matmul(&head.view(&self.gguf), &s.xb, m, &mut out[at..])?;
        if let Some(cap) = c.final_softcap {
            ops::softcap(&mut out[at..], cap);
        }
        Ok(())
    }

    /// Layer `il`'s feed-forward block alone (dense branch, router, routed experts) on one
    /// token's residual `x` (`[n_embd]`, updated in place), for benches/moe.rs. Returns the
    /// bytes of weights it read: the dense matrices, the router and the routed experts.
    pub fn ffn_block(&mut self, il: usize, x: &mut [f32]) -> Result<u64> {
        let d = self.cfg.n_embd;
        let (Some(l), true) = (self.w.layers.get(il), x.len() == d) else {
            return Err(Error::Input(format!(
                "ffn_block: layer {il} of {}, input {} of {d}",
                self.cfg.n_layer,
                x.len()
            )));
        };
        grow(&mut self.s.x, d);
        grow(&mut self.s.xb, d);
        self.s.x[..d].copy_from_slice(x);
        // one token at position 0 (ffn reads only the row count and the positions)
        let lay = Layout {
            tokens: vec![0],
            pos: vec![0],
            ..Layout::default()
        };
        ffn(
            &self.cfg,
            l,
            il,
            &self.gguf,
            &mut self.pager,
            &mut self.s,
            &lay,
        )?;
        x.copy_from_slice(&self.s.x[..d]);
        let g = &*self.gguf;
        let dense: u64 = [&l.ffn_gate, &l.ffn_up, &l.ffn_down]
            .iter()
            .map(|m| m.view(g).data.len() as u64)
            .sum();
        let routed = l.moe.as_ref().map_or(0, |moe| {
            moe.ffn_gate_inp.view(g).data.len() as u64
                + self.s.used.len() as u64 * self.pager.index().expert_bytes(il)
        });
        Ok(dense + routed)
    }

    /// The residual stream of `tokens` (fed from position 0 after a reset) as
    /// `[n_layer + 2, n_tokens, n_embd]`: embedding, after each layer, after the final norm.
    /// For debugging against a reference implementation.
    pub fn hidden_states(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let seq = self.seq;
        check_input(tokens, self.cfg.n_vocab, 0, self.caches[seq].n_ctx())?;
        if tokens.len() > N_UBATCH {
            return Err(Error::Input(format!(
                "hidden_states takes at most {N_UBATCH} tokens"
            )));
        }
        self.caches[seq].truncate(0)?;
        let input = SeqInput {
            seq,
            tokens,
            spans: &[],
            logits: None,
        };
        let lay = Layout::new(&[input], &self.caches, self.cfg.n_vocab, N_UBATCH)?;
        let mut h = Vec::new();
        self.batch(&lay, Some(&mut h))?;
        lay.advance(&mut self.caches);
        let d = self.cfg.n_embd;
        let n = tokens.len();
        let at = h.len();
        h.resize(at + n * d, 0.0);
        ops::rms_norm_rows(
            &mut h[at..],
            &self.s.x[..n * d],
            &self.w.output_norm,
            self.cfg.rms_eps,
            self.s.mm.precision,
        );
        Ok(h)
    }
}

/// `x += post_attention_norm(W_o · attn(attn_norm(x)))` for every row of the batch; each
/// sequence's rows attend to its own cache.
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    l: &Layer,
    il: usize,
    g: &Gguf,
    rope: &Rope,
    caches: &mut [KvCache],
    s: &mut State,
    lay: &Layout,
) -> Result<()> {
    let (d, lc, eps, p, n) = (c.n_embd, &c.layers[il], c.rms_eps, s.mm.precision, lay.n());
    let (hd, nkv) = (lc.head_dim, lc.n_head_kv);
    let (qd, kvd) = (c.n_head * hd, nkv * hd);
    grow(&mut s.xb, n * d);
    grow(&mut s.q, n * qd);
    grow(&mut s.k, n * kvd);
    grow(&mut s.v, n * kvd);
    grow(&mut s.att, n * qd);
    grow(&mut s.a, n * d);
    ops::rms_norm_rows(&mut s.xb[..n * d], &s.x[..n * d], &l.attn_norm, eps, p);
    match &l.attn_v {
        Some(wv) => s.mm.matmul_many(
            &[&l.attn_q.view(g), &l.attn_k.view(g), &wv.view(g)],
            &s.xb,
            n,
            &mut [&mut s.q, &mut s.k, &mut s.v],
        )?,
        None => {
            s.mm.matmul_many(
                &[&l.attn_q.view(g), &l.attn_k.view(g)],
                &s.xb,
                n,
                &mut [&mut s.q, &mut s.k],
            )?;
            // K = V: V is the raw K projection, taken before k_norm and RoPE
            s.v[..n * kvd].copy_from_slice(&s.k[..n * kvd]);
        }
    }
    let rows = lay
        .segs
        .iter()
        .flat_map(|sg| sg.rows.clone().map(move |t| (sg, t)));
    // per-token norms and RoPE (rows are independent: on the pool), then the cache writes
    let (pool, pos) = (Pool::current(), &lay.pos);
    pool.for_chunks(&mut s.q[..n * qd], qd, |t, q| {
        for h in q.chunks_exact_mut(hd) {
            ops::rms_norm_inplace(h, &l.attn_q_norm, eps, p);
        }
        rope.apply(q, hd, pos[t]);
    });
    pool.for_chunks(&mut s.k[..n * kvd], kvd, |t, k| {
        for h in k.chunks_exact_mut(hd) {
            ops::rms_norm_inplace(h, &l.attn_k_norm, eps, p);
        }
        rope.apply(k, hd, pos[t]);
    });
    pool.for_chunks(&mut s.v[..n * kvd], kvd, |_, v| {
        for h in v.chunks_exact_mut(hd) {
            ops::rms_norm0(h, eps, p);
        }
    });
    for (seg, t) in rows {
        let (k, v) = (&s.k[t * kvd..(t + 1) * kvd], &s.v[t * kvd..(t + 1) * kvd]);
        caches[seg.seq].write(il, lay.pos[t], k, v);
    }
    // Tiled online softmax over KV blocks: no score matrix; sliding layers read their window.
    // Each sequence against its own cache, sequences in parallel.
    let (caches, q) = (&*caches, &s.q);
    let one = |seg: &batch::Segment, att: &mut [f32]| {
        let kv = caches[seg.seq].layer(il);
        let f = Flash {
            q: &q[seg.rows.start * qd..seg.rows.end * qd],
            n: seg.rows.len(),
            p0: seg.p0,
            n_head: c.n_head,
            n_kv_head: nkv,
            scale: 1.0,
            window: kv.window(),
            // use_bidirectional_attention = "vision": on sliding layers an image's soft tokens
            // also see the *later* soft tokens of the same image; the window still bounds the
            // past (HF: window overlay AND (causal OR same image); llama.cpp: non-causal SWA
            // batch). Keys visible: [pos − window + 1, span end − 1]. Checked against the
            // oracle: taking the whole span, or bounding the future by the window too, is off
            // by 7.3 / 4.3 in the logits.
            bidirectional: if lc.sliding { &seg.bidi } else { &[] },
        };
        flash::attention(&kv, &f, att);
    };
    let parts = lay.split_rows(&mut s.att, qd);
    if parts.len() == 1 {
        parts.into_iter().for_each(|att| one(&lay.segs[0], att));
    } else {
        lay.segs
            .par_iter()
            .zip(parts)
            .for_each(|(seg, att)| one(seg, att));
    }
    s.mm.matmul(&l.attn_output.view(g), &s.att, n, &mut s.a)?;
    norm_add_rows(
        &mut s.x[..n * d],
        &mut s.a[..n * d],
        &l.post_attention_norm,
        eps,
        p,
        1.0,
    );
    Ok(())
}

/// `x[t] += RMSNorm(a[t]) ⊙ w` (then `x[t] *= scale` unless it is 1) for every row, on the
/// pool (rows are independent; the same operations per row as one at a time).
fn norm_add_rows(x: &mut [f32], a: &mut [f32], w: &[f32], eps: f32, p: Precision, scale: f32) {
    let (d, pool) = (w.len(), Pool::current());
    pool.for_chunks(a, d, |_, a| ops::rms_norm_inplace(a, w, eps, p));
    let a = &*a;
    pool.for_chunks(x, d, |t, x| {
        ops::add_assign(x, &a[t * d..(t + 1) * d]);
        if scale != 1.0 {
            ops::scale(x, scale);
        }
    });
}

/// Dense GeGLU MLP, plus routed experts on MoE layers, then the layer output scale:
/// `x = (x + post_ffw_norm(post_ffw_norm_1(mlp) + post_ffw_norm_2(experts))) · scale`.
fn ffn(
    c: &Config,
    l: &Layer,
    il: usize,
    g: &Gguf,
    pager: &mut Pager,
    s: &mut State,
    lay: &Layout,
) -> Result<()> {
    let (d, eps, n_ff, p) = (c.n_embd, c.rms_eps, c.layers[il].n_ff, s.mm.precision);
    let n = lay.n();
    grow(&mut s.gate, n * n_ff);
    grow(&mut s.up, n * n_ff);
    grow(&mut s.m1, n * d);
    ops::rms_norm_rows(&mut s.xb[..n * d], &s.x[..n * d], &l.ffn_norm, eps, p);
    s.mm.matmul_many(
        &[&l.ffn_gate.view(g), &l.ffn_up.view(g)],
        &s.xb,
        n,
        &mut [&mut s.gate, &mut s.up],
    )?;
    ops::geglu_inplace(&mut s.gate[..n * n_ff], &s.up[..n * n_ff], s.mm.ggml_gelu());
    s.mm.matmul(&l.ffn_down.view(g), &s.gate, n, &mut s.m1)?;
    if let Some(moe) = &l.moe {
        Pool::current().for_chunks(&mut s.m1[..n * d], d, |_, m| {
            ops::rms_norm_inplace(m, &moe.post_ffw_norm_1, eps, p)
        });
        route(c, moe, g, s, n)?;
        // All routed experts are announced before the first expert matmul: reads overlap.
        used_experts(&s.top_ids[..n * c.n_expert_used], &mut s.used);
        pager.begin(il, &s.used)?;
        if pager.tracing() {
            let k = c.n_expert_used;
            for t in 0..n {
                let r = t * k..(t + 1) * k;
                pager.record(lay.pos[t], il, &s.top_ids[r.clone()], &s.top_w[r]);
            }
        }
        // experts read their own pre-norm of the residual
        ops::rms_norm_rows(
            &mut s.xb[..n * d],
            &s.x[..n * d],
            &moe.pre_ffw_norm_2,
            eps,
            p,
        );
        run_experts(c, il, pager, s, n)?;
        norm_add_rows(
            &mut s.m1[..n * d],
            &mut s.m2[..n * d],
            &moe.post_ffw_norm_2,
            eps,
            p,
            1.0,
        );
    }
    let scale = l.layer_output_scale;
    norm_add_rows(
        &mut s.x[..n * d],
        &mut s.m1[..n * d],
        &l.post_ffw_norm,
        eps,
        p,
        scale,
    );
    Ok(())
}

/// Router: `softmax(W_r · (RMSNorm₀(x) ⊙ scale · d^(−1/2)))` over all experts, top-k,
/// renormalised, times the per-expert scale. Reads the residual `x`, not a normed branch input
/// (HF `Gemma4TextRouter` normalises internally).
///
/// Parity with llama.cpp (investigated for issue #4, tiny fixture sequence s3; our own dumper
/// against libllama 0c1e570, F32 K/V, no flash attention, bit-identical to the fixture's
/// `llamacpp_<q>_precise_s3.npy`): Q4_0 differs from llama.cpp by up to 0.94 at one position,
/// and that is one routing flip, not a bug. Layer 4, token 17: llama.cpp picks experts {2, 6},
/// we pick {4, 6} (a near-tie under Q4_0 weights; the F32 model's k-th/(k+1)-th router gap is
/// already only 0.07 there). Every other (layer, token) selects the same experts, and the
/// remaining ~0.1 spread is q8 activation rounding flips seeded by last-ulp differences:
/// the same file with `--isa scalar` is 0.20 max / 0.005 mean from llama.cpp (AVX-512: 0.94 /
/// 0.034), while for Q8_0 it is the other way round (scalar 0.36 / 0.047, AVX-512 0.22 / 0.021).
/// Against the exact-math answer (transformers on the dequantized weights) lode and llama.cpp
/// are equally far: Q4_0 max 3.04 (lode) vs 3.02 (llama.cpp), Q8_0 1.12 vs 1.12; the manifest's
/// llama.cpp tolerance is max 1.0 / mean 0.05. Known last-ulp differences from ggml: the router
/// input here is `(v·scale)·d^-½` (transformers' order) where ggml computes `(v·d^-½)·scale`;
/// the Q4_0×Q8_0 AVX2 dot and its 8-lane horizontal sum are ggml's exactly. Top-k ties go to
/// the lower index (ggml's argsort is not stable either way; never hit on these fixtures).
fn route(c: &Config, moe: &Moe, g: &Gguf, s: &mut State, n: usize) -> Result<()> {
    let (d, ne, k) = (c.n_embd, c.n_expert, c.n_expert_used);
    let (inv_sqrt_d, eps, prec) = (1.0 / (d as f32).sqrt(), c.rms_eps, s.mm.precision);
    // token rows are independent: each step on the pool, the same operations per row
    let (pool, x) = (Pool::current(), &s.x);
    pool.for_chunks(&mut s.xb[..n * d], d, |t, z| {
        z.copy_from_slice(&x[t * d..(t + 1) * d]);
        ops::rms_norm0(z, eps, prec);
        for (v, &sc) in z.iter_mut().zip(&moe.ffn_gate_inp_scale) {
            *v = *v * sc * inv_sqrt_d;
        }
    });
    grow(&mut s.router, n * ne);
    s.mm.matmul(&moe.ffn_gate_inp.view(g), &s.xb, n, &mut s.router)?;
    s.top_ids.resize(n * k, 0);
    s.top_w.resize(n * k, 0.0);
    pool.for_chunks(&mut s.router[..n * ne], ne, |_, p| ops::softmax(p, prec));
    let probs = &s.router;
    pool.for_chunks(&mut s.top_ids[..n * k], k, |t, ids| {
        let p = &probs[t * ne..(t + 1) * ne];
        // top-k by probability, ties to the lower index (stable selection)
        for j in 0..k {
            let mut best = usize::MAX;
            for e in 0..ne {
                if ids[..j].contains(&e) {
                    continue;
                }
                if best == usize::MAX || p[e] > p[best] {
                    best = e;
                }
            }
            ids[j] = best;
        }
    });
    let top_ids = &s.top_ids;
    pool.for_chunks(&mut s.top_w[..n * k], k, |t, w| {
        let (p, ids) = (&probs[t * ne..(t + 1) * ne], &top_ids[t * k..(t + 1) * k]);
        let sum: f32 = ids.iter().map(|&e| p[e]).sum();
        for (wt, &e) in w.iter_mut().zip(ids) {
            *wt = p[e] / sum * moe.ffn_down_exps_scale[e];
        }
    });
    Ok(())
}

/// The distinct experts in `top_ids`, ascending, into `used`.
fn used_experts(top_ids: &[usize], used: &mut Vec<usize>) {
    used.clear();
    used.extend_from_slice(top_ids);
    used.sort_unstable();
    used.dedup();
}

fn qmat<'a>(m: &ExpertMatrix<'a>) -> QMatrix<'a> {
    QMatrix {
        ty: m.ty,
        n_in: m.n_in,
        n_out: m.n_out,
        data: m.data,
    }
}

/// `m2[t] = Σ_e w_{t,e} · down_e(gelu(gate_e(xb[t])) ⊙ up_e(xb[t]))`. Tokens are grouped by
/// expert so each expert's matrices are read once per batch (llama.cpp `mul_mat_id`), and the
/// experts go to the thread pool together: one region for every gate and up matrix, one for
/// every down matrix. The experts come from `s.used` (sorted, distinct), announced to the
/// pager by the caller. One token (decode) shares one quantized input across all experts.
fn run_experts(c: &Config, il: usize, pager: &mut Pager, s: &mut State, n: usize) -> Result<()> {
    let (d, k, nf) = (c.n_embd, c.n_expert_used, c.n_ff_exp);
    grow(&mut s.m2, n * d);
    s.m2[..n * d].fill(0.0);
    // s.rows[s.row_start[i]..s.row_start[i + 1]]: (token, weight) routed to expert s.used[i]
    // (a counting sort by expert: within an expert, tokens ascending)
    s.row_start.clear();
    s.row_start.resize(s.used.len() + 1, 0);
    let mut next = vec![0usize; c.n_expert];
    for &e in &s.top_ids[..n * k] {
        next[e] += 1;
    }
    let mut total = 0;
    for (i, &e) in s.used.iter().enumerate() {
        s.row_start[i] = total;
        (next[e], total) = (total, total + next[e]);
    }
    s.row_start[s.used.len()] = total;
    s.rows.clear();
    s.rows.resize(total, (0, 0.0));
    for t in 0..n {
        for j in 0..k {
            let e = s.top_ids[t * k + j];
            s.rows[next[e]] = (t, s.top_w[t * k + j]);
            next[e] += 1;
        }
    }
    grow(&mut s.eg, total * nf);
    grow(&mut s.eu, total * nf);
    grow(&mut s.ed, total * d);
    if n > 1 {
        grow(&mut s.xe, total * d);
        let (rows, xb) = (&s.rows, &s.xb);
        Pool::current().for_chunks(&mut s.xe[..total * d], d, |j, row| {
            let t = rows[j].0;
            row.copy_from_slice(&xb[t * d..(t + 1) * d]);
        });
    }
    // experts in groups that fit one region of Matmul::matmul_each and the pager's budget
    let group = pager.hold_limit(il).min(16);
    let (used, starts) = (&s.used, &s.row_start);
    for g0 in (0..used.len()).step_by(group) {
        let g1 = (g0 + group).min(used.len());
        let held = pager.get_all(il, &used[g0..g1])?;
        let slices = held
            .iter()
            .map(|h| h.slices())
            .collect::<Result<Vec<_>>>()?;
        let (r0, r1) = (starts[g0], starts[g1]);
        let m = |i: usize| starts[i + 1] - starts[i];
        // gate and up: every expert of the group over its own tokens (decode: the one token)
        let inputs: Vec<ops::Rows> = if n == 1 {
            vec![ops::Rows {
                x: &s.xb[..d],
                n: 1,
            }]
        } else {
            (g0..g1)
                .map(|i| ops::Rows {
                    x: &s.xe[starts[i] * d..starts[i + 1] * d],
                    n: m(i),
                })
                .collect()
        };
        let input_of = |i: usize| if n == 1 { 0 } else { i - g0 };
        let gates: Vec<QMatrix> = slices.iter().map(|x| qmat(&x.gate)).collect();
        let ups: Vec<QMatrix> = slices.iter().map(|x| qmat(&x.up)).collect();
        let downs: Vec<QMatrix> = slices.iter().map(|x| qmat(&x.down)).collect();
        let mut items = Vec::with_capacity(2 * (g1 - g0));
        for i in g0..g1 {
            items.push((&gates[i - g0], input_of(i)));
            items.push((&ups[i - g0], input_of(i)));
        }
        let mut outs: Vec<&mut [f32]> = Vec::with_capacity(2 * (g1 - g0));
        let (mut eg, mut eu) = (&mut s.eg[r0 * nf..r1 * nf], &mut s.eu[r0 * nf..r1 * nf]);
        for i in g0..g1 {
            let (a, rest) = std::mem::take(&mut eg).split_at_mut(m(i) * nf);
            let (b, rest_u) = std::mem::take(&mut eu).split_at_mut(m(i) * nf);
            outs.push(a);
            outs.push(b);
            eg = rest;
            eu = rest_u;
        }
        s.mm.matmul_each(&inputs, &items, &mut outs)?;
        drop(outs);
        let gelu = s.mm.ggml_gelu();
        ops::geglu_inplace(&mut s.eg[r0 * nf..r1 * nf], &s.eu[r0 * nf..r1 * nf], gelu);
        // down: each expert over its own GeGLU rows
        let inputs: Vec<ops::Rows> = (g0..g1)
            .map(|i| ops::Rows {
                x: &s.eg[starts[i] * nf..starts[i + 1] * nf],
                n: m(i),
            })
            .collect();
        let items: Vec<(&QMatrix, usize)> = downs.iter().enumerate().map(|(j, w)| (w, j)).collect();
        let mut outs: Vec<&mut [f32]> = Vec::with_capacity(g1 - g0);
        let mut ed = &mut s.ed[r0 * d..r1 * d];
        for i in g0..g1 {
            let (a, rest) = std::mem::take(&mut ed).split_at_mut(m(i) * d);
            outs.push(a);
            ed = rest;
        }
        s.mm.matmul_each(&inputs, &items, &mut outs)?;
    }
    // weighted sum, experts in ascending order for every token (the same order as ever):
    // token t's rows, in the order they were pushed above
    s.tok_rows.clear();
    s.tok_rows.resize(n * k, usize::MAX);
    let mut filled = vec![0usize; n];
    for (j, &(t, _)) in s.rows.iter().enumerate() {
        s.tok_rows[t * k + filled[t]] = j;
        filled[t] += 1;
    }
    let (rows, tok_rows, ed) = (&s.rows, &s.tok_rows, &s.ed);
    Pool::current().for_chunks(&mut s.m2[..n * d], d, |t, m2| {
        for &j in tok_rows[t * k..(t + 1) * k]
            .iter()
            .take_while(|&&j| j != usize::MAX)
        {
            let wt = rows[j].1;
            for (o, &y) in m2.iter_mut().zip(&ed[j * d..(j + 1) * d]) {
                *o += wt * y;
            }
        }
    });
    Ok(())
}

impl Model for Gemma4 {
    fn arch(&self) -> &str {
        "gemma4"
    }

    fn n_vocab(&self) -> usize {
        self.cfg.n_vocab
    }

    fn n_ctx(&self) -> usize {
        self.caches[0].n_ctx()
    }

    fn n_ctx_train(&self) -> usize {
        self.cfg.n_ctx_train
    }

    fn n_past(&self) -> usize {
        self.caches[self.seq].n_past()
    }

    fn n_seq(&self) -> usize {
        self.caches.len()
    }

    fn select_seq(&mut self, seq: usize) -> Result<()> {
        if seq >= self.caches.len() {
            return Err(Error::Input(format!(
                "sequence {seq} does not exist (the model has {} slots)",
                self.caches.len()
            )));
        }
        self.seq = seq;
        Ok(())
    }

    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>> {
        self.forward_embd(tokens, &[], logits)
    }

    fn forward_embd(
        &mut self,
        tokens: &[u32],
        spans: &[EmbdSpan],
        logits: Logits,
    ) -> Result<Vec<f32>> {
        check_spans(spans, tokens.len(), self.cfg.n_embd, self.ubatch_max)?;
        batch::forward_chunked(self, self.seq, tokens, spans, logits)
    }

    fn forward_batch(&mut self, inputs: &[SeqInput]) -> Result<Vec<f32>> {
        for inp in inputs {
            check_spans(
                inp.spans,
                inp.tokens.len(),
                self.cfg.n_embd,
                self.ubatch_max,
            )?;
        }
        let lay = Layout::new(inputs, &self.caches, self.cfg.n_vocab, self.ubatch_max)?;
        if let Err(e) = self.batch(&lay, None) {
            // a failed batch may have written part of its K/V
            lay.roll_back(&mut self.caches);
            return Err(e);
        }
        lay.advance(&mut self.caches);
        let mut out = Vec::new();
        if !lay.outputs.is_empty() {
            let d = self.cfg.n_embd;
            // the output rows to the front (ascending, so never overwritten early)
            for (i, &r) in lay.outputs.iter().enumerate() {
                if r != i {
                    self.s.x.copy_within(r * d..(r + 1) * d, i * d);
                }
            }
            self.head(0..lay.outputs.len(), &mut out)?;
        }
        Ok(out)
    }

    fn reserve_image_tokens(&mut self, n: usize) -> Result<()> {
        if n <= self.ubatch_max {
            return Ok(());
        }
        if self.caches.iter().any(|c| c.n_past() != 0) {
            return Err(Error::Input(
                "reserve_image_tokens must be called before the first forward".into(),
            ));
        }
        let (n_ctx, ty) = (self.caches[0].n_ctx(), self.caches[0].kv_type());
        let specs = layer_specs(&self.cfg, &self.w, &self.rope, &self.rope_swa);
        self.caches = batch::new_caches(&specs, ty, n_ctx, n, self.caches.len())?;
        self.ubatch_max = n;
        Ok(())
    }

    fn truncate(&mut self, n_past: usize) -> Result<()> {
        self.caches[self.seq].truncate(n_past)
    }

    fn kv_estimate(&self) -> Option<KvEstimate> {
        Some(self.caches[self.seq].estimate())
    }

    fn kv_allocated(&self) -> u64 {
        self.caches.iter().map(KvCache::allocated_bytes).sum()
    }

    fn checkpoint(&mut self) {
        self.caches[self.seq].checkpoint();
    }

    fn rewind(&mut self, n_past: usize) -> usize {
        self.caches[self.seq].rewind(n_past)
    }

    fn paging_stats(&self) -> Option<crate::paging::PagingStats> {
        (self.pager.index().total_bytes() > 0).then(|| self.pager.stats())
    }

    fn paging_choice(&self) -> String {
        self.pager.choice().to_string()
    }
}
