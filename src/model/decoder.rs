//! What the Gemma 3 and Gemma 4 decoders share around their layers: the sequence slots (one
//! KV cache each), the token embedding and the output head ([`Head`]), and every [`Model`]
//! method, which only touch those. An architecture file supplies its layers as [`Blocks`]
//! (config, weights, activations, its own forward pass); `Decoder<Gemma4Blocks>` is the
//! Gemma 4 model. Also the small row helpers both forward passes use.

use std::sync::Arc;

use rayon::prelude::*;

use super::batch::{self, Layout};
use super::config::ArchKeys;
use super::kv_cache::{KvCache, LayerSpec};
use super::weights::{mat, mat_opt, vector, Mat};
use super::{
    check_kv_fits, resolve_ctx, EmbdSpan, KvEstimate, Logits, Model, ModelOptions, SeqInput,
    N_UBATCH,
};
use crate::gguf::Gguf;
use crate::ops::pool::Pool;
use crate::ops::{self, Matmul, Precision};
use crate::paging::PagingStats;
use crate::{Error, Result};

/// An architecture's layers: what [`Decoder`] runs between the embedding and the logits.
pub(crate) trait Blocks: Send {
    /// `general.architecture`
    const ARCH: &'static str;
    /// Whether the model takes input embeddings ([`EmbdSpan`], image soft tokens).
    const IMAGES: bool = false;
    /// One batch through every layer. The final residual of the rows `lay.outputs` is left,
    /// in order, in the first rows of the residual buffer of [`Blocks::head_state`].
    fn batch(&mut self, g: &Gguf, caches: &mut [KvCache], lay: &Layout) -> Result<()>;
    /// The embedding and output weights (they give `n_vocab` and `n_embd`) and the
    /// activations: [`Decoder`] reads the final residual of the output rows from the first
    /// rows of `State::x`.
    fn head_state(&mut self) -> (&Head, &mut State);
    /// Expert paging counters since load (MoE models only).
    fn paging_stats(&self) -> Option<PagingStats> {
        None
    }
    /// What the pager chose automatically at load and why (empty if nothing).
    fn paging_choice(&self) -> String {
        String::new()
    }
}

/// A Gemma-style decoder: an architecture's [`Blocks`] plus one KV cache per sequence slot.
pub struct Decoder<B> {
    gguf: Arc<Gguf>,
    /// One KV cache per sequence slot.
    caches: Vec<KvCache>,
    /// The slot the single-sequence methods address ([`Model::select_seq`]).
    seq: usize,
    /// Longest batch the sliding-window cache holds (≥ N_UBATCH; raised for image spans by
    /// [`Model::reserve_image_tokens`]).
    ubatch_max: usize,
    /// `context_length`
    n_ctx_train: usize,
    /// The KV layout of every layer (caches sized anew by `reserve_image_tokens`).
    specs: Vec<LayerSpec>,
    n_vocab: usize,
    n_embd: usize,
    blocks: B,
}

/// One KV cache per slot of `opts` for layers `specs`, after checking that they fit in memory.
pub(crate) fn new_caches(
    specs: &[LayerSpec],
    opts: &ModelOptions,
    n_ctx_train: usize,
) -> Result<Vec<KvCache>> {
    let n_ctx = resolve_ctx(opts.n_ctx, n_ctx_train);
    let caches = batch::new_caches(specs, opts.kv_type, n_ctx, N_UBATCH, opts.n_seq)?;
    check_kv_fits(&caches[0].estimate(), opts.kv_type, n_ctx, caches.len())?;
    Ok(caches)
}

impl<B> Decoder<B> {
    /// The model of `blocks`, its caches made by [`new_caches`] for layers `specs`.
    pub(crate) fn new(
        gguf: Arc<Gguf>,
        (specs, caches): (Vec<LayerSpec>, Vec<KvCache>),
        n_ctx_train: usize,
        mut blocks: B,
    ) -> Self
    where
        B: Blocks,
    {
        let (head, _) = blocks.head_state();
        let (n_vocab, n_embd) = (head.n_vocab, head.n_embd());
        Decoder {
            gguf,
            caches,
            seq: 0,
            ubatch_max: N_UBATCH,
            n_ctx_train,
            specs,
            n_vocab,
            n_embd,
            blocks,
        }
    }

    /// The architecture's layers (config, weights, activations).
    pub(crate) fn blocks(&self) -> &B {
        &self.blocks
    }

