//! The one interface the model uses for routed experts, whatever keeps them in memory.
//!
//! Per MoE layer the model calls [`Pager::begin`] with the experts its batch routed to (all of
//! them, before the first expert matmul, so reads overlap compute), then [`Pager::get`] for
//! each expert in turn, and computes with the returned [`Held`] slices. Two residency modes:
//!
//! - `mmap`: experts are slices of the mapping. When the file fits in available memory the
//!   mapping asks for 2 MiB pages (`MADV_HUGEPAGE`); otherwise the stacked expert tensors are
//!   marked `MADV_RANDOM` at load (no readahead into unrouted neighbours). `begin` asks for
//!   the routed slices with `MADV_WILLNEED`. The OS page cache decides what stays.
//! - `cache`: an [`ExpertCache`] of anonymous buffers under a byte budget, filled by `pread` on
//!   a background thread; an expert is pinned while its `Held` lives.
//!
//! Non-expert weights are not paged: they stay mapped. Also counts per-token telemetry and
//! writes the routing trace (`--trace-experts`). Knows byte ranges, not router math.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use super::arena::ExpertBuf;
use super::budget::{human_bytes, parse_bytes};
use super::cache::{ExpertCache, Extent};
use super::index::{ExpertIndex, ExpertSlices, FileRange};
use super::policy::PolicyKind;
use super::{mmap, sysmem};
use crate::ops::pool::Pool;
use crate::output::Output;
use crate::{Error, Result};

/// `--paging`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PagingMode {
    /// Leave experts to the OS page cache (with madvise hints).
    #[default]
    Mmap,
    /// Budgeted expert cache filled by pread.
    Cache,
    /// `cache` when the model file is bigger than the available memory, or when every expert
    /// fits beside the rest (the whole arena read at load); else `mmap`.
    Auto,
}

spelled!(PagingMode { Mmap = "mmap", Cache = "cache", Auto = "auto" } else |s| {
    Error::Input(format!("--paging `{s}`: expected mmap, cache or auto"))
});

/// `--expert-budget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Budget {
    /// What fits next to the non-expert weights and the KV cache in the available memory.
    #[default]
    Auto,
    Bytes(u64),
}

impl FromStr for Budget {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            Ok(Budget::Auto)
        } else {
            parse_bytes(s).map(Budget::Bytes)
        }
    }
}

/// How routed experts are kept in memory (part of `ModelOptions`).
#[derive(Clone, Debug, PartialEq)]
pub struct PagingOptions {
    pub mode: PagingMode,
    /// Expert cache size (`cache` mode).
    pub budget: Budget,
    /// Router look-ahead: run layer L+1's router on layer L's output and prefetch its top-k.
    pub prefetch: bool,
    /// Write each token's per-layer expert selection as JSON lines here.
    pub trace: Option<PathBuf>,
    /// Eviction policy of the cache.
    pub policy: PolicyKind,
}

impl Default for PagingOptions {
    fn default() -> Self {
        PagingOptions {
            mode: PagingMode::Mmap,
            budget: Budget::Auto,
            prefetch: false,
            trace: None,
            policy: PolicyKind::DEFAULT,
        }
    }
}

/// Cumulative counters (subtract two snapshots with [`PagingStats::since`] for an interval).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PagingStats {
    /// `mmap` or `cache`.
    pub mode: String,
    /// Cache budget in bytes (0 in mmap mode).
    pub budget_bytes: u64,
    /// Bytes of all routed experts in the file.
    pub expert_bytes_total: u64,
    /// Tokens run through the model.
    pub tokens: u64,
    /// Distinct (layer, expert) pairs used, summed over batches.
    pub experts_routed: u64,
    /// Experts already in memory when routed (mmap: every page resident, by `mincore`).
    pub hits: u64,
    pub misses: u64,
    /// Bytes read from the file (mmap: bytes of routed pages that were not resident).
    pub bytes_read: u64,
    /// Time the forward pass waited for expert reads (cache mode; mmap faults are not seen).
    pub io_wait_ns: u64,
    /// Experts predicted by the router look-ahead, and how many of them were then routed.
    pub prefetch_predicted: u64,
    pub prefetch_correct: u64,
    pub evictions: u64,
    /// Bytes of expert buffers held by the cache now, and the most it held.
    pub resident_bytes: u64,
    pub peak_resident_bytes: u64,
}

