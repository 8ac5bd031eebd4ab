//! Per-layer K/V storage. Full-attention (global) layers keep every position up to `n_ctx`;
//! sliding-window layers keep a ring buffer of `window + n_ubatch − 1` cells: during a batch
//! every key of the batch is written before any query reads, and the oldest query still needs
//! `window − 1` earlier keys (llama.cpp sizes its SWA cache the same way).
//!
//! Elements are stored as f16 (default), q8_0 (blocks of 32: an f16 scale and 32 int8, 34
//! bytes) or f32 ([`KvType`]). Storage is allocated lazily in chunks of [`CHUNK_CELLS`] cells as
//! the context grows, so a 256K context costs only what has been filled.
//!
//! K = V layers (Gemma 4 global layers, `attention_k_eq_v`) store ONE tensor: the value
//! `v = RMSNorm₀(k_raw)`. The key is re-derived on read as `k = RoPE(v ⊙ w_k_norm, t)`, exact
//! because k_norm and the value norm divide the same raw projection by the same RMS
//! (docs/gemma4.md §4, "caching only V"). This halves the global cache.
//!
//! Prefix checkpoints: a ring buffer cannot rewind further than its slack, so
//! [`KvCache::checkpoint`] copies the last `window − 1` positions of every sliding layer; a
//! later [`KvCache::rewind`] to a position at or after a checkpoint restores it and says from
//! which position the caller must recompute.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::gguf::GgmlType;
use crate::kernels::KernelTable;
use crate::ops::flash::{KeyFromValue, KvBlocks, RawRows};
use crate::{Error, Result};

/// Cells per lazily allocated chunk.
pub const CHUNK_CELLS: usize = 256;

/// How many sliding-window checkpoints are kept (oldest dropped first).
const MAX_CHECKPOINTS: usize = 2;

/// Element type of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvType {
    F32,
    #[default]
    F16,
    Q8_0,
}

impl KvType {
    /// Bytes of `n` elements (`n` a multiple of 32 for q8_0).
    pub fn bytes(self, n: usize) -> usize {
        match self {
            KvType::F32 => 4 * n,
            KvType::F16 => 2 * n,
            KvType::Q8_0 => n / 32 * 34,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
        }
    }
}

crate::gguf::types::display_name!(KvType);

impl std::str::FromStr for KvType {
    type Err = Error;
    fn from_str(s: &str) -> Result<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(KvType::F32),
            "f16" => Ok(KvType::F16),
            "q8_0" | "q8" => Ok(KvType::Q8_0),
            _ => Err(Error::Input(format!(
                "KV cache type `{s}`: expected f16, q8_0 or f32"
            ))),
        }
    }
}

/// How a K = V layer re-derives its key from the stored value: `k = RoPE(v ⊙ norm)`.
#[derive(Clone, Debug)]
pub struct KFromV {
    /// `attn_k_norm` weight `[head_dim]`.
    pub norm: Vec<f32>,
    /// RoPE angular frequency ω_i of each rotated pair (pairs (i, i + n_rot/2)).
    pub inv_freq: Vec<f32>,
}

/// Shape of one layer's cache.
#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Sliding window in tokens (the query sees itself and `window − 1` earlier keys).
    pub window: Option<usize>,
    /// K = V layer: only V is stored, K is derived from it.
    pub k_from_v: Option<KFromV>,
}

/// Bytes of a cache at full context, split the way docs/gemma4.md §4 counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvEstimate {
    /// Growing part: bytes per token of context over all global layers.
    pub global_per_token: u64,
    /// Global layers at `n_ctx`.
    pub global: u64,
    /// Sliding layers, `window` cells each.
    pub sliding_window: u64,
    /// Sliding layers' extra `n_ubatch − 1` cells for batched prefill.
    pub sliding_slack: u64,
}

impl KvEstimate {
    pub fn total(&self) -> u64 {
        self.global
            .saturating_add(self.sliding_window)
            .saturating_add(self.sliding_slack)
    }

