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

use super::batch::{Layout, Segment};
use super::decoder::{
    self, add_normed, for_rows, gather_rows, grow, rope_table, Blocks, Common, Decoder, DenseLayer,
    Head, State,
};
use super::kv_cache::{KFromV, KvCache, LayerSpec};
use super::weights::{mat, vector, vector_opt, Mat};
use super::{check_input, ModelOptions, SeqInput};
use crate::gguf::Gguf;
use crate::ops::flash::{self, Flash};
use crate::ops::pool::Pool;
use crate::ops::{self, Precision, Rope};
use crate::paging::index::ExpertIndex;
use crate::paging::pager::{OtherMemory, Pager};
use crate::paging::PagingStats;
use crate::{Error, Result};

use super::N_UBATCH;

mod moe;
use moe::{route, run_experts, used_experts};

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
    pub base: Common,
    pub layers: Vec<LayerConfig>,
    /// `rope.freq_base` (global layers)
    pub rope_base: f32,
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
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let (base, k) = Common::from_gguf(g, "gemma4")?;
        let n_layer = base.n_layer;
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
        let cfg = Config {
            base,
            layers,
            rope_base: k.f32("rope.freq_base")?,
            n_rot: k.usize_opt("rope.dimension_count")?.unwrap_or(head_dim),
            n_rot_swa: k
                .usize_opt("rope.dimension_count_swa")?
                .unwrap_or(head_dim_swa),
            n_expert: k.usize_opt("expert_count")?.unwrap_or(0),
            n_expert_used: k.usize_opt("expert_used_count")?.unwrap_or(0),
            n_ff_exp: k.usize_opt("expert_feed_forward_length")?.unwrap_or(0),
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
        let b = &self.base;
        if b.n_layer == 0 || b.n_embd == 0 || b.n_head == 0 || b.n_vocab == 0 {
            return bad(format!(
                "gemma4: zero size (layers {}, embd {}, heads {}, vocab {})",
                b.n_layer, b.n_embd, b.n_head, b.n_vocab
            ));
        }
        if b.window == 0 {
            return bad("gemma4: sliding window 0".into());
        }
        for (il, l) in self.layers.iter().enumerate() {
            if l.n_head_kv == 0 || b.n_head % l.n_head_kv != 0 {
                return bad(format!(
                    "gemma4 layer {il}: {} query heads over {} KV heads",
                    b.n_head, l.n_head_kv
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
    dense: DenseLayer,
    moe: Option<Moe>,
    /// `layer_output_scale.weight` (absent → 1)
    layer_output_scale: f32,
}

#[derive(Debug)]
struct Weights {
    layers: Vec<Layer>,
    head: Head,
}

impl Weights {
    fn bind(g: &Gguf, c: &Config, experts: &ExpertIndex) -> Result<Weights> {
        let d = c.base.n_embd;
        let mut layers = Vec::with_capacity(c.base.n_layer);
        for (il, lc) in c.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{il}.{s}.weight");
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
                dense: DenseLayer::bind(g, &c.base, il, (lc.head_dim, lc.n_head_kv, lc.n_ff))?,
                moe,
                layer_output_scale: vector_opt(g, &n("layer_output_scale"), 1)?
                    .map_or(1.0, |v| v[0]),
            });
        }
        Ok(Weights {
            layers,
            head: Head::bind(g, &c.base)?,
        })
    }
}

fn layer_specs(cfg: &Config, w: &Weights, rope: &Rope, rope_swa: &Rope) -> Vec<LayerSpec> {
    cfg.layers
        .iter()
        .zip(&w.layers)
        .map(|(l, lw)| LayerSpec {
            n_kv_head: l.n_head_kv,
            head_dim: l.head_dim,
            window: l.sliding.then_some(cfg.base.window),
            // K = V: store V once, derive K = RoPE(V ⊙ k_norm) on read
            k_from_v: lw.dense.attn_v.is_none().then(|| KFromV {
                norm: lw.dense.attn_k_norm.clone(),
                inv_freq: if l.sliding { rope_swa } else { rope }.inv_freq().to_vec(),
            }),
        })
        .collect()
}

/// Gemma 4's layers: config, weights, RoPE, activations and the expert pager; [`Decoder`]
/// adds the KV caches and the [`super::Model`] methods.
pub struct Gemma4Blocks {
    cfg: Config,
    w: Weights,
    pager: Pager,
    rope: Rope,
    rope_swa: Rope,
    /// the batch's RoPE angles per row (`rope_table`), global and sliding
    rope_sc: Vec<[f32; 2]>,
    rope_swa_sc: Vec<[f32; 2]>,
    s: State,
}

/// The Gemma 4 model.
pub type Gemma4 = Decoder<Gemma4Blocks>;

/// What every block of one batch reads: the model, the file and the batch's rows.
struct Ctx<'a> {
    c: &'a Config,
    w: &'a Weights,
    g: &'a Gguf,
    rope: (&'a Rope, &'a [[f32; 2]]),
    rope_swa: (&'a Rope, &'a [[f32; 2]]),
    lay: &'a Layout<'a>,
}

