//! Gemma 3 text decoder (`general.architecture = "gemma3"`), e.g. gemma-3-270m.
//!
//! References: transformers `models/gemma3/modeling_gemma3.py`; llama.cpp
//! `src/models/gemma3.cpp` (commit 0c1e570); `docs/gemma4.md` §5.2.
//! `h₀ = E·√d`; per layer `h += post_attention_norm(attn(attn_norm(h)))`,
//! `h += post_ffw_norm(GeGLU(ffn_norm(h)))`; q/k RMSNorm, NEOX RoPE over the whole head
//! (θ = 1e4 on sliding layers, `rope.freq_base` on global ones), q scaled by
//! `query_pre_attn_scalar^(−1/2)`, 5 sliding : 1 global layers. The GGUF norm weights already
//! hold HF's `1 + w`. No value norm, no layer scale, no MoE.

use std::sync::Arc;

use rayon::prelude::*;

use super::batch::{Layout, Segment};
use super::decoder::{
    self, for_rows, gather_rows, rope_table, Blocks, Common, Decoder, DenseLayer, Head, State,
};
use super::kv_cache::{KvCache, KvType, LayerSpec};
use super::ModelOptions;
use crate::gguf::{Array, Gguf, Value};
use crate::ops::flash::{self, Flash};
use crate::ops::{self, ggml, AttnArith, AttnQuery, Precision, Rope};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct Config {
    pub base: Common,
    /// `feed_forward_length`
    pub n_ff: usize,
    /// `attention.head_count_kv` (per layer)
    pub n_head_kv: Vec<usize>,
    /// `attention.key_length` (default n_embd / n_head)
    pub head_dim: usize,
    /// `attention.sliding_window_pattern`: bool array, or a period (default 6: every 6th
    /// layer is global)
    pub sliding: Vec<bool>,
    /// `rope.freq_base` (global layers)
    pub rope_base: f32,
    /// 1 / `rope.scaling.factor` (linear scaling on global layers; 1 = none)
    pub rope_freq_scale: f32,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let (base, k) = Common::from_gguf(g, "gemma3")?;
        let (n_layer, n_embd, n_head) = (base.n_layer, base.n_embd, base.n_head);
        if n_head == 0 || n_layer == 0 {
            return Err(Error::BadConfig("gemma3: zero heads or layers".into()));
        }
        let head_dim = k
            .usize_opt("attention.key_length")?
            .unwrap_or(n_embd / n_head);
        let pattern_key = k.key("attention.sliding_window_pattern");
        let sliding = match g.metadata().get(&pattern_key) {
            Some(Value::Array(Array::Bool(_))) => k
                .bool_per_layer("attention.sliding_window_pattern", n_layer)?
                .unwrap_or_default(),
            other => {
                let period = match other {
                    None => 6,
                    Some(_) => k.usize("attention.sliding_window_pattern")?,
                };
                // llama.cpp `set_swa_pattern`: the last layer of each period is global
                (0..n_layer)
                    .map(|il| period != 0 && il % period < period - 1)
                    .collect()
            }
        };
        let rope_freq_scale = match k.f32_opt("rope.scaling.factor")? {
            Some(f) if f > 0.0 => 1.0 / f,
            _ => 1.0,
        };
        let cfg = Config {
            n_ff: k.usize("feed_forward_length")?,
            n_head_kv: k.usize_per_layer("attention.head_count_kv", n_layer)?,
            head_dim,
            sliding,
            rope_base: k.f32_opt("rope.freq_base")?.unwrap_or(1_000_000.0),
            rope_freq_scale,
            base,
        };
        let (n_vocab, window) = (cfg.base.n_vocab, cfg.base.window);
        if n_vocab == 0 || window == 0 || head_dim % 2 != 0 {
            return Err(Error::BadConfig(format!(
                "gemma3: vocab {n_vocab}, window {window}, head dim {head_dim}"
            )));
        }
        if let Some(il) = (0..n_layer).find(|&il| {
            let kv = cfg.n_head_kv[il];
            kv == 0 || n_head % kv != 0
        }) {
            return Err(Error::BadConfig(format!(
                "gemma3 layer {il}: {n_head} query heads over {} KV heads",
                cfg.n_head_kv[il]
            )));
        }
        Ok(cfg)
    }
}

impl Config {
    /// Query scale: 1/√head_dim (1/√(n_embd/n_head) on the 62-layer 27B, as llama.cpp).
    pub fn attn_scale(&self) -> f32 {
        let b = &self.base;
        if b.n_layer == 62 {
            1.0 / ((b.n_embd / b.n_head) as f32).sqrt()
        } else {
            1.0 / (self.head_dim as f32).sqrt()
        }
    }
}

#[derive(Debug)]
struct Weights {
    layers: Vec<DenseLayer>,
    head: Head,
}