    /// Estimate for `specs` at `n_ctx` tokens with batches of `n_ubatch`. Sizes come from
    /// user input and file metadata, so the sums saturate: a total of `u64::MAX` means
    /// "overflows" (and fits no memory), never a wrapped small number.
    pub fn new(specs: &[LayerSpec], ty: KvType, n_ctx: usize, n_ubatch: usize) -> KvEstimate {
        let mut e = KvEstimate::default();
        let mul = |a: u64, b: usize| a.saturating_mul(b as u64);
        for s in specs {
            let tensors = if s.k_from_v.is_some() { 1 } else { 2 };
            let row = s.n_kv_head.saturating_mul(s.head_dim);
            let per_cell = mul(ty.bytes(row) as u64, tensors);
            match s.window {
                None => {
                    e.global_per_token = e.global_per_token.saturating_add(per_cell);
                    e.global = e.global.saturating_add(mul(per_cell, n_ctx));
                }
                Some(w) => {
                    let cells = ring_cells(w, n_ctx, n_ubatch);
                    let win = w.min(cells);
                    e.sliding_window = e.sliding_window.saturating_add(mul(per_cell, win));
                    e.sliding_slack = e.sliding_slack.saturating_add(mul(per_cell, cells - win));
                }
            }
        }
        e
    }
}

fn ring_cells(window: usize, n_ctx: usize, n_ubatch: usize) -> usize {
    n_ctx.min(window.saturating_add(n_ubatch.max(1) - 1))
}

/// One q8_0 block.
#[derive(Clone, Copy, Debug)]
struct Q8Block {
    d: f16,
    qs: [i8; 32],
}

impl Q8Block {
    /// The ggml bytes: f16 scale, then 32 int8.
    fn store(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_bits().to_ne_bytes());
        for (o, &q) in out[2..34].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
    }
}

/// Zeroed bytes starting 16-byte aligned (the C kernels read f16 / q8_0 rows in place).
#[derive(Debug)]
struct Bytes {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl Bytes {
    fn zeroed(len: usize) -> Bytes {
        let buf = vec![0u8; len + 16];
        let off = buf.as_ptr().align_offset(16).min(16);
        Bytes { buf, off, len }
    }