interval_stats!(PagingStats {
    counts: tokens, experts_routed, hits, misses, bytes_read, io_wait_ns, prefetch_predicted,
        prefetch_correct, evictions;
    levels: mode, budget_bytes, expert_bytes_total, resident_bytes, peak_resident_bytes;
});

impl PagingStats {
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    pub fn prefetch_accuracy(&self) -> f64 {
        ratio(self.prefetch_correct, self.prefetch_predicted)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

enum Backend {
    Mmap,
    Cache {
        cache: ExpertCache,
        /// Key of expert 0 of each layer (`base[il] + e`).
        base: Vec<usize>,
        /// Requested by `begin` and not yet taken by `get`, per layer being run.
        outstanding: Vec<usize>,
    },
}

/// Serves routed experts to the model; see the module doc.
pub struct Pager {
    index: ExpertIndex,
    backend: Backend,
    prefetch: bool,
    /// The look-ahead's prediction per layer, checked when the layer routes.
    predicted: Vec<Vec<usize>>,
    stats: PagingStats,
    trace: Option<Trace>,
    choice: String,
    /// mmap mode: the experts `mincore` found wholly resident, while the count of major
    /// faults stayed what it was then.
    resident: Resident,
}

/// Experts known to be in the page cache, so [`Pager::begin`] need not ask `mincore` again
/// (the check walks ~1000 pages per expert: 1.9 ms of a ~113 ms resident 26B-A4B decode token
/// at 2 threads, by a throwaway timer). Pages can leave the cache behind lode's back (memory
/// pressure, another process); touching one again is a major fault, so any new major fault of
/// the process forgets everything and the next routed experts are checked afresh.
#[derive(Debug, Default)]
struct Resident {
    /// per (layer, expert) key `base[il] + e` ([`layer_bases`])
    known: Vec<bool>,
    base: Vec<usize>,
    /// [`mmap::major_faults`] when `known` was last valid (`None`: unknown, nothing is kept)
    faults: Option<u64>,
}

impl Resident {
    fn new(base: Vec<usize>) -> Resident {
        Resident {
            base,
            ..Resident::default()
        }
    }

    /// Starts a check at `faults` major faults: a count other than the last one (or none)
    /// forgets every expert.
    fn refresh(&mut self, faults: Option<u64>) {
        if faults.is_none() || faults != self.faults {
            self.known.clear();
            self.faults = faults;
        }
        if faults.is_some() && self.known.is_empty() {
            self.known
                .resize(self.base.last().copied().unwrap_or(0), false);
        }
    }

    fn is_known(&self, il: usize, e: usize) -> bool {
        self.known.get(self.base[il] + e) == Some(&true)
    }

    /// Expert `e` of layer `il` was found wholly resident (kept only while the fault count is
    /// known).
    fn mark(&mut self, il: usize, e: usize) {
        if let Some(k) = self.known.get_mut(self.base[il] + e) {
            *k = true;
        }
    }

    /// Residency could not be read: keep nothing until the next refresh.
    fn forget(&mut self) {
        self.known.clear();
    }
}

/// Key of expert 0 of each layer, then the number of (layer, expert) pairs: expert `e` of
/// layer `il` is `base[il] + e`.
fn layer_bases(index: &ExpertIndex) -> Vec<usize> {
    let mut base = Vec::with_capacity(index.n_layer() + 1);
    let mut n = 0;
    for il in 0..index.n_layer() {
        base.push(n);
        n += index.n_expert(il);
    }
    base.push(n);
    base
}

/// `--paging auto`: `cache` when the model (all its files) is bigger than the available memory
/// (paging), or when every expert fits beside the rest: the arena (2 MiB pages, read at load)
/// decodes faster than the page cache's mapping (26B-A4B, 2 threads, interleaved rounds in
/// docs/performance.md: 1.07–1.48× in eight on 2026-12-07, 0.83–1.48× in four on 2026-12-08),
/// like llama.cpp's default repacked copy.
/// Otherwise `mmap`, where the kernel decides what stays.
fn auto_mode(expert_total: u64, bigger: bool, all_fit: bool) -> PagingMode {
    if expert_total > 0 && (bigger || all_fit) {
        PagingMode::Cache
    } else {
        PagingMode::Mmap
    }
}

/// Memory left unplanned by the automatic budget: 512 MiB + 5 % of what is available.
fn margin(avail: u64) -> u64 {
    (512 << 20) + avail / 20
}

/// Bytes the experts may take of `avail`: what is left beside the non-expert weights, the KV
/// cache at full context and the [`margin`].
fn expert_room(avail: u64, non_expert: u64, kv: u64) -> u64 {
    avail.saturating_sub(non_expert + kv + margin(avail))
}

/// What the model needs besides the experts, for the automatic budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct OtherMemory {
    /// KV cache and scratch buffers at full context, in bytes.
    pub kv_bytes: u64,
}

impl Pager {
    /// Sets up the residency `opts` asks for over `index`'s experts.
    pub fn new(index: ExpertIndex, opts: &PagingOptions, other: OtherMemory) -> Result<Pager> {
        let gguf = index.gguf().clone();
        let expert_total = index.total_bytes();
        let file_bytes: u64 = gguf.files().iter().map(|f| f.mmap.len() as u64).sum();
        let non_expert = gguf.tensor_bytes().saturating_sub(expert_total);
        // read once: the mode, the budget and the mmap hints decide on the same number (two
        // readings could let `auto` find that every expert fits and the budget then not hold them)
        let avail = sysmem::available();
        let mut choice = String::new();
        let mode = match opts.mode {
            PagingMode::Auto => {
                let room = expert_room(avail.bytes, non_expert, other.kv_bytes);
                let (bigger, all_fit) = (file_bytes > avail.bytes, room >= expert_total);
                let m = auto_mode(expert_total, bigger, all_fit);
                choice = if bigger {
                    format!(
                        "paging auto → {m}: model {} > available {} ({})",
                        human_bytes(file_bytes),
                        human_bytes(avail.bytes),
                        avail.source
                    )
                } else {
                    format!(
                        "paging auto → {m}: model {} ≤ available {} ({}); experts {} {} the {} \
                         beside the rest",
                        human_bytes(file_bytes),
                        human_bytes(avail.bytes),
                        avail.source,
                        human_bytes(expert_total),
                        if all_fit { "fit" } else { "exceed" },
                        human_bytes(room)
                    )
                };
                m
            }
            m => m,
        };
        let mut stats = PagingStats {
            mode: mode.to_string(),
            expert_bytes_total: expert_total,
            ..PagingStats::default()
        };
        let backend = if mode == PagingMode::Cache && expert_total > 0 {
            let min_bytes = (0..index.n_layer())
                .map(|il| index.expert_bytes(il))
                .max()
                .unwrap_or(0);
            let budget = match opts.budget {
                Budget::Bytes(b) => b,
                Budget::Auto => {
                    let margin = margin(avail.bytes);
                    let fit = expert_room(avail.bytes, non_expert, other.kv_bytes);
                    let b = fit.min(expert_total).max(min_bytes);
                    let note = format!(
                        "expert budget auto = {} (available {} [{}] − non-expert weights {} − \
                         KV {} − margin {}, at most all experts {})",
                        human_bytes(b),
                        human_bytes(avail.bytes),
                        avail.source,
                        human_bytes(non_expert),
                        human_bytes(other.kv_bytes),
                        human_bytes(margin),
                        human_bytes(expert_total)
                    );
                    choice = join(&choice, &note);
                    b
                }
            };
            stats.budget_bytes = budget;
            let (cache, base) = build_cache(&index, budget, opts.policy)?;
            if budget >= expert_total {
                // Everything fits: read it all at load (as a non-mmap loader would), so decoding
                // never waits and a user with plenty of memory pays for paging only once.
                let all: Vec<usize> = (0..cache.n_keys()).collect();
                cache.warm_blocking(&all)?;
            }
            choice = join(
                &choice,
                &format!(
                    "expert cache {} of {} ({:.0}%), policy {}",
                    human_bytes(budget),
                    human_bytes(expert_total),
                    100.0 * budget as f64 / expert_total.max(1) as f64,
                    opts.policy.name()
                ),
            );
            Backend::Cache {
                cache,
                base,
                outstanding: Vec::new(),
            }
        } else {
            if file_bytes.saturating_add(other.kv_bytes) <= avail.bytes {
                // Everything stays resident: read and map the file in 2 MiB pages. Random-
                // access hints would make the kernel read and map it 4 KiB at a time, one
                // fault per page and a TLB miss every 4 KiB of a streamed expert.
                for f in gguf.files() {
                    mmap::advise_huge(&f.mmap);
                }
                choice = join(
                    &choice,
                    &format!(
                        "mmap: file {} fits in {} available: 2 MiB mappings",
                        human_bytes(file_bytes),
                        human_bytes(avail.bytes)
                    ),
                );
            } else {
                // No readahead into unrouted neighbours of a routed expert.
                for t in gguf.tensors() {
                    if t.dims.len() == 3 && t.name.contains("_exps") {
                        let f = &gguf.files()[t.file];
                        let off = gguf.file_offset(t) as usize;
                        mmap::advise_random(&f.mmap, off, t.n_bytes as usize);
                    }
                }
            }
            Backend::Mmap
        };
        let inputs: Vec<&Path> = gguf.files().iter().map(|f| f.path.as_path()).collect();
        let trace = opts
            .trace
            .as_deref()
            .map(|p| Trace::create(p, &inputs))
            .transpose()?;
        let resident = Resident::new(layer_bases(&index));
        Ok(Pager {
            predicted: vec![Vec::new(); index.n_layer()],
            index,
            backend,
            prefetch: opts.prefetch,
            stats,
            trace,
            choice,
            resident,
        })
    }