impl Weights {
    fn bind(g: &Gguf, c: &Config) -> Result<Weights> {
        let layers = (0..c.base.n_layer)
            .map(|il| {
                let l = DenseLayer::bind(g, &c.base, il, (c.head_dim, c.n_head_kv[il], c.n_ff))?;
                if l.attn_v.is_none() {
                    return Err(Error::MissingTensor(format!("blk.{il}.attn_v.weight")));
                }
                Ok(l)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Weights {
            layers,
            head: Head::bind(g, &c.base)?,
        })
    }
}

/// Gemma 3's layers: config, weights, RoPE and activations; [`Decoder`] adds the KV caches
/// and the [`super::Model`] methods.
pub struct Gemma3Blocks {
    cfg: Config,
    w: Weights,
    rope: Rope,
    rope_swa: Rope,
    s: State,
    /// `(sin, cos)` of `rope` / `rope_swa` for each position of the current batch
    /// (`[n × head_dim/2]`): computed once per batch, shared by the layers.
    rope_sc: Vec<[f32; 2]>,
    rope_swa_sc: Vec<[f32; 2]>,
}

/// The Gemma 3 model.
pub type Gemma3 = Decoder<Gemma3Blocks>;

/// What every block of one batch reads: the model, the file, the batch's rows and the RoPE
/// angles of their positions.
struct Ctx<'a> {
    c: &'a Config,
    w: &'a Weights,
    g: &'a Gguf,
    rope: (&'a Rope, &'a [[f32; 2]]),
    rope_swa: (&'a Rope, &'a [[f32; 2]]),
    lay: &'a Layout<'a>,
    /// the arithmetic of `State::mm`
    p: Precision,
}

impl Decoder<Gemma3Blocks> {
    pub fn load(gguf: Arc<Gguf>, opts: &ModelOptions, precision: Precision) -> Result<Gemma3> {
        let cfg = Config::from_gguf(&gguf)?;
        let w = Weights::bind(&gguf, &cfg)?;
        let hd = cfg.head_dim;
        let rope = Rope::new(cfg.rope_base, hd, None, cfg.rope_freq_scale, precision);
        let rope_swa = Rope::new(cfg.base.rope_base_swa, hd, None, 1.0, precision);
        let specs = layer_specs(&cfg);
        let caches = decoder::new_caches(&specs, opts, cfg.base.n_ctx_train)?;
        let (s, n_ctx_train) = (State::new(opts, precision), cfg.base.n_ctx_train);
        let blocks = Gemma3Blocks {
            cfg,
            w,
            rope,
            rope_swa,
            s,
            rope_sc: Vec::new(),
            rope_swa_sc: Vec::new(),
        };
        Ok(Decoder::new(gguf, (specs, caches), n_ctx_train, blocks))
    }

    pub fn config(&self) -> &Config {
        &self.blocks().cfg
    }
}

fn layer_specs(cfg: &Config) -> Vec<LayerSpec> {
    (0..cfg.base.n_layer)
        .map(|il| LayerSpec {
            n_kv_head: cfg.n_head_kv[il],
            head_dim: cfg.head_dim,
            window: cfg.sliding[il].then_some(cfg.base.window),
            k_from_v: None,
        })
        .collect()
}

impl Blocks for Gemma3Blocks {
    const ARCH: &'static str = "gemma3";

    fn head_state(&mut self) -> (&Head, &mut State) {
        (&self.w.head, &mut self.s)
    }

    /// One batch (≤ N_UBATCH tokens per sequence) through every layer. Only the rows
    /// `lay.outputs` go through the last layer's MLP (llama.cpp's `inp_out_ids`): their final
    /// residual is left in `s.x[..outputs.len()]`. Besides the saved work this matters for
    /// parity, as llama.cpp's K-quant products take another code path from 8 rows on.
    fn batch(&mut self, g: &Gguf, caches: &mut [KvCache], lay: &Layout) -> Result<()> {
        let (c, d) = (&self.cfg, self.cfg.base.n_embd);
        let s = &mut self.s;
        self.w.head.embed(g, lay, &mut s.x)?;
        rope_table(&self.rope, &lay.pos, &mut self.rope_sc);
        rope_table(&self.rope_swa, &lay.pos, &mut self.rope_swa_sc);
        let cx = Ctx {
            c,
            w: &self.w,
            g,
            rope: (&self.rope, &self.rope_sc),
            rope_swa: (&self.rope_swa, &self.rope_swa_sc),
            lay,
            p: s.mm.precision,
        };
        for il in 0..c.base.n_layer {
            cx.attention(il, caches, s)?;
            if il + 1 < c.base.n_layer {
                cx.mlp(il, s, lay.n())?;
            } else if !lay.outputs.is_empty() {
                gather_rows(&mut s.x, &lay.outputs, d);
                cx.mlp(il, s, lay.outputs.len())?;
            }
        }
        Ok(())
    }
}