    fn get(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Chunks of `CHUNK_CELLS` rows of `row` elements each. f16 and q8_0 chunks hold their ggml
/// bytes head-major (all cells of head 0, then head 1, ...): the kernels stream one head's
/// rows contiguously instead of one head-slice per cell (a page apart on the 26B shapes).
#[derive(Debug)]
enum Store {
    F32(Vec<Vec<f32>>),
    F16(Vec<Bytes>),
    Q8(Vec<Bytes>),
}

#[derive(Debug)]
struct Tensor {
    store: Store,
    /// elements per cell (`n_kv_head × head_dim`)
    row: usize,
    /// KV heads per cell
    heads: usize,
    cells: usize,
}

impl Tensor {
    fn new(ty: KvType, row: usize, heads: usize, cells: usize) -> Tensor {
        let store = match ty {
            KvType::F32 => Store::F32(Vec::new()),
            KvType::F16 => Store::F16(Vec::new()),
            KvType::Q8_0 => Store::Q8(Vec::new()),
        };
        Tensor {
            store,
            row,
            heads,
            cells,
        }
    }

    /// Byte offset of head `g` of cell `r` in a head-major chunk of `len` bytes.
    fn head_at(&self, len: usize, r: usize, g: usize) -> usize {
        let rb = self.units();
        let hb = rb / self.heads;
        (g * (len / rb) + r) * hb
    }

    /// Elements (f32) or bytes (f16, q8_0) per cell.
    fn units(&self) -> usize {
        match self.store {
            Store::F32(_) => self.row,
            Store::F16(_) => 2 * self.row,
            Store::Q8(_) => self.row / 32 * 34,
        }
    }

    fn allocated_bytes(&self) -> u64 {
        match &self.store {
            Store::F32(c) => c.iter().map(|v| (v.len() * 4) as u64).sum(),
            Store::F16(c) | Store::Q8(c) => c.iter().map(|v| v.len as u64).sum(),
        }
    }

    /// Stored rows of head `g` (`hd` elements) from `cell` on, as many as are contiguous
    /// (at most `n`); `None` for f32 storage.
    fn raw(&self, g: usize, hd: usize, cell: usize, n: usize) -> Option<RawRows<'_>> {
        let (ty, c) = match &self.store {
            Store::F32(_) => return None,
            Store::F16(c) => (GgmlType::F16, c),
            Store::Q8(c) => (GgmlType::Q8_0, c),
        };
        let (ci, r) = (cell / CHUNK_CELLS, cell % CHUNK_CELLS);
        let rb = self.units();
        let chunk = c.get(ci)?.get();
        let m = n.min(chunk.len() / rb - r).max(1);
        let hb = rb / self.heads;
        debug_assert_eq!(hd * self.heads, self.row);
        let start = self.head_at(chunk.len(), r, g);
        Some(RawRows {
            ty,
            bytes: &chunk[start..start + m * hb],
            stride: hb,
            n: m,
        })
    }

    /// Makes sure the chunk holding `cell` exists (allocating the missing ones).
    fn ensure(&mut self, cell: usize) {
        let ci = cell / CHUNK_CELLS;
        let (u, cells) = (self.units(), self.cells);
        let size = |i: usize| CHUNK_CELLS.min(cells - i * CHUNK_CELLS) * u;
        match &mut self.store {
            Store::F32(c) => {
                while c.len() <= ci {
                    c.push(vec![0.0; size(c.len())]);
                }
            }
            Store::F16(c) | Store::Q8(c) => {
                while c.len() <= ci {
                    c.push(Bytes::zeroed(size(c.len())));
                }
            }
        }
    }

    /// Writes `x` (`row` elements) into `cell`.
    fn write(&mut self, cell: usize, x: &[f32]) {
        self.ensure(cell);
        let (ci, r) = (cell / CHUNK_CELLS, cell % CHUNK_CELLS);
        let u = self.units();
        match &mut self.store {
            Store::F32(c) => c[ci][r * u..(r + 1) * u].copy_from_slice(&x[..u]),
            Store::F16(c) => {
                // converted a stack buffer at a time (F16C where the CPU has it), not one call
                // per value: a 26B-A4B layer's cache writes 21 → 11 µs (throwaway timer)
                let (hd, hb) = (self.row / self.heads, u / self.heads);
                let mut h = [f16::ZERO; 64];
                for g in 0..self.heads {
                    let at = (g * (c[ci].len / u) + r) * hb;
                    let dst = &mut c[ci].get_mut()[at..at + hb];
                    for (o, xs) in dst
                        .chunks_mut(2 * h.len())
                        .zip(x[g * hd..(g + 1) * hd].chunks(h.len()))
                    {
                        let h = &mut h[..xs.len()];
                        h.convert_from_f32_slice(xs);
                        for (o, v) in o.chunks_exact_mut(2).zip(h.iter()) {
                            o.copy_from_slice(&v.to_bits().to_ne_bytes());
                        }
                    }
                }
            }
            Store::Q8(c) => {
                let (hd, hb) = (self.row / self.heads, u / self.heads);
                for g in 0..self.heads {
                    let at = (g * (c[ci].len / u) + r) * hb;
                    let dst = &mut c[ci].get_mut()[at..at + hb];
                    for (b, xs) in dst.chunks_exact_mut(34).zip(x[g * hd..].chunks_exact(32)) {
                        quantize_q8(xs).store(b);
                    }
                }
            }
        }
    }

    /// Dequantizes elements `[off, off + n)` of `cell` into `out` (within one head).
    fn read(&self, cell: usize, off: usize, out: &mut [f32]) {
        let (ci, r) = (cell / CHUNK_CELLS, cell % CHUNK_CELLS);
        let n = out.len();
        let hd = self.row / self.heads;
        let (g, o) = (off / hd, off % hd);
        debug_assert!(o + n <= hd, "a read stays within one head");
        match &self.store {
            Store::F32(c) => {
                let base = r * self.row + off;
                out.copy_from_slice(&c[ci][base..base + n]);
            }
            Store::F16(c) => {
                let base = self.head_at(c[ci].len, r, g) + 2 * o;
                // one C kernel call (F16C / NEON): through `half`'s slices and a stack buffer
                // it was 5 % of a 270M decode's samples on the calling thread (`perf record`)
                KernelTable::detect().ggml_f16_to_f32_row(&c[ci].get()[base..base + 2 * n], out);
            }
            Store::Q8(c) => {
                let base = self.head_at(c[ci].len, r, g) + o / 32 * 34;
                let bytes = &c[ci].get()[base..base + n / 32 * 34];
                for (o, b) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(34)) {
                    let d = f16::from_bits(u16::from_ne_bytes([b[0], b[1]])).to_f32();
                    for (y, &q) in o.iter_mut().zip(&b[2..]) {
                        *y = d * (q as i8) as f32;
                    }
                }
            }
        }
    }