    /// What `auto` chose and why (empty when nothing was automatic), for the log.
    pub fn choice(&self) -> &str {
        &self.choice
    }

    pub fn index(&self) -> &ExpertIndex {
        &self.index
    }

    /// Whether the router look-ahead is on.
    pub fn prefetch_enabled(&self) -> bool {
        self.prefetch
    }

    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Announces the experts layer `il` routed to (distinct ids): starts every read now.
    pub fn begin(&mut self, il: usize, ids: &[usize]) -> Result<()> {
        self.stats.experts_routed += ids.len() as u64;
        let predicted = std::mem::take(&mut self.predicted[il]);
        if !predicted.is_empty() {
            self.stats.prefetch_predicted += predicted.len() as u64;
            self.stats.prefetch_correct +=
                predicted.iter().filter(|e| ids.contains(e)).count() as u64;
        }
        match &mut self.backend {
            Backend::Mmap => {
                let g = self.index.gguf();
                let known = &mut self.resident;
                known.refresh(mmap::major_faults());
                // (expert, ranges, bytes missing or None if unknown) per expert not known to be
                // resident
                let mut work = Vec::with_capacity(ids.len());
                for &e in ids {
                    let r = self
                        .index
                        .ranges(il, e)
                        .ok_or_else(|| Error::Input(format!("layer {il} has no expert {e}")))?;
                    if known.is_known(il, e) {
                        self.stats.hits += 1;
                    } else {
                        work.push((e, r, Some(0u64)));
                    }
                }
                // The residency check and the read hint walk the page cache page by page
                // (~1000 pages per expert, 2.5% of a 4-sequence 26B-A4B step on the batch
                // thread while the pool's other threads waited): experts spread over the pool.
                Pool::current().for_chunks(&mut work, 1, |_, w| {
                    for (_, ranges, missing) in w {
                        for r in ranges.iter() {
                            let m = &g.files()[r.file].mmap;
                            let b = mmap::will_need_missing(m, r.offset as usize, r.len as usize);
                            *missing = missing.zip(b).map(|(a, b)| a + b);
                        }
                    }
                });
                for &(e, _, missing) in &work {
                    // residency unknown: counted as a hit (hinted, nothing measured to be read)
                    let missing = missing.unwrap_or_else(|| {
                        known.forget();
                        0
                    });
                    if missing == 0 {
                        self.stats.hits += 1;
                        known.mark(il, e);
                    } else {
                        self.stats.misses += 1;
                        self.stats.bytes_read += missing;
                    }
                }
            }
            Backend::Cache {
                cache,
                base,
                outstanding,
            } => {
                if !outstanding.is_empty() {
                    // A failed batch left requests unmatched: release them.
                    for k in std::mem::take(outstanding) {
                        let _ = cache.wait(k);
                    }
                }
                outstanding.extend(ids.iter().map(|&e| base[il] + e));
                cache.request(outstanding);
            }
        }
        Ok(())
    }

