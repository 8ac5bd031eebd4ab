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

use super::batch::{self, Layout, Segment};
use super::config::ArchKeys;
use super::kv_cache::{KvCache, KvType, LayerSpec};
use super::weights::{mat, mat_opt, vector, Mat};
use super::{
    check_kv_fits, resolve_ctx, EmbdSpan, KvEstimate, Logits, Model, ModelOptions, SeqInput,
};
use crate::gguf::{Array, Gguf, Value};
use crate::ops::flash::{self, Flash};
use crate::ops::{self, ggml, AttnArith, AttnQuery, Matmul, Precision, Rope};
use crate::{Error, Result};

use super::N_UBATCH;

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
    /// `feed_forward_length`
    pub n_ff: usize,
    /// `attention.head_count`
    pub n_head: usize,
    /// `attention.head_count_kv` (per layer)
    pub n_head_kv: Vec<usize>,
    /// `attention.key_length` (default n_embd / n_head)
    pub head_dim: usize,
    /// `attention.sliding_window`
    pub window: usize,
    /// `attention.sliding_window_pattern`: bool array, or a period (default 6: every 6th
    /// layer is global)
    pub sliding: Vec<bool>,
    /// `attention.layer_norm_rms_epsilon`
    pub rms_eps: f32,
    /// `rope.freq_base` (global layers)
    pub rope_base: f32,
    /// `rope.freq_base_swa` (sliding layers; default 1e4 as llama.cpp)
    pub rope_base_swa: f32,
    /// 1 / `rope.scaling.factor` (linear scaling on global layers; 1 = none)
    pub rope_freq_scale: f32,
    /// Query scale: 1/√head_dim (1/√(n_embd/n_head) on the 62-layer 27B, as llama.cpp)
    pub attn_scale: f32,
    /// `final_logit_softcapping` (none on Gemma 3)
    pub final_softcap: Option<f32>,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let k = ArchKeys::new(g.metadata(), "gemma3");
        let n_layer = k.usize("block_count")?;
        let n_embd = k.usize("embedding_length")?;
        let n_head = k.usize("attention.head_count")?;
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
        let attn_scale = if n_layer == 62 {
            1.0 / ((n_embd / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        let token_embd = g.require("token_embd.weight")?;
        let cfg = Config {
            n_layer,
            n_embd,
            n_vocab: token_embd.dims.get(1).copied().unwrap_or(0) as usize,
            n_ctx_train: k.usize("context_length")?,
            n_ff: k.usize("feed_forward_length")?,
            n_head,
            n_head_kv: k.usize_per_layer("attention.head_count_kv", n_layer)?,
            head_dim,
            window: k.usize("attention.sliding_window")?,
            sliding,
            rms_eps: k.f32("attention.layer_norm_rms_epsilon")?,
            rope_base: k.f32_opt("rope.freq_base")?.unwrap_or(1_000_000.0),
            rope_base_swa: k.f32_opt("rope.freq_base_swa")?.unwrap_or(10_000.0),
            rope_freq_scale,
            attn_scale,
            final_softcap: k.f32_opt("final_logit_softcapping")?.filter(|&c| c > 0.0),
        };
        if cfg.n_vocab == 0 || cfg.window == 0 || head_dim % 2 != 0 {
            return Err(Error::BadConfig(format!(
                "gemma3: vocab {}, window {}, head dim {head_dim}",
                cfg.n_vocab, cfg.window
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

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    /// `[n_embd] → [n_head · head_dim]`
    attn_q: Mat,
    /// `[n_embd] → [n_head_kv · head_dim]`
    attn_k: Mat,
    attn_v: Mat,
    /// `[head_dim]`
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
}

#[derive(Debug)]
struct Weights {
    /// `[n_embd] → [n_vocab]`, also the LM head when `output` is absent
    token_embd: Mat,
    output: Option<Mat>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
}

impl Weights {
    fn bind(g: &Gguf, c: &Config) -> Result<Weights> {
        let (d, hd) = (c.n_embd, c.head_dim);
        let layers = (0..c.n_layer)
            .map(|il| {
                let n = |s: &str| format!("blk.{il}.{s}.weight");
                let nkv = c.n_head_kv[il];
                Ok(Layer {
                    attn_norm: vector(g, &n("attn_norm"), d)?,
                    attn_q: mat(g, &n("attn_q"), d, c.n_head * hd)?,
                    attn_k: mat(g, &n("attn_k"), d, nkv * hd)?,
                    attn_v: mat(g, &n("attn_v"), d, nkv * hd)?,
                    attn_q_norm: vector(g, &n("attn_q_norm"), hd)?,
                    attn_k_norm: vector(g, &n("attn_k_norm"), hd)?,
                    attn_output: mat(g, &n("attn_output"), c.n_head * hd, d)?,
                    post_attention_norm: vector(g, &n("post_attention_norm"), d)?,
                    ffn_norm: vector(g, &n("ffn_norm"), d)?,
                    ffn_gate: mat(g, &n("ffn_gate"), d, c.n_ff)?,
                    ffn_up: mat(g, &n("ffn_up"), d, c.n_ff)?,
                    ffn_down: mat(g, &n("ffn_down"), c.n_ff, d)?,
                    post_ffw_norm: vector(g, &n("post_ffw_norm"), d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Weights {
            token_embd: mat(g, "token_embd.weight", d, c.n_vocab)?,
            output: mat_opt(g, "output.weight", d, c.n_vocab)?,
            output_norm: vector(g, "output_norm.weight", d)?,
            layers,
        })
    }
}

/// Activation buffers for one batch, grown on demand and reused (no allocation once warm).
#[derive(Debug, Default)]
struct State {
    mm: Matmul,
    /// residual `[n × n_embd]`
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    a: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    scores: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

pub struct Gemma3 {
    gguf: Arc<Gguf>,
    cfg: Config,
    w: Weights,
    rope: Rope,
    rope_swa: Rope,
    /// One KV cache per sequence slot.
    caches: Vec<KvCache>,
    /// The slot the single-sequence methods address ([`Model::select_seq`]).
    seq: usize,
    s: State,
    /// `(sin, cos)` of `rope` / `rope_swa` for each position of the current batch
    /// (`[n × head_dim/2]`): computed once per batch, shared by the layers.
    rope_sc: Vec<[f32; 2]>,
    rope_swa_sc: Vec<[f32; 2]>,
}

/// Batches of at least this many tokens split their per-token work across the thread pool.
const PAR_MIN_TOKENS: usize = 4;

/// `f` on each (row of `a`, row of `b`), `[n × da]` and `[n × db]`; in parallel for batches.
fn for_rows<F>(a: &mut [f32], da: usize, b: &mut [f32], db: usize, n: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    let (a, b) = (&mut a[..n * da], &mut b[..n * db]);
    if n >= PAR_MIN_TOKENS && rayon::current_num_threads() > 1 {
        a.par_chunks_mut(da)
            .zip(b.par_chunks_mut(db))
            .enumerate()
            .for_each(|(t, (a, b))| f(t, a, b));
    } else {
        for (t, (a, b)) in a.chunks_mut(da).zip(b.chunks_mut(db)).enumerate() {
            f(t, a, b);
        }
    }
}

/// The RoPE angles of every row's position into `tab` (`[n × n_rot/2]`).
fn rope_table(rope: &Rope, pos: &[usize], tab: &mut Vec<[f32; 2]>) {
    let (half, n) = (rope.n_rot() / 2, pos.len());
    tab.resize(n * half, [0.0; 2]);
    if half == 0 {
        return;
    }
    if n >= PAR_MIN_TOKENS && rayon::current_num_threads() > 1 {
        tab.par_chunks_mut(half)
            .enumerate()
            .for_each(|(t, sc)| rope.sin_cos(pos[t], sc));
    } else {
        for (t, sc) in tab.chunks_mut(half).enumerate() {
            rope.sin_cos(pos[t], sc);
        }
    }
}

/// `x[t] += norm(a[t])` for the first `n` token rows of width `w.len()`.
fn add_normed(x: &mut [f32], a: &mut [f32], w: &[f32], eps: f32, p: Precision, n: usize) {
    let d = w.len();
    for_rows(a, d, x, d, n, |_, a, x| {
        ops::rms_norm_inplace(a, w, eps, p);
        ops::add_assign(x, a);
    });
}

impl Gemma3 {
    pub fn load(gguf: Arc<Gguf>, opts: &ModelOptions, precision: Precision) -> Result<Gemma3> {
        let cfg = Config::from_gguf(&gguf)?;
        let w = Weights::bind(&gguf, &cfg)?;
        let hd = cfg.head_dim;
        let rope = Rope::new(cfg.rope_base, hd, None, cfg.rope_freq_scale, precision);
        let rope_swa = Rope::new(cfg.rope_base_swa, hd, None, 1.0, precision);
        let n_ctx = resolve_ctx(opts.n_ctx, cfg.n_ctx_train);
        let specs: Vec<LayerSpec> = (0..cfg.n_layer)
            .map(|il| LayerSpec {
                n_kv_head: cfg.n_head_kv[il],
                head_dim: hd,
                window: cfg.sliding[il].then_some(cfg.window),
                k_from_v: None,
            })
            .collect();
        let caches = batch::new_caches(&specs, opts.kv_type, n_ctx, N_UBATCH, opts.n_seq)?;
        check_kv_fits(&caches[0].estimate(), opts.kv_type, n_ctx, caches.len())?;
        let mut mm = Matmul::new(precision);
        mm.ggml_tiled &= !opts.batch_invariant;
        Ok(Gemma3 {
            gguf,
            cfg,
            w,
            rope,
            rope_swa,
            caches,
            seq: 0,
            s: State {
                mm,
                ..State::default()
            },
            rope_sc: Vec::new(),
            rope_swa_sc: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// One batch (≤ N_UBATCH tokens per sequence) through every layer. Only the rows
    /// `lay.outputs` go through the last layer's MLP (llama.cpp's `inp_out_ids`): their final
    /// residual is left in `s.x[..outputs.len()]`. Besides the saved work this matters for
    /// parity, as llama.cpp's K-quant products take another code path from 8 rows on.
    fn batch(&mut self, lay: &Layout) -> Result<()> {
        let (c, n, d) = (&self.cfg, lay.n(), self.cfg.n_embd);
        let tokens = &lay.tokens;
        let g: &Gguf = &self.gguf;
        let s = &mut self.s;
        grow(&mut s.x, n * d);
        let embd = self.w.token_embd.view(g);
        let sqrt_d = (d as f32).sqrt();
        let embed = |t: usize, x: &mut [f32]| -> Result<()> {
            embd.dequantize_row(tokens[t] as usize, x)?;
            ops::scale(x, sqrt_d);
            Ok(())
        };
        if n >= PAR_MIN_TOKENS && rayon::current_num_threads() > 1 {
            s.x[..n * d]
                .par_chunks_mut(d)
                .enumerate()
                .try_for_each(|(t, x)| embed(t, x))?;
        } else {
            for (t, x) in s.x[..n * d].chunks_mut(d).enumerate() {
                embed(t, x)?;
            }
        }
        rope_table(&self.rope, &lay.pos, &mut self.rope_sc);
        rope_table(&self.rope_swa, &lay.pos, &mut self.rope_swa_sc);
        for il in 0..c.n_layer {
            let l = &self.w.layers[il];
            let (rope, sc) = if c.sliding[il] {
                (&self.rope_swa, &self.rope_swa_sc[..])
            } else {
                (&self.rope, &self.rope_sc[..])
            };
            attention(c, l, il, g, (rope, sc), &mut self.caches, s, lay)?;
            if il + 1 < c.n_layer {
                mlp(c, l, g, s, n)?;
            } else if !lay.outputs.is_empty() {
                // gather the output rows to the front (ascending, so never overwritten early)
                for (i, &r) in lay.outputs.iter().enumerate() {
                    if r != i {
                        s.x.copy_within(r * d..(r + 1) * d, i * d);
                    }
                }
                mlp(c, l, g, s, lay.outputs.len())?;
            }
        }
        Ok(())
    }

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
}

/// `x += post_attention_norm(W_o · attn(attn_norm(x)))` for every row of the batch; each
/// sequence's rows attend to its own cache.
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    l: &Layer,
    il: usize,
    g: &Gguf,
    (rope, rope_sc): (&Rope, &[[f32; 2]]),
    caches: &mut [KvCache],
    s: &mut State,
    lay: &Layout,
) -> Result<()> {
    let (d, hd, eps, p, n) = (c.n_embd, c.head_dim, c.rms_eps, s.mm.precision, lay.n());
    let nkv = c.n_head_kv[il];
    let (qd, kvd) = (c.n_head * hd, nkv * hd);
    grow(&mut s.xb, n * d);
    grow(&mut s.q, n * qd);
    grow(&mut s.k, n * kvd);
    grow(&mut s.v, n * kvd);
    grow(&mut s.att, n * qd);
    grow(&mut s.a, n * d);
    ops::rms_norm_rows(&mut s.xb[..n * d], &s.x[..n * d], &l.attn_norm, eps, p);
    s.mm.matmul_many(
        &[&l.attn_q.view(g), &l.attn_k.view(g), &l.attn_v.view(g)],
        &s.xb,
        n,
        &mut [&mut s.q, &mut s.k, &mut s.v],
    )?;
    let half = rope.n_rot() / 2;
    for_rows(&mut s.q, qd, &mut s.k, kvd, n, |t, q, k| {
        let sc = &rope_sc[t * half..(t + 1) * half];
        for h in q.chunks_exact_mut(hd) {
            ops::rms_norm_inplace(h, &l.attn_q_norm, eps, p);
        }
        rope.apply_sin_cos(q, hd, sc);
        if p == Precision::Kernels {
            // llama.cpp scales q after RoPE (`ggml_scale`), then takes plain q·k
            ops::scale(q, c.attn_scale);
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
        seq_attention(c, il, p, &caches[seg.seq], q, seg.p0, att, scores);
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
    s.mm.matmul(&l.attn_output.view(g), &s.att, n, &mut s.a)?;
    add_normed(&mut s.x, &mut s.a, &l.post_attention_norm, eps, p, n);
    Ok(())
}

/// One sequence's queries `q` (`[n × n_head·head_dim]`, positions `p0..p0+n`) against its
/// cache, into `att` (laid out like `q`).
#[allow(clippy::too_many_arguments)]
fn seq_attention(
    c: &Config,
    il: usize,
    p: Precision,
    cache: &KvCache,
    q: &[f32],
    p0: usize,
    att: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let (hd, nkv) = (c.head_dim, c.n_head_kv[il]);
    let qd = c.n_head * hd;
    let n = q.len() / qd;
    let kv = cache.layer(il);
    let group = c.n_head / nkv;
    if p == Precision::Kernels && kv.is_f32_kv() {
        // llama.cpp parity (F32 K/V cache, no flash attention): its exact lane order per row
        let arith = if n == 1 {
            AttnArith::GgmlToken
        } else {
            AttnArith::GgmlBatch
        };
        let one = |i: usize, out: &mut [f32], scores: &mut Vec<f32>| {
            let (t, h) = (i / c.n_head, i % c.n_head);
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
            n_head: c.n_head,
            n_kv_head: nkv,
            window: kv.window(),
        };
        ggml::flash_attn_ext(&kv, &f, att);
    } else {
        let f = Flash {
            q,
            n,
            p0,
            n_head: c.n_head,
            n_kv_head: nkv,
            // Kernels scaled q already (as llama.cpp does)
            scale: if p == Precision::Kernels {
                1.0
            } else {
                c.attn_scale
            },
            window: kv.window(),
            bidirectional: &[],
        };
        flash::attention(&kv, &f, att);
    }
}

/// `x += post_ffw_norm(W_down · (gelu(W_gate·h) ⊙ W_up·h))`, `h = ffn_norm(x)`.
fn mlp(c: &Config, l: &Layer, g: &Gguf, s: &mut State, n: usize) -> Result<()> {
    let (d, nf, eps, p) = (c.n_embd, c.n_ff, c.rms_eps, s.mm.precision);
    grow(&mut s.gate, n * nf);
    grow(&mut s.up, n * nf);
    ops::rms_norm_rows(&mut s.xb[..n * d], &s.x[..n * d], &l.ffn_norm, eps, p);
    s.mm.matmul_many(
        &[&l.ffn_gate.view(g), &l.ffn_up.view(g)],
        &s.xb,
        n,
        &mut [&mut s.gate, &mut s.up],
    )?;
    ops::geglu_inplace(&mut s.gate[..n * nf], &s.up[..n * nf], s.mm.ggml_gelu());
    s.mm.matmul(&l.ffn_down.view(g), &s.gate, n, &mut s.a)?;
    add_normed(&mut s.x, &mut s.a, &l.post_ffw_norm, eps, p, n);
    Ok(())
}

impl Model for Gemma3 {
    fn arch(&self) -> &str {
        "gemma3"
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
        batch::forward_chunked(self, self.seq, tokens, &[], logits)
    }

    fn forward_embd(
        &mut self,
        tokens: &[u32],
        spans: &[EmbdSpan],
        logits: Logits,
    ) -> Result<Vec<f32>> {
        if !spans.is_empty() {
            return Err(Error::Input(
                "the gemma3 model does not take image input".into(),
            ));
        }
        self.forward(tokens, logits)
    }

    fn forward_batch(&mut self, inputs: &[SeqInput]) -> Result<Vec<f32>> {
        if inputs.iter().any(|i| !i.spans.is_empty()) {
            return Err(Error::Input(
                "the gemma3 model does not take image input".into(),
            ));
        }
        let lay = Layout::new(inputs, &self.caches, self.cfg.n_vocab, N_UBATCH)?;
        if let Err(e) = self.batch(&lay) {
            // a failed batch may have written part of its K/V
            lay.roll_back(&mut self.caches);
            return Err(e);
        }
        lay.advance(&mut self.caches);
        let mut out = Vec::new();
        if !lay.outputs.is_empty() {
            self.head(0..lay.outputs.len(), &mut out)?;
        }
        Ok(out)
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
}