    /// The f32 row of `cell` (f32 storage only).
    fn f32_row(&self, cell: usize) -> Option<&[f32]> {
        let (ci, r) = (cell / CHUNK_CELLS, cell % CHUNK_CELLS);
        match &self.store {
            Store::F32(c) => Some(&c[ci][r * self.row..(r + 1) * self.row]),
            _ => None,
        }
    }

    /// Overwrites `cell` with NaN (tests: proves a cell is never read).
    fn poison(&mut self, cell: usize) {
        self.ensure(cell);
        let (ci, r) = (cell / CHUNK_CELLS, cell % CHUNK_CELLS);
        let u = self.units();
        match &mut self.store {
            Store::F32(c) => c[ci][r * u..(r + 1) * u].fill(f32::NAN),
            Store::F16(c) => {
                let hb = u / self.heads;
                for g in 0..self.heads {
                    let at = (g * (c[ci].len / u) + r) * hb;
                    for o in c[ci].get_mut()[at..at + hb].chunks_exact_mut(2) {
                        o.copy_from_slice(&f16::NAN.to_bits().to_ne_bytes());
                    }
                }
            }
            Store::Q8(c) => {
                let nan = Q8Block {
                    d: f16::NAN,
                    qs: [1; 32],
                };
                let hb = u / self.heads;
                for g in 0..self.heads {
                    let at = (g * (c[ci].len / u) + r) * hb;
                    for o in c[ci].get_mut()[at..at + hb].chunks_exact_mut(34) {
                        nan.store(o);
                    }
                }
            }
        }
    }

    /// Copies the rows of `cells` (in order) into a flat f32 snapshot... kept in storage form.
    fn snapshot(&self, cells: impl Iterator<Item = usize>) -> Tensor {
        let cells: Vec<usize> = cells.collect();
        let mut t = Tensor {
            store: match self.store {
                Store::F32(_) => Store::F32(Vec::new()),
                Store::F16(_) => Store::F16(Vec::new()),
                Store::Q8(_) => Store::Q8(Vec::new()),
            },
            row: self.row,
            heads: self.heads,
            cells: cells.len().max(1),
        };
        for (i, &c) in cells.iter().enumerate() {
            t.copy_cell_from(i, self, c);
        }
        t
    }

    /// `self[dst] = src[from]`, raw (no requantization).
    fn copy_cell_from(&mut self, dst: usize, src: &Tensor, from: usize) {
        self.ensure(dst);
        let u = self.units();
        let (di, dr) = (dst / CHUNK_CELLS, dst % CHUNK_CELLS);
        let (si, sr) = (from / CHUNK_CELLS, from % CHUNK_CELLS);
        match (&mut self.store, &src.store) {
            (Store::F32(d), Store::F32(s)) => {
                d[di][dr * u..(dr + 1) * u].copy_from_slice(&s[si][sr * u..(sr + 1) * u])
            }
            (Store::F16(d), Store::F16(s)) | (Store::Q8(d), Store::Q8(s)) => {
                let hb = u / self.heads;
                for g in 0..self.heads {
                    let to = (g * (d[di].len / u) + dr) * hb;
                    let at = (g * (s[si].len / u) + sr) * hb;
                    d[di].get_mut()[to..to + hb].copy_from_slice(&s[si].get()[at..at + hb]);
                }
            }
            _ => unreachable!("snapshot and cache share one element type"),
        }
    }
}

/// ggml `quantize_row_q8_0_ref`: d = max|x| / 127, q = round(x / d).
fn quantize_q8(x: &[f32]) -> Q8Block {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    Q8Block {
        d: f16::from_f32(d),
        qs,
    }
}

#[derive(Debug)]
struct LayerKv {
    spec: LayerSpec,
    cells: usize,
    /// absent on K = V layers
    k: Option<Tensor>,
    v: Tensor,
}

/// Sliding layers' last `window − 1` positions at some `n_past`.
#[derive(Debug)]
struct Checkpoint {
    n_past: usize,
    /// per layer (None for global layers): (first position, K snapshot, V snapshot)
    layers: Vec<Option<(usize, Option<Tensor>, Tensor)>>,
}

/// The cache of every layer, plus how many positions are filled.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    ty: KvType,
    n_ctx: usize,
    n_ubatch: usize,
    n_past: usize,
    checkpoints: Vec<Checkpoint>,
}