    /// Expert `e` of layer `il`, which [`begin`](Pager::begin) announced; waits for its read.
    pub fn get(&mut self, il: usize, e: usize) -> Result<Held<'_>> {
        let buf = match &mut self.backend {
            Backend::Mmap => None,
            Backend::Cache {
                cache,
                base,
                outstanding,
            } => {
                let key = base[il] + e;
                let at = outstanding
                    .iter()
                    .position(|&k| k == key)
                    .ok_or_else(|| Error::Input(format!("expert ({il}, {e}) was not announced")))?;
                outstanding.swap_remove(at);
                Some(cache.wait(key)?)
            }
        };
        Ok(Held {
            index: &self.index,
            il,
            e,
            buf,
        })
    }

    /// How many of layer `il`'s experts may be held at once: any number when they live in the
    /// mapping, as many as the cache budget holds (at least one) with the expert cache.
    pub fn hold_limit(&self, il: usize) -> usize {
        match &self.backend {
            Backend::Mmap => usize::MAX,
            Backend::Cache { .. } => {
                let one = self.index.expert_bytes(il).max(1);
                ((self.stats.budget_bytes / one) as usize).max(1)
            }
        }
    }

    /// [`get`](Pager::get) for every expert in `ids` at once (their matrices then go to the
    /// thread pool together).
    pub fn get_all(&mut self, il: usize, ids: &[usize]) -> Result<Vec<Held<'_>>> {
        let mut bufs = Vec::with_capacity(ids.len());
        for &e in ids {
            let held = self.get(il, e)?;
            bufs.push(held.buf);
        }
        let index = &self.index;
        Ok(ids
            .iter()
            .zip(bufs)
            .map(|(&e, buf)| Held { index, il, e, buf })
            .collect())
    }

    /// Router look-ahead: layer `il` will probably route to `ids`; start reading them.
    pub fn prefetch(&mut self, il: usize, ids: &[usize]) {
        self.predicted[il] = ids.to_vec();
        match &self.backend {
            Backend::Mmap => {
                let g = self.index.gguf();
                for &e in ids {
                    for r in self.index.ranges(il, e).into_iter().flatten() {
                        let m = &g.files()[r.file].mmap;
                        mmap::will_need_missing(m, r.offset as usize, r.len as usize);
                    }
                }
            }
            Backend::Cache { cache, base, .. } => {
                let keys: Vec<usize> = ids.iter().map(|&e| base[il] + e).collect();
                cache.prefetch(&keys);
            }
        }
    }

    /// Records one token's selection in layer `il` for the trace.
    pub fn record(&mut self, token: usize, il: usize, ids: &[usize], weights: &[f32]) {
        if let Some(t) = &mut self.trace {
            t.write(token, il, ids, weights);
        }
    }

    /// `n` tokens went through the model (advances the eviction policy's clock).
    pub fn advance(&mut self, n: usize) {
        self.stats.tokens += n as u64;
        if let Backend::Cache { cache, .. } = &self.backend {
            for _ in 0..n {
                cache.tick();
            }
        }
    }

    pub fn stats(&self) -> PagingStats {
        let mut s = self.stats.clone();
        if let Backend::Cache { cache, .. } = &self.backend {
            let c = cache.stats();
            s.hits = c.hits;
            s.misses = c.misses;
            s.bytes_read = c.bytes_read;
            s.io_wait_ns = c.io_wait_ns;
            s.evictions = c.evictions;
            s.resident_bytes = c.resident_bytes;
            s.peak_resident_bytes = c.peak_resident_bytes;
        }
        s
    }

    /// Finishes the trace file (also done on drop, where errors can only be printed).
    pub fn finish_trace(&mut self) -> Result<()> {
        match self.trace.take() {
            Some(t) => t.finish(),
            None => Ok(()),
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        if let Err(e) = self.finish_trace() {
            eprintln!("lode: warning: {e}");
        }
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}; {b}")
    }
}