    /// The file, the caches and the layers at once, for an architecture's own entry points.
    pub(crate) fn parts_mut(&mut self) -> (&Gguf, &mut Vec<KvCache>, usize, &mut B) {
        (&self.gguf, &mut self.caches, self.seq, &mut self.blocks)
    }

    /// The KV cache (tests poison it to prove what attention reads).
    #[doc(hidden)]
    pub fn kv_cache_mut(&mut self) -> &mut KvCache {
        &mut self.caches[self.seq]
    }
}

/// The spans of one input, checked against what the model takes.
fn check_model_spans<B: Blocks>(m: &Decoder<B>, spans: &[EmbdSpan], n_tok: usize) -> Result<()> {
    if !B::IMAGES && !spans.is_empty() {
        return Err(no_images(B::ARCH));
    }
    check_spans(spans, n_tok, m.n_embd, m.ubatch_max)
}

fn no_images(arch: &str) -> Error {
    Error::Input(format!("the {arch} model does not take image input"))
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

impl<B: Blocks> Model for Decoder<B> {
    fn arch(&self) -> &str {
        B::ARCH
    }

    fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn n_ctx(&self) -> usize {
        self.caches[0].n_ctx()
    }

    fn n_ctx_train(&self) -> usize {
        self.n_ctx_train
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
        check_model_spans(self, spans, tokens.len())?;
        batch::forward_chunked(self, self.seq, tokens, spans, logits)
    }

    fn forward_batch(&mut self, inputs: &[SeqInput]) -> Result<Vec<f32>> {
        for inp in inputs {
            check_model_spans(self, inp.spans, inp.tokens.len())?;
        }
        let lay = Layout::new(inputs, &self.caches, self.n_vocab, self.ubatch_max)?;
        if let Err(e) = self.blocks.batch(&self.gguf, &mut self.caches, &lay) {
            // a failed batch may have written part of its K/V
            lay.roll_back(&mut self.caches);
            return Err(e);
        }
        lay.advance(&mut self.caches);
        let mut out = Vec::new();
        if !lay.outputs.is_empty() {
            // final norm, LM head and softcap of the output rows
            let (head, s) = self.blocks.head_state();
            let x = &s.x[..lay.outputs.len() * head.n_embd()];
            head.logits(&self.gguf, &mut s.mm, x, &mut s.xb, &mut out)?;
        }
        Ok(out)
    }

    fn reserve_image_tokens(&mut self, n: usize) -> Result<()> {
        if !B::IMAGES {
            return Err(no_images(B::ARCH));
        }
        if n <= self.ubatch_max {
            return Ok(());
        }
        if self.caches.iter().any(|c| c.n_past() != 0) {
            return Err(Error::Input(
                "reserve_image_tokens must be called before the first forward".into(),
            ));
        }
        let (n_ctx, ty) = (self.caches[0].n_ctx(), self.caches[0].kv_type());
        self.caches = batch::new_caches(&self.specs, ty, n_ctx, n, self.caches.len())?;
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

    fn paging_stats(&self) -> Option<PagingStats> {
        self.blocks.paging_stats()
    }

    fn paging_choice(&self) -> String {
        self.blocks.paging_choice()
    }
}

/// The configuration both Gemma generations read alike (each `Config` embeds it).
#[derive(Clone, Debug)]
pub struct Common {
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
    /// `attention.sliding_window`
    pub window: usize,
    /// `attention.layer_norm_rms_epsilon`
    pub rms_eps: f32,
    /// `rope.freq_base_swa` (sliding layers; default 1e4 as llama.cpp)
    pub rope_base_swa: f32,
    /// `final_logit_softcapping` (none on Gemma 3)
    pub final_softcap: Option<f32>,
}

impl Common {
    /// The common keys of architecture `arch`, and the reader of its other keys.
    pub(crate) fn from_gguf<'a>(g: &'a Gguf, arch: &'a str) -> Result<(Common, ArchKeys<'a>)> {
        let k = ArchKeys::new(g.metadata(), arch);
        let n_layer = k.usize("block_count")?;
        let n_embd = k.usize("embedding_length")?;
        let n_head = k.usize("attention.head_count")?;
        let token_embd = g.require("token_embd.weight")?;
        let c = Common {
            n_layer,
            n_embd,
            n_vocab: token_embd.dims.get(1).copied().unwrap_or(0) as usize,
            n_ctx_train: k.usize("context_length")?,
            n_head,
            window: k.usize("attention.sliding_window")?,
            rms_eps: k.f32("attention.layer_norm_rms_epsilon")?,
            rope_base_swa: k.f32_opt("rope.freq_base_swa")?.unwrap_or(10_000.0),
            final_softcap: k.f32_opt("final_logit_softcapping")?.filter(|&c| c > 0.0),
        };
        Ok((c, k))
    }
}

/// The attention and dense GeGLU MLP weights of one Gemma layer.
#[derive(Debug)]
pub(crate) struct DenseLayer {
    pub(super) attn_norm: Vec<f32>,
    /// `[n_embd] → [n_head · head_dim]`
    pub(super) attn_q: Mat,
    /// `[n_embd] → [n_head_kv · head_dim]`
    pub(super) attn_k: Mat,
    /// `[n_embd] → [n_head_kv · head_dim]`; absent on K = V layers (V is the raw K projection)
    pub(super) attn_v: Option<Mat>,
    /// `[head_dim]`, shared by all heads
    pub(super) attn_q_norm: Vec<f32>,
    pub(super) attn_k_norm: Vec<f32>,
    /// `[n_head · head_dim] → [n_embd]`
    pub(super) attn_output: Mat,
    pub(super) post_attention_norm: Vec<f32>,
    pub(super) ffn_norm: Vec<f32>,
    /// `[n_embd] → [n_ff]`
    pub(super) ffn_gate: Mat,
    pub(super) ffn_up: Mat,
    /// `[n_ff] → [n_embd]`
    pub(super) ffn_down: Mat,
    pub(super) post_ffw_norm: Vec<f32>,
}

impl DenseLayer {
    /// Layer `il`'s tensors, `head_dim`/`n_head_kv`/`n_ff` its own geometry.
    pub fn bind(
        g: &Gguf,
        c: &Common,
        il: usize,
        (hd, nkv, n_ff): (usize, usize, usize),
    ) -> Result<DenseLayer> {
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        let d = c.n_embd;
        Ok(DenseLayer {
            attn_norm: vector(g, &n("attn_norm"), d)?,
            attn_q: mat(g, &n("attn_q"), d, c.n_head * hd)?,
            attn_k: mat(g, &n("attn_k"), d, nkv * hd)?,
            attn_v: mat_opt(g, &n("attn_v"), d, nkv * hd)?,
            attn_q_norm: vector(g, &n("attn_q_norm"), hd)?,
            attn_k_norm: vector(g, &n("attn_k_norm"), hd)?,
            attn_output: mat(g, &n("attn_output"), c.n_head * hd, d)?,
            post_attention_norm: vector(g, &n("post_attention_norm"), d)?,
            ffn_norm: vector(g, &n("ffn_norm"), d)?,
            ffn_gate: mat(g, &n("ffn_gate"), d, n_ff)?,
            ffn_up: mat(g, &n("ffn_up"), d, n_ff)?,
            ffn_down: mat(g, &n("ffn_down"), n_ff, d)?,
            post_ffw_norm: vector(g, &n("post_ffw_norm"), d)?,
        })
    }

    /// `xb = attn_norm(x)` and its projections `q`, `k`, `v` for the first `n` rows (on K = V
    /// layers `v` is the raw K projection, taken before k_norm and RoPE); grows `att` and `a`.
    pub fn project_qkv(&self, g: &Gguf, s: &mut State, n: usize, eps: f32) -> Result<()> {
        let (d, p) = (self.attn_norm.len(), s.mm.precision);
        let (qd, kvd) = (self.attn_q.n_out, self.attn_k.n_out);
        grow(&mut s.xb, n * d);
        grow(&mut s.q, n * qd);
        grow(&mut s.k, n * kvd);
        grow(&mut s.v, n * kvd);
        grow(&mut s.att, n * qd);
        grow(&mut s.a, n * d);
        ops::rms_norm_rows(&mut s.xb[..n * d], &s.x[..n * d], &self.attn_norm, eps, p);
        match &self.attn_v {
            Some(wv) => s.mm.matmul_many(
                &[&self.attn_q.view(g), &self.attn_k.view(g), &wv.view(g)],
                &s.xb,
                n,
                &mut [&mut s.q, &mut s.k, &mut s.v],
            ),
            None => {
                s.mm.matmul_many(
                    &[&self.attn_q.view(g), &self.attn_k.view(g)],
                    &s.xb,
                    n,
                    &mut [&mut s.q, &mut s.k],
                )?;
                s.v[..n * kvd].copy_from_slice(&s.k[..n * kvd]);
                Ok(())
            }
        }
    }

    /// `x += post_attention_norm(W_o · att)` for the first `n` rows.
    pub fn attn_output(&self, g: &Gguf, s: &mut State, n: usize, eps: f32) -> Result<()> {
        let p = s.mm.precision;
        s.mm.matmul(&self.attn_output.view(g), &s.att, n, &mut s.a)?;
        add_normed(
            &mut s.x,
            &mut s.a,
            &self.post_attention_norm,
            eps,
            p,
            n,
            1.0,
        );
        Ok(())
    }

    /// The dense MLP of the first `n` rows into `m1`:
    /// `W_down · (gelu(W_gate·h) ⊙ W_up·h)`, `h = ffn_norm(x)` (in `xb`).
    pub fn geglu_mlp(&self, g: &Gguf, s: &mut State, n: usize, eps: f32) -> Result<()> {
        let (d, nf, p) = (self.attn_norm.len(), self.ffn_gate.n_out, s.mm.precision);
        grow(&mut s.gate, n * nf);
        grow(&mut s.up, n * nf);
        grow(&mut s.m1, n * d);
        ops::rms_norm_rows(&mut s.xb[..n * d], &s.x[..n * d], &self.ffn_norm, eps, p);
        s.mm.matmul_many(
            &[&self.ffn_gate.view(g), &self.ffn_up.view(g)],
            &s.xb,
            n,
            &mut [&mut s.gate, &mut s.up],
        )?;
        ops::geglu_inplace(&mut s.gate[..n * nf], &s.up[..n * nf], s.mm.ggml_gelu());
        s.mm.matmul(&self.ffn_down.view(g), &s.gate, n, &mut s.m1)
    }
}

/// The token embedding, which is also the LM head when the file has no `output.weight`, and
/// the final norm and softcap.
#[derive(Debug)]
pub(crate) struct Head {
    /// `[n_embd] → [n_vocab]`
    pub token_embd: Mat,
    /// `output.weight` if the file has an untied head
    pub output: Option<Mat>,
    pub output_norm: Vec<f32>,
    pub n_vocab: usize,
    /// `attention.layer_norm_rms_epsilon`
    pub rms_eps: f32,
    /// `final_logit_softcapping`
    pub final_softcap: Option<f32>,
}

impl Head {
    pub fn bind(g: &Gguf, c: &Common) -> Result<Head> {
        let (n_embd, n_vocab) = (c.n_embd, c.n_vocab);
        Ok(Head {
            token_embd: mat(g, "token_embd.weight", n_embd, n_vocab)?,
            output: mat_opt(g, "output.weight", n_embd, n_vocab)?,
            output_norm: vector(g, "output_norm.weight", n_embd)?,
            n_vocab,
            rms_eps: c.rms_eps,
            final_softcap: c.final_softcap,
        })
    }

    /// `n_embd`
    pub fn n_embd(&self) -> usize {
        self.token_embd.n_in
    }

    /// `h₀ = E[token] · √d` for every row of the batch into `x` (`[n × n_embd]`, grown as
    /// needed); given embeddings (image soft tokens) replace their placeholders, unscaled.
    pub fn embed(&self, g: &Gguf, lay: &Layout, x: &mut Vec<f32>) -> Result<()> {
        let (n, d) = (lay.n(), self.token_embd.n_in);
        grow(x, n * d);
        let embd = self.token_embd.view(g);
        let sqrt_d = (d as f32).sqrt();
        let embed = |t: usize, x: &mut [f32]| -> Result<()> {
            embd.dequantize_row(lay.tokens[t] as usize, x)?;
            ops::scale(x, sqrt_d);
            Ok(())
        };
        if n >= PAR_MIN_TOKENS && rayon::current_num_threads() > 1 {
            x[..n * d]
                .par_chunks_mut(d)
                .enumerate()
                .try_for_each(|(t, x)| embed(t, x))?;
        } else {
            for (t, x) in x[..n * d].chunks_mut(d).enumerate() {
                embed(t, x)?;
            }
        }
        for &(t0, e) in &lay.embd {
            x[t0 * d..t0 * d + e.len()].copy_from_slice(e);
        }
        Ok(())
    }

    /// Final norm, LM head and softcap of the rows `x` (`[m × n_embd]`) appended to `out`;
    /// `xb` is scratch.
    pub fn logits(
        &self,
        g: &Gguf,
        mm: &mut Matmul,
        x: &[f32],
        xb: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let d = self.token_embd.n_in;
        let m = x.len() / d;
        grow(xb, m * d);
        let p = mm.precision;
        ops::rms_norm_rows(&mut xb[..m * d], x, &self.output_norm, self.rms_eps, p);
        let head = self.output.as_ref().unwrap_or(&self.token_embd);
        let at = out.len();
        out.resize(at + m * self.n_vocab, 0.0);
        mm.matmul(&head.view(g), xb, m, &mut out[at..])?;
        if let Some(cap) = self.final_softcap {
            ops::softcap(&mut out[at..], cap);
        }
        Ok(())
    }
}

/// Activation buffers of one batch, grown on demand and reused (no allocation once warm). The
/// expert ones stay empty on dense models.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub mm: Matmul,
    /// residual stream `[n × n_embd]`
    pub x: Vec<f32>,
    /// normed input of a block `[n × n_embd]`
    pub xb: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// attention output before `attn_output` `[n × n_head · head_dim]`
    pub att: Vec<f32>,
    /// block output `[n × n_embd]`
    pub a: Vec<f32>,
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// dense branch `[n × n_embd]`
    pub m1: Vec<f32>,
    /// expert branch `[n × n_embd]`
    pub m2: Vec<f32>,
    /// router logits `[n × n_expert]`
    pub router: Vec<f32>,
    /// chosen experts and weights `[n × n_expert_used]`
    pub top_ids: Vec<usize>,
    pub top_w: Vec<f32>,
    /// distinct experts routed by the batch in the current layer, ascending
    pub used: Vec<usize>,
    /// tokens routed to the current expert, gathered `[m × n_embd]`, and their results
    pub rows: Vec<(usize, f32)>,
    /// where each used expert's entries start in `rows` (one more entry at the end)
    pub row_start: Vec<usize>,
    /// `[n × n_expert_used]`: each token's entries of `rows`, by ascending expert
    pub tok_rows: Vec<usize>,
    /// per expert: its count in the batch, then the next free entry of `rows`
    pub expert_next: Vec<usize>,
    pub xe: Vec<f32>,
    pub eg: Vec<f32>,
    pub eu: Vec<f32>,
    pub ed: Vec<f32>,
    /// attention scores of one query (Gemma 3's llama.cpp-parity path)
    pub scores: Vec<f32>,
}