impl KvCache {
    /// A cache for `n_ctx` positions, batches of at most `n_ubatch` tokens. Nothing is allocated
    /// until positions are written. q8_0 needs head dims that are multiples of 32.
    pub fn new(specs: &[LayerSpec], ty: KvType, n_ctx: usize, n_ubatch: usize) -> Result<KvCache> {
        if let Some(s) = specs
            .iter()
            .find(|s| ty == KvType::Q8_0 && s.head_dim % 32 != 0)
        {
            return Err(Error::KvTypeUnfit {
                kv_type: ty,
                head_dim: s.head_dim,
            });
        }
        let layers = specs
            .iter()
            .map(|spec| {
                let cells = match spec.window {
                    Some(w) => ring_cells(w, n_ctx, n_ubatch),
                    None => n_ctx,
                };
                let row = spec.n_kv_head * spec.head_dim;
                LayerKv {
                    spec: spec.clone(),
                    cells,
                    k: spec
                        .k_from_v
                        .is_none()
                        .then(|| Tensor::new(ty, row, spec.n_kv_head, cells)),
                    v: Tensor::new(ty, row, spec.n_kv_head, cells),
                }
            })
            .collect();
        Ok(KvCache {
            layers,
            ty,
            n_ctx,
            n_ubatch,
            n_past: 0,
            checkpoints: Vec::new(),
        })
    }