impl Ctx<'_> {
    /// `x += post_attention_norm(W_o · attn(attn_norm(x)))` for every row of the batch; each
    /// sequence's rows attend to its own cache.
    fn attention(&self, il: usize, caches: &mut [KvCache], s: &mut State) -> Result<()> {
        let (c, g, lay, l) = (self.c, self.g, self.lay, &self.w.layers[il]);
        let (rope, rope_sc) = if c.sliding[il] {
            self.rope_swa
        } else {
            self.rope
        };
        let (hd, eps, p, n) = (c.head_dim, c.base.rms_eps, s.mm.precision, lay.n());
        let (qd, kvd) = (c.base.n_head * hd, c.n_head_kv[il] * hd);
        l.project_qkv(g, s, n, eps)?;
        let half = rope.n_rot() / 2;
        for_rows(&mut s.q, qd, &mut s.k, kvd, n, |t, q, k| {
            let sc = &rope_sc[t * half..(t + 1) * half];
            for h in q.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.attn_q_norm, eps, p);
            }
            rope.apply_sin_cos(q, hd, sc);
            if p == Precision::Kernels {
                // llama.cpp scales q after RoPE (`ggml_scale`), then takes plain q·k
                ops::scale(q, c.attn_scale());
            }
            for h in k.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.attn_k_norm, eps, p);
            }
            rope.apply_sin_cos(k, hd, sc);
        });
        for seg in &lay.segs {
            for t in seg.rows.clone() {
                let k = &s.k[t * kvd..(t + 1) * kvd];
                caches[seg.seq].write(il, lay.pos[t], k, &s.v[t * kvd..(t + 1) * kvd]);
            }
        }
        // every sequence against its own cache; sequences in parallel (each call is the same
        // arithmetic as for that sequence alone)
        let (caches, q) = (&*caches, &s.q);
        let one = |seg: &Segment, att: &mut [f32], scores: &mut Vec<f32>| {
            let q = &q[seg.rows.start * qd..seg.rows.end * qd];
            self.seq_attention(il, &caches[seg.seq], q, seg.p0, att, scores);
        };
        let mut parts = lay.split_rows(&mut s.att, qd);
        if parts.len() == 1 {
            one(&lay.segs[0], parts.pop().unwrap_or_default(), &mut s.scores);
        } else {
            lay.segs
                .par_iter()
                .zip(parts)
                .for_each_init(Vec::new, |scores, (seg, att)| one(seg, att, scores));
        }
        l.attn_output(g, s, n, eps)
    }

    /// One sequence's queries `q` (`[n × n_head·head_dim]`, positions `p0..p0+n`) against its
    /// cache, into `att` (laid out like `q`).
    fn seq_attention(
        &self,
        il: usize,
        cache: &KvCache,
        q: &[f32],
        p0: usize,
        att: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        let (c, p) = (self.c, self.p);
        let (hd, nkv, n_head) = (c.head_dim, c.n_head_kv[il], c.base.n_head);
        let qd = n_head * hd;
        let n = q.len() / qd;
        let kv = cache.layer(il);
        let group = n_head / nkv;
        if p == Precision::Kernels && kv.is_f32_kv() {
            // llama.cpp parity (F32 K/V cache, no flash attention): its exact lane order per row
            let arith = if n == 1 {
                AttnArith::GgmlToken
            } else {
                AttnArith::GgmlBatch
            };
            let one = |i: usize, out: &mut [f32], scores: &mut Vec<f32>| {
                let (t, h) = (i / n_head, i % n_head);
                let pos = p0 + t;
                let qa = AttnQuery {
                    q: &q[t * qd + h * hd..t * qd + (h + 1) * hd],
                    kv_head: h / group,
                    first: cache.first_visible(il, pos),
                    pos,
                    scale: 1.0,
                    arith,
                };
                ops::attend(&kv, &qa, scores, out);
            };
            if n == 1 {
                for (i, out) in att.chunks_exact_mut(hd).enumerate() {
                    one(i, out, scores);
                }
            } else {
                att.par_chunks_mut(hd)
                    .enumerate()
                    .for_each_init(Vec::new, |scores, (i, out)| one(i, out, scores));
            }
        } else if p == Precision::Kernels && cache.kv_type() == KvType::F16 {
            // llama.cpp parity with its defaults (F16 K/V cache, flash attention): ggml's order
            let f = ggml::FlashAttnExt {
                q,
                n,
                p0,
                n_head,
                n_kv_head: nkv,
                window: kv.window(),
            };
            ggml::flash_attn_ext(&kv, &f, att);
        } else {
            let f = Flash {
                q,
                n,
                p0,
                n_head,
                n_kv_head: nkv,
                // Kernels scaled q already (as llama.cpp does)
                scale: if p == Precision::Kernels {
                    1.0
                } else {
                    c.attn_scale()
                },
                window: kv.window(),
                bidirectional: &[],
            };
            flash::attention(&kv, &f, att);
        }
    }

    /// `x += post_ffw_norm(W_down · (gelu(W_gate·h) ⊙ W_up·h))`, `h = ffn_norm(x)`.
    fn mlp(&self, il: usize, s: &mut State, n: usize) -> Result<()> {
        let (l, eps, p) = (&self.w.layers[il], self.c.base.rms_eps, s.mm.precision);
        l.geglu_mlp(self.g, s, n, eps)?;
        decoder::add_normed(&mut s.x, &mut s.m1, &l.post_ffw_norm, eps, p, n, 1.0);
        Ok(())
    }
}
