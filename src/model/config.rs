//! Metadata access with the architecture prefix (`gemma4.block_count`), shared by the model
//! files. Each architecture's `Config::from_gguf` is the only place that names its keys.
//!
//! Metadata is untrusted input that sizes allocations (a `block_count` of 0xFFFFFFFF once made
//! a 34 GB per-layer table), so every count read here is bounded before anything is sized by
//! it: by sense ([`limit`]: far above any real model, far below an allocation that hurts) and,
//! for the layer count, by the file ([`n_layer`]: the layers whose tensors exist).

use crate::gguf::{Gguf, Metadata};
use crate::{Error, Result};

/// The most layers a model may declare (the largest models have ~160).
pub const MAX_LAYERS: usize = 4096;

/// The longest context lode allocates for (llama.cpp's own limit is u32; 16 Mi tokens is past
/// every model's training context and keeps every size computed from it far from overflow).
pub const MAX_CTX: usize = 1 << 24;

/// The sense bound of a count key (the part after `<arch>.`), if it sizes anything.
pub fn limit(k: &str) -> Option<usize> {
    Some(match k {
        "block_count" => MAX_LAYERS,
        "embedding_length" | "feed_forward_length" | "expert_feed_forward_length" => 1 << 20,
        "attention.head_count" | "attention.head_count_kv" => 1 << 12,
        "attention.key_length"
        | "attention.value_length"
        | "attention.key_length_swa"
        | "attention.value_length_swa"
        | "rope.dimension_count"
        | "rope.dimension_count_swa" => 1 << 16,
        "expert_count" | "expert_used_count" => 1 << 16,
        "context_length" | "attention.sliding_window" => u32::MAX as usize,
        _ => return None,
    })
}

fn out_of_range(key: &str, v: usize, max: usize) -> Error {
    Error::BadConfig(format!("`{key}` = {v} is out of range (at most {max})"))
}

/// `<arch>.block_count`, bounded by sense ([`MAX_LAYERS`]) and by the file: each layer has
/// tensors `blk.N.*`, so more layers than the file has tensors for is refused before any
/// per-layer table is sized.
pub fn n_layer(g: &Gguf, arch: &str) -> Result<usize> {
    let k = ArchKeys::new(g.metadata(), arch);
    let n = k.usize("block_count")?;
    let present = layers_in_file(g);
    if n > present {
        return Err(Error::BadConfig(format!(
            "`{}` = {n}, but the file has tensors for {present} layers",
            k.key("block_count")
        )));
    }
    Ok(n)
}

/// One past the highest `N` of the tensors named `blk.N.*` (0 if none).
fn layers_in_file(g: &Gguf) -> usize {
    g.tensors()
        .iter()
        .filter_map(|t| {
            let rest = t.name.strip_prefix("blk.")?;
            rest[..rest.find('.')?].parse::<usize>().ok()
        })
        .max()
        .map_or(0, |n| n + 1)
}

/// `n_ctx` (0 = the default), refused past [`MAX_CTX`].
pub fn check_ctx(n_ctx: usize) -> Result<()> {
    if n_ctx > MAX_CTX {
        return Err(Error::ContextTooLong {
            n_ctx,
            max: MAX_CTX,
        });
    }
    Ok(())
}

/// Keys of one architecture: `keys.usize("block_count")` reads `<arch>.block_count`.
pub struct ArchKeys<'a> {
    pub md: &'a Metadata,
    pub arch: &'a str,
}

/// Per-layer tables are sized by `n_layer`: never past [`MAX_LAYERS`].
fn check_layers(n_layer: usize) -> Result<()> {
    if n_layer > MAX_LAYERS {
        return Err(Error::BadConfig(format!(
            "{n_layer} layers is out of range (at most {MAX_LAYERS})"
        )));
    }
    Ok(())
}

impl<'a> ArchKeys<'a> {
    pub fn new(md: &'a Metadata, arch: &'a str) -> Self {
        ArchKeys { md, arch }
    }

    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    /// A count, checked against [`limit`].
    pub fn usize(&self, k: &str) -> Result<usize> {
        self.usize_opt(k)?
            .ok_or_else(|| Error::MissingKey(self.key(k)))
    }

    pub fn usize_opt(&self, k: &str) -> Result<Option<usize>> {
        let v = self.md.usize_opt(&self.key(k))?;
        match (v, limit(k)) {
            (Some(v), Some(max)) if v > max => Err(out_of_range(&self.key(k), v, max)),
            _ => Ok(v),
        }
    }

    pub fn f32(&self, k: &str) -> Result<f32> {
        self.md.f32(&self.key(k))
    }

    pub fn f32_opt(&self, k: &str) -> Result<Option<f32>> {
        self.md.f32_opt(&self.key(k))
    }

    pub fn str_opt(&self, k: &str) -> Result<Option<&'a str>> {
        self.md.str_opt(&self.key(k))
    }

    /// A per-layer count (scalar or array, each item checked against [`limit`]); missing →
    /// error naming the key.
    pub fn usize_per_layer(&self, k: &str, n_layer: usize) -> Result<Vec<usize>> {
        check_layers(n_layer)?;
        let v = self
            .md
            .usize_per_layer(&self.key(k), n_layer)?
            .ok_or_else(|| Error::MissingKey(self.key(k)))?;
        if let (Some(&x), Some(max)) = (v.iter().max(), limit(k)) {
            if x > max {
                return Err(out_of_range(&self.key(k), x, max));
            }
        }
        Ok(v)
    }

    pub fn bool_per_layer(&self, k: &str, n_layer: usize) -> Result<Option<Vec<bool>>> {
        check_layers(n_layer)?;
        self.md.bool_per_layer(&self.key(k), n_layer)
    }
}