    pub fn n_past(&self) -> usize {
        self.n_past
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// The full-context estimate of this cache.
    pub fn estimate(&self) -> KvEstimate {
        let specs: Vec<LayerSpec> = self.layers.iter().map(|l| l.spec.clone()).collect();
        KvEstimate::new(&specs, self.ty, self.n_ctx, self.n_ubatch)
    }

    /// Bytes allocated so far (K/V storage, not counting checkpoints).
    pub fn allocated_bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.v.allocated_bytes() + l.k.as_ref().map_or(0, |k| k.allocated_bytes()))
            .sum()
    }

    /// Marks `n` more positions as filled (after every layer wrote them).
    pub fn advance(&mut self, n: usize) {
        self.n_past += n;
    }

    /// Stores K and V (`[n_kv_head × head_dim]` each) of position `pos` in layer `il`. On a
    /// K = V layer only `v` is stored.
    pub fn write(&mut self, il: usize, pos: usize, k: &[f32], v: &[f32]) {
        let l = &mut self.layers[il];
        let cell = pos % l.cells;
        if let Some(kt) = &mut l.k {
            kt.write(cell, k);
        }
        l.v.write(cell, v);
    }

    /// Read access to layer `il` for attention.
    pub fn layer(&self, il: usize) -> LayerView<'_> {
        LayerView {
            l: &self.layers[il],
        }
    }

    /// First position a query at `pos` attends to in layer `il`.
    pub fn first_visible(&self, il: usize, pos: usize) -> usize {
        match self.layers[il].spec.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        }
    }

    /// Overwrites with NaN every sliding-layer cell that does not hold one of the last
    /// `window − 1` positions. For tests: a later batch must never read them.
    #[doc(hidden)]
    pub fn poison_outside_window(&mut self) {
        let n_past = self.n_past;
        for l in &mut self.layers {
            let Some(w) = l.spec.window else { continue };
            let keep = n_past.saturating_sub(w - 1)..n_past;
            for cell in 0..l.cells {
                // the position this cell holds (the newest one mapping to it, < n_past)
                let holds = keep.clone().any(|p| p % l.cells == cell);
                if !holds {
                    l.v.poison(cell);
                    if let Some(k) = &mut l.k {
                        k.poison(cell);
                    }
                }
            }
        }
    }

    /// Whether the ring buffers still hold what a rewind to `n_past` needs.
    fn can_truncate(&self, n_past: usize) -> bool {
        n_past == 0
            || self.layers.iter().all(|l| match l.spec.window {
                None => true,
                Some(w) => {
                    // positions still in the ring: [self.n_past − cells, self.n_past)
                    let oldest_kept = self.n_past.saturating_sub(l.cells);
                    n_past.saturating_sub(w - 1) >= oldest_kept
                }
            })
    }

    /// Forgets positions ≥ `n_past`. A ring buffer can rewind only as far as it still holds
    /// the `window − 1` keys before `n_past` (see [`KvCache::rewind`] for checkpoints).
    pub fn truncate(&mut self, n_past: usize) -> Result<()> {
        if n_past > self.n_past {
            return Err(Error::Input(format!(
                "truncate to {n_past}: only {} positions are cached",
                self.n_past
            )));
        }
        if !self.can_truncate(n_past) {
            return Err(Error::Input(format!(
                "cannot rewind the sliding-window cache from {} to {n_past} positions; \
                 reprocess the prompt from 0",
                self.n_past
            )));
        }
        self.n_past = n_past;
        self.checkpoints.retain(|c| c.n_past <= n_past);
        Ok(())
    }

    /// Rewinds towards `n_past` as far as possible without losing correctness: directly when
    /// the rings allow it, else to the newest checkpoint at or before `n_past`, else to 0.
    /// Returns the position reached; the caller recomputes from there.
    pub fn rewind(&mut self, n_past: usize) -> usize {
        let n_past = n_past.min(self.n_past);
        if self.truncate(n_past).is_ok() {
            return n_past;
        }
        let best = self
            .checkpoints
            .iter()
            .enumerate()
            .filter(|(_, c)| c.n_past <= n_past)
            .max_by_key(|(_, c)| c.n_past)
            .map(|(i, _)| i);
        let Some(i) = best else {
            self.n_past = 0;
            self.checkpoints.clear();
            return 0;
        };
        let ck = self.checkpoints.remove(i);
        for (l, snap) in self.layers.iter_mut().zip(ck.layers.iter()) {
            let Some((first, k, v)) = snap else { continue };
            for j in 0..(ck.n_past - first) {
                let cell = (first + j) % l.cells;
                l.v.copy_cell_from(cell, v, j);
                if let (Some(kt), Some(ks)) = (&mut l.k, k) {
                    kt.copy_cell_from(cell, ks, j);
                }
            }
        }
        self.n_past = ck.n_past;
        self.checkpoints.retain(|c| c.n_past <= ck.n_past);
        self.checkpoints.push(ck);
        self.n_past
    }

    /// Snapshots the sliding layers' last `window − 1` positions at the current `n_past`
    /// (kept: the newest [`MAX_CHECKPOINTS`]). A no-op when no layer slides or the context is
    /// still within the rings.
    pub fn checkpoint(&mut self) {
        let n_past = self.n_past;
        if n_past == 0 || self.checkpoints.iter().any(|c| c.n_past == n_past) {
            return;
        }
        if self.layers.iter().all(|l| l.spec.window.is_none()) {
            return;
        }
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let w = l.spec.window?;
                let first = n_past.saturating_sub(w - 1);
                let cells = (first..n_past).map(|p| p % l.cells);
                Some((
                    first,
                    l.k.as_ref().map(|k| k.snapshot(cells.clone())),
                    l.v.snapshot(cells),
                ))
            })
            .collect();
        self.checkpoints.push(Checkpoint { n_past, layers });
        if self.checkpoints.len() > MAX_CHECKPOINTS {
            self.checkpoints.remove(0);
        }
    }
}

/// One layer's cache, readable by the attention kernels.
#[derive(Clone, Copy)]
pub struct LayerView<'a> {
    l: &'a LayerKv,
}

