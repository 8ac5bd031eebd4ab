//! Models: configuration from metadata, weight binding, the forward pass, the KV cache.
//! One file per architecture (`gemma4.rs`, `gemma3.rs`), each reading like its math; shared
//! pieces live in `ops` (math), `config` (key access), `weights` (binding), `kv_cache`, and
//! `decoder` (what both Gemma models share around their layers: slots, head, `Model` methods).
//! Knows nothing of HTTP, sampling or tokenizers.

pub mod batch;
pub mod config;
pub mod decoder;
pub mod gemma3;
pub mod gemma4;
pub mod kv_cache;
pub mod params;
pub mod weights;

use std::sync::Arc;

use crate::gguf::Gguf;
pub use crate::ops::Precision;
pub use crate::paging::{PagingOptions, PagingStats};
use crate::{Error, Result};
pub use batch::SeqInput;
pub use kv_cache::{KvEstimate, KvType};

/// Options chosen when loading a model.
#[derive(Clone, Debug, Default)]
pub struct ModelOptions {
    /// Context length in tokens; 0 = the training context capped at [`DEFAULT_MAX_CTX`].
    pub n_ctx: usize,
    /// How routed experts are kept in memory (MoE models only).
    pub paging: PagingOptions,
    /// Element type of the KV cache (default f16).
    pub kv_type: KvType,
    /// Sequence slots, each with its own KV cache, for [`Model::forward_batch`] (0 = 1).
    pub n_seq: usize,
    /// Every row's arithmetic independent of the other rows of its batch: the llama.cpp-parity
    /// tiled K-quant products, which llama.cpp (and lode) take from 8 rows on, are not used.
    /// Then a sequence gets the same bits whether it is decoded alone or batched with others
    /// (the server sets this; the CLI keeps llama.cpp's arithmetic).
    pub batch_invariant: bool,
}

/// The context used when `n_ctx` is 0 and the training context is longer.
pub const DEFAULT_MAX_CTX: usize = 4096;

/// Which logits `forward` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's row.
    Last,
    /// One row per input token.
    All,
}

/// Input embeddings given for a run of positions instead of token embeddings (an image's soft
/// tokens in place of its placeholder tokens).
#[derive(Clone, Copy, Debug)]
pub struct EmbdSpan<'a> {
    /// Index into the `tokens` of the call of the first position replaced.
    pub start: usize,
    /// Number of positions.
    pub len: usize,
    /// `[len × n_embd]`, used as-is (not scaled like token embeddings).
    pub embd: &'a [f32],
    /// The span's positions attend to each other in both directions on sliding-window layers
    /// (Gemma 4 `use_bidirectional_attention = "vision"`).
    pub bidirectional: bool,
}