/// Extents for every (layer, expert): gate, up and down ranges back to back, merged where
/// contiguous (a fused gate_up expert is one read).
fn build_cache(
    index: &ExpertIndex,
    budget: u64,
    policy: PolicyKind,
) -> Result<(ExpertCache, Vec<usize>)> {
    let mut extents = Vec::new();
    for il in 0..index.n_layer() {
        for e in 0..index.n_expert(il) {
            let mut ranges: Vec<FileRange> = Vec::with_capacity(3);
            for r in index.ranges(il, e).into_iter().flatten() {
                match ranges.last_mut() {
                    Some(last) if last.file == r.file && last.offset + last.len == r.offset => {
                        last.len += r.len
                    }
                    _ => ranges.push(r),
                }
            }
            extents.push(Extent { ranges });
        }
    }
    let paths: Vec<&Path> = index
        .gguf()
        .files()
        .iter()
        .map(|f| f.path.as_path())
        .collect();
    let cache = ExpertCache::new(&paths, extents, budget, policy)?;
    Ok((cache, layer_bases(index)))
}

/// One expert in use: its slices stay valid (and a cached expert stays pinned) while held.
pub struct Held<'a> {
    index: &'a ExpertIndex,
    il: usize,
    e: usize,
    buf: Option<Arc<ExpertBuf>>,
}