impl Decoder<Gemma4Blocks> {
    pub fn load(gguf: Arc<Gguf>, opts: &ModelOptions, precision: Precision) -> Result<Gemma4> {
        let cfg = Config::from_gguf(&gguf)?;
        let experts = ExpertIndex::new(gguf.clone(), cfg.base.n_layer)?;
        let w = Weights::bind(&gguf, &cfg, &experts)?;
        let freqs = vector_opt(&gguf, "rope_freqs.weight", cfg.n_rot / 2)?;
        let rope = Rope::new(cfg.rope_base, cfg.n_rot, freqs.as_deref(), 1.0, precision);
        let rope_swa = Rope::new(cfg.base.rope_base_swa, cfg.n_rot_swa, None, 1.0, precision);
        let specs = layer_specs(&cfg, &w, &rope, &rope_swa);
        let caches = decoder::new_caches(&specs, opts, cfg.base.n_ctx_train)?;
        let kv_bytes = caches[0].estimate().total() * caches.len() as u64;
        let pager = Pager::new(experts, &opts.paging, OtherMemory { kv_bytes })?;
        let (s, n_ctx_train) = (State::new(opts, precision), cfg.base.n_ctx_train);
        let blocks = Gemma4Blocks {
            cfg,
            w,
            pager,
            rope,
            rope_swa,
            rope_sc: Vec::new(),
            rope_swa_sc: Vec::new(),
            s,
        };
        Ok(Decoder::new(gguf, (specs, caches), n_ctx_train, blocks))
    }

    pub fn config(&self) -> &Config {
        &self.blocks().cfg
    }

    /// Layer `il`'s feed-forward block alone (dense branch, router, routed experts) on one
    /// token's residual `x` (`[n_embd]`, updated in place), for benches/moe.rs. Returns the
    /// bytes of weights it read: the dense matrices, the router and the routed experts.
    pub fn ffn_block(&mut self, il: usize, x: &mut [f32]) -> Result<u64> {
        let (g, _, _, b) = self.parts_mut();
        let (d, n_layer) = (b.cfg.base.n_embd, b.cfg.base.n_layer);
        if il >= n_layer || x.len() != d {
            return Err(Error::Input(format!(
                "ffn_block: layer {il} of {n_layer}, input {} of {d}",
                x.len()
            )));
        }
        grow(&mut b.s.x, d);
        grow(&mut b.s.xb, d);
        b.s.x[..d].copy_from_slice(x);
        // one token at position 0 (ffn reads only the row count and the positions)
        let lay = Layout {
            tokens: vec![0],
            pos: vec![0],
            ..Layout::default()
        };
        let (cx, pager, s) = b.split(g, &lay);
        cx.ffn(il, pager, s)?;
        x.copy_from_slice(&s.x[..d]);
        let l = &cx.w.layers[il];
        let dense: u64 = [&l.dense.ffn_gate, &l.dense.ffn_up, &l.dense.ffn_down]
            .iter()
            .map(|m| m.view(g).data.len() as u64)
            .sum();
        let routed = l.moe.as_ref().map_or(0, |moe| {
            moe.ffn_gate_inp.view(g).data.len() as u64
                + s.used.len() as u64 * pager.index().expert_bytes(il)
        });
        Ok(dense + routed)
    }