/// A loaded model with its KV cache.
pub trait Model: Send {
    fn arch(&self) -> &str;
    fn n_vocab(&self) -> usize;
    fn n_ctx(&self) -> usize;
    fn n_ctx_train(&self) -> usize;
    fn n_past(&self) -> usize;
    /// Feeds `tokens` at positions `n_past..` (appending to the KV cache); returns logits
    /// row-major `[rows × n_vocab]` (rows = 1 for `Last`, `tokens.len()` for `All`).
    /// Errors: empty input, context full, token id ≥ n_vocab (the cache is left unchanged).
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>>;
    /// Sequence slots, each with its own KV cache ([`ModelOptions::n_seq`]).
    fn n_seq(&self) -> usize {
        1
    }
    /// Points the single-sequence methods (`n_past`, `forward`, `forward_embd`, `truncate`,
    /// `checkpoint`, `rewind`) at slot `seq`.
    fn select_seq(&mut self, seq: usize) -> Result<()> {
        if seq == 0 {
            Ok(())
        } else {
            Err(Error::Input(format!(
                "sequence {seq} does not exist (the model has 1 slot)"
            )))
        }
    }
    /// Feeds several sequences in one pass: the matrix products run over the rows of all of
    /// them (the weights are read once), attention per sequence against its own cache. Returns
    /// the requested logits input by input, row-major `[rows × n_vocab]`. Each sequence's
    /// chunk is at most one internal batch ([`N_UBATCH`], or the reserved image size).
    /// On error no cache is changed.
    fn forward_batch(&mut self, inputs: &[SeqInput]) -> Result<Vec<f32>> {
        match inputs {
            [one] if one.seq == 0 => {
                let rows =
                    self.forward_embd(one.tokens, one.spans, one.logits.unwrap_or(Logits::Last))?;
                Ok(if one.logits.is_some() {
                    rows
                } else {
                    Vec::new()
                })
            }
            _ => Err(Error::Input(format!(
                "the {} model decodes one sequence at a time",
                self.arch()
            ))),
        }
    }
    /// Drops cached positions ≥ `n_past` (prefix reuse / reset). Sliding-window layers keep
    /// only a window, so rewinding further back than the ring buffer's slack is an error
    /// (`truncate(0)` always works).
    fn truncate(&mut self, n_past: usize) -> Result<()>;
    /// [`Model::forward`] with some positions' input embeddings given (`spans`, in order,
    /// disjoint); the tokens at those positions are placeholders. Models without image input
    /// accept only an empty `spans`.
    fn forward_embd(
        &mut self,
        tokens: &[u32],
        spans: &[EmbdSpan],
        logits: Logits,
    ) -> Result<Vec<f32>> {
        if !spans.is_empty() {
            return Err(Error::Input(format!(
                "the {} model does not take image input",
                self.arch()
            )));
        }
        self.forward(tokens, logits)
    }
    /// Prepares for images of up to `n` soft tokens (each is processed in one batch). Call
    /// before the first forward.
    fn reserve_image_tokens(&mut self, n: usize) -> Result<()> {
        let _ = n;
        Err(Error::Input(format!(
            "the {} model does not take image input",
            self.arch()
        )))
    }
    /// Expert paging counters since load (MoE models only).
    fn paging_stats(&self) -> Option<PagingStats> {
        None
    }
    /// What the pager chose automatically at load and why (empty if nothing).
    fn paging_choice(&self) -> String {
        String::new()
    }
    /// The KV cache's bytes at full context (models with a cache).
    fn kv_estimate(&self) -> Option<KvEstimate> {
        None
    }
    /// KV cache bytes allocated so far (grows in chunks as the context fills).
    fn kv_allocated(&self) -> u64 {
        0
    }
    /// Remembers the sliding-window state at the current position, so a later
    /// [`Model::rewind`] to here (or after) does not recompute from 0.
    fn checkpoint(&mut self) {}
    /// Rewinds towards `n_past` as far as the cache allows (directly, from a checkpoint, or to
    /// 0) and returns the position reached; the caller re-feeds the tokens from there.
    fn rewind(&mut self, n_past: usize) -> usize {
        let n = n_past.min(self.n_past());
        match self.truncate(n) {
            Ok(()) => n,
            Err(_) => {
                let _ = self.truncate(0);
                0
            }
        }
    }
}

/// Tokens per internal batch of both Gemma models (sizes the sliding rings' slack).
pub const N_UBATCH: usize = 256;

/// The KV cache lode allocates for `g` at `n_ctx` tokens, from the metadata and which tensors
/// exist (no weights read): sliding layers a ring of `window + N_UBATCH − 1` cells, global
/// layers `n_ctx` cells, K = V layers (no `attn_v`, Gemma 4) one stored tensor.
pub fn kv_estimate(g: &Gguf, n_ctx: usize, ty: KvType) -> Result<KvEstimate> {
    let arch = g.architecture()?.to_string();
    let k = config::ArchKeys::new(g.metadata(), &arch);
    config::check_ctx(n_ctx)?;
    let n_layer = config::n_layer(g, &arch)?;
    let n_kv = k.usize_per_layer("attention.head_count_kv", n_layer)?;
    let window = k.usize("attention.sliding_window")?;
    let (sliding, hd, hd_swa) = match arch.as_str() {
        "gemma4" => (
            k.bool_per_layer("attention.sliding_window_pattern", n_layer)?
                .ok_or_else(|| Error::MissingKey(k.key("attention.sliding_window_pattern")))?,
            k.usize("attention.key_length")?,
            k.usize("attention.key_length_swa")?,
        ),
        "gemma3" => {
            let c = gemma3::Config::from_gguf(g)?;
            (c.sliding.clone(), c.head_dim, c.head_dim)
        }
        _ => return Err(Error::UnsupportedArch(arch)),
    };
    let specs: Vec<kv_cache::LayerSpec> = (0..n_layer)
        .map(|il| kv_cache::LayerSpec {
            n_kv_head: n_kv[il],
            head_dim: if sliding[il] { hd_swa } else { hd },
            window: sliding[il].then_some(window),
            // shape only: the norm and frequencies do not change the size
            k_from_v: (arch == "gemma4" && g.tensor(&format!("blk.{il}.attn_v.weight")).is_none())
                .then(|| kv_cache::KFromV {
                    norm: Vec::new(),
                    inv_freq: Vec::new(),
                }),
        })
        .collect();
    Ok(KvEstimate::new(
        &specs,
        ty,
        resolve_ctx(n_ctx, k.usize("context_length")?),
        N_UBATCH,
    ))
}