impl Held<'_> {
    pub fn slices(&self) -> Result<ExpertSlices<'_>> {
        match &self.buf {
            Some(b) => self.index.expert_in(self.il, b),
            None => self.index.expert(self.il, self.e),
        }
    }
}

/// `--trace-experts`: JSON lines written through `crate::output` (a temporary file renamed
/// into place at the end, or in place for a FIFO or `/dev/stdout`).
struct Trace {
    out: std::io::BufWriter<Output>,
    error: Option<std::io::Error>,
}

impl Trace {
    fn create(path: &Path, inputs: &[&Path]) -> Result<Trace> {
        Ok(Trace {
            out: std::io::BufWriter::new(Output::create(path, inputs)?),
            error: None,
        })
    }

    fn write(&mut self, token: usize, layer: usize, ids: &[usize], weights: &[f32]) {
        if self.error.is_some() {
            return;
        }
        #[derive(Serialize)]
        struct Line<'a> {
            token: usize,
            layer: usize,
            experts: &'a [usize],
            weights: &'a [f32],
        }
        let line = Line {
            token,
            layer,
            experts: ids,
            weights,
        };
        let r = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"));
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// Commits the file; after a write error the temporary file is dropped (removed).
    fn finish(mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(self.out.get_ref().io_error(e));
        }
        let out = self.out.into_inner().map_err(|e| {
            let (e, out) = e.into_parts();
            out.get_ref().io_error(e)
        })?;
        out.commit()
    }
}