impl LayerView<'_> {
    pub fn n_kv_head(&self) -> usize {
        self.l.spec.n_kv_head
    }

    pub fn head_dim(&self) -> usize {
        self.l.spec.head_dim
    }

    pub fn window(&self) -> Option<usize> {
        self.l.spec.window
    }

    /// Whether both K and V are stored as f32 (the llama.cpp-parity path reads them directly).
    pub fn is_f32_kv(&self) -> bool {
        self.l.k.is_some() && matches!(self.l.v.store, Store::F32(_))
    }

    /// The f32 K row (all heads) of position `t`; `None` unless [`Self::is_f32_kv`].
    fn f32_k_row(&self, t: usize) -> Option<&[f32]> {
        self.l.k.as_ref()?.f32_row(t % self.l.cells)
    }

    fn f32_v_row(&self, t: usize) -> Option<&[f32]> {
        self.l.v.f32_row(t % self.l.cells)
    }
}

impl KvBlocks for LayerView<'_> {
    fn head_dim(&self) -> usize {
        self.l.spec.head_dim
    }

    fn keys(&self, g: usize, t0: usize, out: &mut [f32]) {
        let hd = self.l.spec.head_dim;
        match (&self.l.k, &self.l.spec.k_from_v) {
            (Some(k), _) => {
                for (j, o) in out.chunks_exact_mut(hd).enumerate() {
                    k.read((t0 + j) % self.l.cells, g * hd, o);
                }
            }
            (None, Some(kv)) => {
                self.values(g, t0, out);
                derive_keys(kv, hd, t0, out);
            }
            (None, None) => unreachable!("a layer without K storage derives K from V"),
        }
    }

    fn values(&self, g: usize, t0: usize, out: &mut [f32]) {
        let hd = self.l.spec.head_dim;
        for (j, o) in out.chunks_exact_mut(hd).enumerate() {
            self.l.v.read((t0 + j) % self.l.cells, g * hd, o);
        }
    }

    fn raw_keys(&self, g: usize, t0: usize, n: usize) -> Option<RawRows<'_>> {
        let hd = self.l.spec.head_dim;
        self.l.k.as_ref()?.raw(g, hd, t0 % self.l.cells, n)
    }

    fn raw_values(&self, g: usize, t0: usize, n: usize) -> Option<RawRows<'_>> {
        let hd = self.l.spec.head_dim;
        self.l.v.raw(g, hd, t0 % self.l.cells, n)
    }

    fn key_from_value(&self) -> Option<KeyFromValue<'_>> {
        self.l.spec.k_from_v.as_ref().map(|k| KeyFromValue {
            norm: &k.norm,
            inv_freq: &k.inv_freq,
        })
    }
}

/// `rows[j] ← RoPE(rows[j] ⊙ norm, t0 + j)` (NEOX pairs (i, i + n_rot/2)). The angles advance
/// by one rotation per row (f64 recurrence, exact start per block), and pairs whose angle
/// stays below 1e-9 rad over the whole context are left alone (Gemma 4's proportional RoPE
/// turns 3/4 of the pairs off this way).
fn derive_keys(kv: &KFromV, hd: usize, t0: usize, rows: &mut [f32]) {
    let half = kv.inv_freq.len();
    let n = rows.len() / hd;
    for r in rows.chunks_exact_mut(hd) {
        for (x, &w) in r.iter_mut().zip(&kv.norm) {
            *x *= w;
        }
    }
    for (i, &w) in kv.inv_freq.iter().enumerate() {
        let w = w as f64;
        if w * ((t0 + n) as f64) < 1e-9 {
            continue;
        }
        let (mut s, mut c) = ((t0 as f64) * w).sin_cos();
        let (sd, cd) = w.sin_cos();
        for r in rows.chunks_exact_mut(hd) {
            let (x0, x1) = (r[i] as f64, r[i + half] as f64);
            r[i] = (x0 * c - x1 * s) as f32;
            r[i + half] = (x1 * c + x0 * s) as f32;
            (s, c) = (s * cd + c * sd, c * cd - s * sd);
        }
    }
}

/// The llama.cpp-parity path reads f32 rows directly; only called when
/// [`LayerView::is_f32_kv`] holds.
impl crate::ops::KvRows for LayerView<'_> {
    fn head_dim(&self) -> usize {
        self.l.spec.head_dim
    }

    fn k_row(&self, t: usize) -> &[f32] {
        self.f32_k_row(t)
            .expect("f32 K storage (checked by is_f32_kv)")
    }

    fn v_row(&self, t: usize) -> &[f32] {
        self.f32_v_row(t)
            .expect("f32 V storage (checked by is_f32_kv)")
    }
}