/// Errors when `n_seq` caches of `est` bytes cannot fit the memory this process may still use.
pub(crate) fn check_kv_fits(
    est: &KvEstimate,
    ty: KvType,
    n_ctx: usize,
    n_seq: usize,
) -> Result<()> {
    let avail = crate::paging::sysmem::available();
    // KvEstimate saturates instead of wrapping: u64::MAX is an overflow
    let total = est.total().saturating_mul(n_seq.max(1) as u64);
    if total == u64::MAX || total > avail.bytes {
        return Err(Error::KvTooLarge {
            n_ctx,
            kv_type: ty,
            n_seq,
            need_bytes: total,
            avail_bytes: avail.bytes,
            avail_source: avail.source,
        });
    }
    Ok(())
}

/// Loads the model named by `general.architecture`, matrix products on the SIMD kernels.
pub fn load(gguf: Arc<Gguf>, opts: &ModelOptions) -> Result<Box<dyn Model>> {
    load_with(gguf, opts, Precision::Kernels)
}

/// [`load`] with an explicit arithmetic: `Precision::Exact` dequantizes weights and uses f32
/// dot products (the reference for tests against transformers).
pub fn load_with(
    gguf: Arc<Gguf>,
    opts: &ModelOptions,
    precision: Precision,
) -> Result<Box<dyn Model>> {
    let arch = gguf.architecture()?.to_string();
    if matches!(arch.as_str(), "gemma4" | "gemma3") {
        config::n_layer(&gguf, &arch)?;
    }
    let model: Box<dyn Model> = match arch.as_str() {
        "gemma4" => Box::new(gemma4::Gemma4::load(gguf, opts, precision)?),
        "gemma3" => Box::new(gemma3::Gemma3::load(gguf, opts, precision)?),
        _ => return Err(Error::UnsupportedArch(arch)),
    };
    // After the load, whose memory check explains a context that does not fit (the caches
    // are allocated as they fill, so nothing was sized by n_ctx yet); this catches what the
    // memory check cannot, e.g. a model of sliding-window layers only.
    config::check_ctx(opts.n_ctx)?;
    Ok(model)
}

/// Checks a `forward` call before it touches the cache.
pub(crate) fn check_input(
    tokens: &[u32],
    n_vocab: usize,
    n_past: usize,
    n_ctx: usize,
) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::Input("forward: no tokens".into()));
    }
    if let Some(&t) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::Input(format!(
            "token id {t} is out of range (vocabulary has {n_vocab} tokens)"
        )));
    }
    if n_past + tokens.len() > n_ctx {
        return Err(Error::Input(format!(
            "context full: {n_past} cached + {} new tokens exceed the context of {n_ctx}",
            tokens.len()
        )));
    }
    Ok(())
}

/// The context to allocate for a request of `n_ctx` (0 = default) given the training context.
pub(crate) fn resolve_ctx(n_ctx: usize, n_ctx_train: usize) -> usize {
    match n_ctx {
        0 => n_ctx_train.min(DEFAULT_MAX_CTX),
        n => n,
    }
}