    /// The residual stream of `tokens` (fed from position 0 after a reset) as
    /// `[n_layer + 2, n_tokens, n_embd]`: embedding, after each layer, after the final norm.
    /// For debugging against a reference implementation.
    pub fn hidden_states(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let (g, caches, seq, b) = self.parts_mut();
        check_input(tokens, b.cfg.base.n_vocab, 0, caches[seq].n_ctx())?;
        if tokens.len() > N_UBATCH {
            return Err(Error::Input(format!(
                "hidden_states takes at most {N_UBATCH} tokens"
            )));
        }
        caches[seq].truncate(0)?;
        let input = SeqInput {
            seq,
            tokens,
            spans: &[],
            logits: None,
        };
        let lay = Layout::new(&[input], caches, b.cfg.base.n_vocab, N_UBATCH)?;
        let mut h = Vec::new();
        b.run(g, caches, &lay, Some(&mut h))?;
        lay.advance(caches);
        let d = b.cfg.base.n_embd;
        let n = tokens.len();
        let at = h.len();
        h.resize(at + n * d, 0.0);
        let (eps, p) = (b.cfg.base.rms_eps, b.s.mm.precision);
        ops::rms_norm_rows(&mut h[at..], &b.s.x[..n * d], &b.w.head.output_norm, eps, p);
        Ok(h)
    }
}

impl Gemma4Blocks {
    /// The per-batch context of `lay`, and what the blocks write: the pager, the activations.
    fn split<'a>(
        &'a mut self,
        g: &'a Gguf,
        lay: &'a Layout<'a>,
    ) -> (Ctx<'a>, &'a mut Pager, &'a mut State) {
        // the angles once per batch row, for every layer (the same values as `Rope::apply`)
        rope_table(&self.rope, &lay.pos, &mut self.rope_sc);
        rope_table(&self.rope_swa, &lay.pos, &mut self.rope_swa_sc);
        let cx = Ctx {
            c: &self.cfg,
            w: &self.w,
            g,
            rope: (&self.rope, &self.rope_sc),
            rope_swa: (&self.rope_swa, &self.rope_swa_sc),
            lay,
        };
        (cx, &mut self.pager, &mut self.s)
    }

    /// Runs one batch (≤ `ubatch_max` tokens per sequence) through every layer, leaving the
    /// final residual in `s.x`. With `hidden`, the residual after the embedding and after every
    /// layer is appended (for layer-by-layer comparison with a reference).
    fn run(
        &mut self,
        g: &Gguf,
        caches: &mut [KvCache],
        lay: &Layout,
        mut hidden: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let (n, d) = (lay.n(), self.cfg.base.n_embd);
        let (cx, pager, s) = self.split(g, lay);
        cx.w.head.embed(g, lay, &mut s.x)?;
        if let Some(h) = hidden.as_deref_mut() {
            h.extend_from_slice(&s.x[..n * d]);
        }
        for il in 0..cx.c.base.n_layer {
            cx.attention(il, caches, s)?;
            cx.ffn(il, pager, s)?;
            if let Some(h) = hidden.as_deref_mut() {
                h.extend_from_slice(&s.x[..n * d]);
            }
            // Router look-ahead: layer il+1's router on layer il's output predicts its experts
            // (its true input only adds il+1's attention), so their reads overlap that attention.
            let next = cx.w.layers.get(il + 1).and_then(|l| l.moe.as_ref());
            if let (true, Some(moe)) = (pager.prefetch_enabled(), next) {
                route(cx.c, moe, g, s, n)?;
                used_experts(&s.top_ids, &mut s.used);
                pager.prefetch(il + 1, &s.used);
            }
        }
        pager.advance(n);
        gather_rows(&mut s.x, &lay.outputs, d);
        Ok(())
    }
}