impl State {
    /// Empty buffers, and the matrix products a model loaded with `opts` runs on.
    pub fn new(opts: &ModelOptions, precision: Precision) -> State {
        let mut mm = Matmul::new(precision);
        mm.ggml_tiled &= !opts.batch_invariant;
        State {
            mm,
            ..State::default()
        }
    }
}

/// Moves the rows `outputs` (ascending) of `x` (`[n × d]`) to the front, in order (ascending,
/// so none is overwritten before it moves).
pub(crate) fn gather_rows(x: &mut [f32], outputs: &[usize], d: usize) {
    for (i, &r) in outputs.iter().enumerate() {
        if r != i {
            x.copy_within(r * d..(r + 1) * d, i * d);
        }
    }
}

pub(crate) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Batches of at least this many tokens split their per-token work across the thread pool.
pub(crate) const PAR_MIN_TOKENS: usize = 4;

/// The RoPE angles of every row's position into `tab` (`[n × n_rot/2]`).
pub(crate) fn rope_table(rope: &crate::ops::Rope, pos: &[usize], tab: &mut Vec<[f32; 2]>) {
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

/// `f` on each (row of `a`, row of `b`), `[n × da]` and `[n × db]`; on the compute pool for
/// batches.
pub(crate) fn for_rows<F>(a: &mut [f32], da: usize, b: &mut [f32], db: usize, n: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync,
{
    let (a, b) = (&mut a[..n * da], &mut b[..n * db]);
    if n >= PAR_MIN_TOKENS {
        Pool::current().for_chunk_pairs(a, da, b, db, f);
    } else {
        for (t, (a, b)) in a.chunks_mut(da).zip(b.chunks_mut(db)).enumerate() {
            f(t, a, b);
        }
    }
}

/// `x[t] += norm(a[t])` (then `x[t] *= scale` unless it is 1) for the first `n` token rows
/// of width `w.len()`.
pub(crate) fn add_normed(
    x: &mut [f32],
    a: &mut [f32],
    w: &[f32],
    eps: f32,
    p: Precision,
    n: usize,
    scale: f32,
) {
    let d = w.len();
    for_rows(a, d, x, d, n, |_, a, x| {
        ops::rms_norm_inplace(a, w, eps, p);
        ops::add_assign(x, a);
        if scale != 1.0 {
            ops::scale(x, scale);
        }
    });
}