/// Reads a `--trace-experts` file back as policy-simulator steps: one step per token, the
/// dense keys `layer * n_expert + expert` in layer order. Returns (steps, number of keys).
pub fn read_trace(path: &Path) -> Result<(Vec<super::policy::TraceStep>, usize)> {
    read_trace_top_k(path).map(|(steps, n_keys, _)| (steps, n_keys))
}

/// [`read_trace`], also returning the experts used per token per layer (the model's top-k:
/// the most any one line of the trace lists).
pub fn read_trace_top_k(path: &Path) -> Result<(Vec<super::policy::TraceStep>, usize, usize)> {
    #[derive(serde::Deserialize)]
    struct Line {
        token: usize,
        layer: usize,
        experts: Vec<usize>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = Vec::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line: Line = serde_json::from_str(l).map_err(|e| {
            Error::Input(format!(
                "{}:{}: not a trace line: {e}",
                path.display(),
                i + 1
            ))
        })?;
        lines.push(line);
    }
    let n_expert = lines
        .iter()
        .flat_map(|l| l.experts.iter())
        .max()
        .map_or(0, |m| m + 1)
        .next_power_of_two(); // a key space at least as large as the model's
    let n_layer = lines.iter().map(|l| l.layer + 1).max().unwrap_or(0);
    let top_k = lines.iter().map(|l| l.experts.len()).max().unwrap_or(0);
    // Prefill batches run layer by layer over many tokens; order by token, then layer.
    lines.sort_by_key(|l| (l.token, l.layer));
    let mut steps: Vec<super::policy::TraceStep> = Vec::new();
    let mut last = None;
    for l in lines {
        if last != Some(l.token) {
            steps.push(Vec::new());
            last = Some(l.token);
        }
        let step = steps.last_mut().expect("pushed");
        step.extend(l.experts.iter().map(|&e| l.layer * n_expert + e));
    }
    Ok((steps, n_layer * n_expert, top_k))
}

#[cfg(test)]
mod tests {
    use super::{auto_mode, expert_room, PagingMode, Resident};

    #[test]
    fn auto_caches_when_paging_is_needed_or_every_expert_fits() {
        use PagingMode::{Cache, Mmap};
        // (experts, model bigger than available, all experts fit) → mode
        for (e, bigger, fit, want) in [
            (1, true, false, Cache),
            (1, false, true, Cache),
            (1, false, false, Mmap),
            (0, false, true, Mmap),
            (0, true, false, Mmap),
        ] {
            assert_eq!(auto_mode(e, bigger, fit), want, "{e} {bigger} {fit}");
        }
        // room: available − non-expert − KV − (512 MiB + 5 %), never below zero
        let gib = 1u64 << 30;
        assert_eq!(
            expert_room(20 * gib, 2 * gib, gib),
            20 * gib - 3 * gib - (512 << 20) - gib
        );
        assert_eq!(expert_room(gib, 2 * gib, 0), 0);
    }

    #[test]
    fn resident_experts_are_kept_until_a_major_fault() {
        // two layers of 5 experts: keys 0..5 and 5..10
        let mut r = Resident::new(vec![0, 5, 10]);
        r.refresh(Some(5));
        assert!(!r.is_known(1, 3));
        r.mark(1, 3);
        r.refresh(Some(5));
        assert!(r.is_known(1, 3) && !r.is_known(0, 3) && !r.is_known(1, 4));
        // a page came from disk since: maybe an eviction, so every expert is checked again
        r.refresh(Some(6));
        assert!(!r.is_known(1, 3));
        r.mark(1, 3);
        r.forget();
        assert!(!r.is_known(1, 3));
        // the fault count cannot be read: nothing is kept
        r.refresh(None);
        r.mark(1, 3);
        assert!(!r.is_known(1, 3));
        r.refresh(None);
        assert!(!r.is_known(1, 3));
    }

    #[test]
    fn major_faults_are_readable_here() {
        #[cfg(unix)]
        assert!(crate::paging::mmap::major_faults().is_some());
    }
}