impl Blocks for Gemma4Blocks {
    const ARCH: &'static str = "gemma4";
    const IMAGES: bool = true;

    fn head_state(&mut self) -> (&Head, &mut State) {
        (&self.w.head, &mut self.s)
    }

    fn batch(&mut self, g: &Gguf, caches: &mut [KvCache], lay: &Layout) -> Result<()> {
        self.run(g, caches, lay, None)
    }

    fn paging_stats(&self) -> Option<PagingStats> {
        (self.pager.index().total_bytes() > 0).then(|| self.pager.stats())
    }

    fn paging_choice(&self) -> String {
        self.pager.choice().to_string()
    }
}

impl Ctx<'_> {
    /// `x += post_attention_norm(W_o · attn(attn_norm(x)))` for every row of the batch; each
    /// sequence's rows attend to its own cache.
    fn attention(&self, il: usize, caches: &mut [KvCache], s: &mut State) -> Result<()> {
        let (c, g, lay, l) = (self.c, self.g, self.lay, &self.w.layers[il].dense);
        let (lc, eps, p, n) = (&c.layers[il], c.base.rms_eps, s.mm.precision, lay.n());
        let (rope, rope_sc) = if lc.sliding { self.rope_swa } else { self.rope };
        let half = rope.n_rot() / 2;
        let (hd, nkv) = (lc.head_dim, lc.n_head_kv);
        let (qd, kvd) = (c.base.n_head * hd, nkv * hd);
        l.project_qkv(g, s, n, eps)?;
        let rows = lay
            .segs
            .iter()
            .flat_map(|sg| sg.rows.clone().map(move |t| (sg, t)));
        // per-token norms and RoPE (rows are independent: on the pool), then the cache writes
        for_rows(&mut s.q, qd, &mut s.k, kvd, n, |t, q, k| {
            let sc = &rope_sc[t * half..(t + 1) * half];
            for h in q.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.attn_q_norm, eps, p);
            }
            rope.apply_sin_cos(q, hd, sc);
            for h in k.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.attn_k_norm, eps, p);
            }
            rope.apply_sin_cos(k, hd, sc);
        });
        Pool::current().for_chunks(&mut s.v[..n * kvd], kvd, |_, v| {
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
        let one = |seg: &Segment, att: &mut [f32]| {
            let kv = caches[seg.seq].layer(il);
            let f = Flash {
                q: &q[seg.rows.start * qd..seg.rows.end * qd],
                n: seg.rows.len(),
                p0: seg.p0,
                n_head: c.base.n_head,
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
        l.attn_output(g, s, n, eps)
    }

    /// Dense GeGLU MLP, plus routed experts on MoE layers, then the layer output scale:
    /// `x = (x + post_ffw_norm(post_ffw_norm_1(mlp) + post_ffw_norm_2(experts))) · scale`.
    fn ffn(&self, il: usize, pager: &mut Pager, s: &mut State) -> Result<()> {
        let (c, g, lay, l) = (self.c, self.g, self.lay, &self.w.layers[il]);
        let (d, eps, p, n) = (c.base.n_embd, c.base.rms_eps, s.mm.precision, lay.n());
        l.dense.geglu_mlp(g, s, n, eps)?;
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
            add_normed(&mut s.m1, &mut s.m2, &moe.post_ffw_norm_2, eps, p, n, 1.0);
        }
        let scale = l.layer_output_scale;
        add_normed(
            &mut s.x,
            &mut s.m1,
            &l.dense.post_ffw_norm,
            eps,
            p,
            n,
            scale,
        );
        Ok(())
    }
}
