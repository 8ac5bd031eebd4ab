//! Per-layer K/V storage (f32). Full-attention layers keep every position up to `n_ctx`;
//! sliding-window layers keep a ring buffer of `window + n_ubatch − 1` cells: during a batch
//! every key of the batch is written before any query reads, and the oldest query still needs
//! `window − 1` earlier keys (llama.cpp sizes its SWA cache the same way).

use crate::ops::KvView;
use crate::{Error, Result};

/// Shape of one layer's cache.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec {
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Sliding window in tokens (the query sees itself and `window − 1` earlier keys).
    pub window: Option<usize>,
}

#[derive(Debug)]
struct LayerKv {
    spec: LayerSpec,
    cells: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

/// The cache of every layer, plus how many positions are filled.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    n_ctx: usize,
    n_past: usize,
}

impl KvCache {
    /// Allocates for `n_ctx` positions, batches of at most `n_ubatch` tokens.
    pub fn new(specs: &[LayerSpec], n_ctx: usize, n_ubatch: usize) -> KvCache {
        let layers = specs
            .iter()
            .map(|&spec| {
                let cells = match spec.window {
                    Some(w) => n_ctx.min(w + n_ubatch - 1),
                    None => n_ctx,
                };
                let n = cells * spec.n_kv_head * spec.head_dim;
                LayerKv {
                    spec,
                    cells,
                    k: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        KvCache {
            layers,
            n_ctx,
            n_past: 0,
        }
    }

    pub fn n_past(&self) -> usize {
        self.n_past
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Marks `n` more positions as filled (after every layer wrote them).
    pub fn advance(&mut self, n: usize) {
        self.n_past += n;
    }

    /// Stores K and V (`[n_kv_head × head_dim]` each) of position `pos` in layer `il`.
    pub fn write(&mut self, il: usize, pos: usize, k: &[f32], v: &[f32]) {
        let l = &mut self.layers[il];
        let n = l.spec.n_kv_head * l.spec.head_dim;
        let at = (pos % l.cells) * n;
        l.k[at..at + n].copy_from_slice(&k[..n]);
        l.v[at..at + n].copy_from_slice(&v[..n]);
    }

    pub fn view(&self, il: usize) -> KvView<'_> {
        let l = &self.layers[il];
        KvView {
            k: &l.k,
            v: &l.v,
            cells: l.cells,
            n_kv_head: l.spec.n_kv_head,
            head_dim: l.spec.head_dim,
        }
    }

    /// First position a query at `pos` attends to in layer `il`.
    pub fn first_visible(&self, il: usize, pos: usize) -> usize {
        match self.layers[il].spec.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        }
    }

    /// Forgets positions ≥ `n_past`. A ring buffer can rewind only as far as it still holds
    /// the `window − 1` keys before `n_past`.
    pub fn truncate(&mut self, n_past: usize) -> Result<()> {
        if n_past > self.n_past {
            return Err(Error::Input(format!(
                "truncate to {n_past}: only {} positions are cached",
                self.n_past
            )));
        }
        if n_past > 0 {
            for l in &self.layers {
                if let Some(w) = l.spec.window {
                    // positions still in the ring: [self.n_past − cells, self.n_past)
                    let oldest_kept = self.n_past.saturating_sub(l.cells);
                    let oldest_needed = n_past.saturating_sub(w - 1);
                    if oldest_needed < oldest_kept {
                        return Err(Error::Input(format!(
                            "cannot rewind the sliding-window cache from {} to {n_past} \
                             positions (it keeps {} cells); reprocess the prompt from 0",
                            self.n_past, l.cells
                        )));
                    }
                }
            }
        }
        self.n_past = n_past;
        Ok(())
    }
}
