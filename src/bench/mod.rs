//! `lode bench`: prompt-processing and generation speed, peak memory, and how close decode
//! gets to the memory-bandwidth bound, in the shape users know from llama-bench.
//!
//! A run is a list of [`Test`]s (one row each): `pp<N>` feeds N random tokens in one
//! `forward` call, `tg<N>` runs N single-token decode steps, each after `n_depth` random tokens
//! of context that are not timed. Every row gets a warm-up (llama-bench's: the full prompt for
//! pp, one decode step for tg) and `reps` timed repetitions, each from the KV cache rewound to
//! the depth (or emptied and refilled when the sliding-window cache cannot rewind that far).
//! Decode samples the next token from the model's logits at temperature 1 (no top-k/top-p/
//! min-p) with a fixed seed, so the tokens, and with them the routed experts of a MoE model,
//! change from step to step as in real use.
//!
//! Sits beside `engine` (it drives a `Model` directly and reuses the engine's RSS tracker);
//! knows nothing of the CLI's formats beyond the row fields in `docs/bench.md`.

pub mod bandwidth;
pub mod chart;
pub mod output;
pub mod plot;
pub mod sweep;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::engine::memory::{MemoryPeaks, MemoryTracker};
use crate::gguf::{file_type_name, Gguf};
use crate::kernels::KernelTable;
use crate::model::params::ParamReport;
use crate::model::{self, Logits, Model, ModelOptions};
use crate::paging::{PagingOptions, PagingStats};
use crate::sample::{Rng, Sampler, SamplerConfig};
use crate::{Error, Result};

/// Context tokens fed per `forward` call while filling the untimed depth.
const DEPTH_CHUNK: usize = 512;

/// One benchmark row: what is timed (`n_prompt` xor `n_gen` is non-zero) and its setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Test {
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub n_threads: usize,
}

impl Test {
    /// llama-bench's test name: `pp512`, `tg128`, `tg128 @ d4096`.
    pub fn name(&self) -> String {
        let base = if self.n_prompt > 0 {
            format!("pp{}", self.n_prompt)
        } else {
            format!("tg{}", self.n_gen)
        };
        if self.n_depth > 0 {
            format!("{base} @ d{}", self.n_depth)
        } else {
            base
        }
    }

    /// Tokens timed per repetition.
    pub fn n_tokens(&self) -> usize {
        self.n_prompt.saturating_add(self.n_gen)
    }

    /// KV positions one repetition needs (depth + the timed tokens); saturates, so an absurd
    /// `-p`/`-n`/`-d` is refused by the context check at load instead of wrapping.
    pub fn n_ctx(&self) -> usize {
        self.n_depth.saturating_add(self.n_tokens())
    }
}

/// Expands llama-bench style lists into rows, in llama-bench's order: for each thread count
/// and depth, every prompt size, then every generation length. Zeros are skipped (`-p 0`
/// means "no pp rows").
pub fn tests(prompts: &[usize], gens: &[usize], depths: &[usize], threads: &[usize]) -> Vec<Test> {
    let mut out = Vec::new();
    for &n_threads in threads {
        for &n_depth in depths {
            let base = Test {
                n_prompt: 0,
                n_gen: 0,
                n_depth,
                n_threads,
            };
            for &p in prompts.iter().filter(|&&p| p > 0) {
                out.push(Test {
                    n_prompt: p,
                    ..base
                });
            }
            for &n in gens.iter().filter(|&&n| n > 0) {
                out.push(Test { n_gen: n, ..base });
            }
        }
    }
    out
}

/// Everything a run needs besides the list of tests.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Timed repetitions per row (llama-bench `-r`).
    pub reps: usize,
    /// Seeds the random prompt/depth tokens and the decode sampler.
    pub seed: u64,
    /// Expert residency (MoE models), as `lode run --paging/--expert-budget/--prefetch`.
    pub paging: PagingOptions,
    /// KV cache element type.
    pub kv_type: crate::model::KvType,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            reps: 5,
            seed: 42,
            paging: PagingOptions::default(),
            kv_type: crate::model::KvType::default(),
        }
    }
}

/// What the file is: names and sizes for the row, bytes per token for the bound.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// The path as given.
    pub filename: String,
    /// `<arch> <file type>`, e.g. `gemma4 MOSTLY_Q4_K_M`.
    pub model_type: String,
    pub params: ParamReport,
}

impl ModelInfo {
    pub fn new(path: &Path, gguf: &Gguf) -> Result<ModelInfo> {
        let params = ParamReport::from_gguf(gguf)?;
        let arch = gguf.architecture()?;
        let ftype = gguf.metadata().u32_opt("general.file_type")?;
        let ftype = match ftype {
            Some(v) => file_type_name(v)
                .map(str::to_string)
                .unwrap_or_else(|| format!("file_type {v}")),
            None => "file_type ?".to_string(),
        };
        Ok(ModelInfo {
            filename: path.display().to_string(),
            model_type: format!("{arch} {ftype}"),
            params,
        })
    }

    /// Weight bytes one decoded token reads: always-active + `expert_used_count` routed
    /// experts per layer (`model::params`).
    pub fn bytes_per_token(&self) -> u64 {
        self.params.bytes.active_per_token
    }
}

/// One finished row. Field names follow llama-bench's JSON where the quantity is the same;
/// every field is documented in docs/bench.md, which is the compatibility promise.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub lode_version: String,
    /// The commit the binary was built from (llama-bench's `build_commit`).
    pub build_commit: String,
    pub cpu_info: String,
    pub model_filename: String,
    pub model_type: String,
    /// Bytes of all tensors in the file.
    pub model_size: u64,
    pub model_n_params: u64,
    pub n_threads: usize,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    /// UTC start of the row, RFC 3339.
    pub test_time: String,
    pub avg_ns: u64,
    pub stddev_ns: u64,
    pub avg_ts: f64,
    pub stddev_ts: f64,
    pub samples_ns: Vec<u64>,
    pub samples_ts: Vec<f64>,
    // lode's own
    pub isa: String,
    pub paging: String,
    pub expert_budget: Option<u64>,
    pub prefetch: bool,
    pub seed: u64,
    pub expert_hit_rate: Option<f64>,
    pub expert_bytes_read_per_token: Option<f64>,
    pub expert_io_wait_ns_per_token: Option<f64>,
    pub rss_anon_peak: Option<u64>,
    pub rss_file_peak: Option<u64>,
    pub rss_peak: Option<u64>,
    /// Of the resident file-backed memory at the row's end (the model, plus lode's own code),
    /// the share mapped in 2 MiB pages (Linux `FilePmdMapped`); `None` where not known.
    pub file_2mib_fraction: Option<f64>,
    pub params_per_token: u64,
    pub bytes_per_token: u64,
    pub bandwidth: f64,
    pub bound_ts: f64,
    pub bound_fraction: f64,
}

impl Row {
    /// The test this row measured.
    pub fn test(&self) -> Test {
        Test {
            n_prompt: self.n_prompt,
            n_gen: self.n_gen,
            n_depth: self.n_depth,
            n_threads: self.n_threads,
        }
    }
}

/// What `--dry-run` reports per thread count: the bound without running the model.
#[derive(Clone, Debug, Serialize)]
pub struct DryRow {
    pub model_filename: String,
    pub model_type: String,
    /// The CPU and the kernel set a run would use (`--isa` / `LODE_ISA`, else the best).
    pub cpu_info: String,
    pub isa: String,
    pub n_threads: usize,
    pub params: crate::model::params::Split,
    pub bytes: crate::model::params::Split,
    pub bytes_per_token: u64,
    pub bandwidth: f64,
    /// bandwidth ÷ bytes_per_token: the decode tokens/s no implementation can beat.
    pub bound_ts: f64,
}

/// Bandwidth probes, one per thread count, measured on first use.
#[derive(Default)]
pub struct Bandwidths {
    bytes: usize,
    by_threads: HashMap<usize, f64>,
}

impl Bandwidths {
    pub fn new(bytes: usize) -> Bandwidths {
        Bandwidths {
            bytes,
            by_threads: HashMap::new(),
        }
    }

    /// Bytes/s read by `n_threads` threads, best of 3.
    pub fn get(&mut self, n_threads: usize) -> Result<f64> {
        if let Some(&bw) = self.by_threads.get(&n_threads) {
            return Ok(bw);
        }
        let pool = thread_pool(n_threads)?;
        let bw = pool.install(|| bandwidth::measure(self.bytes, 3))?;
        self.by_threads.insert(n_threads, bw);
        Ok(bw)
    }
}

fn thread_pool(n_threads: usize) -> Result<rayon::ThreadPool> {
    if n_threads == 0 {
        return Err(Error::Input("threads must be at least 1".into()));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .build()
        .map_err(|e| Error::Input(format!("building a pool of {n_threads} threads: {e}")))
}

/// `--dry-run`: bytes per token and the bandwidth bound for each thread count.
pub fn dry_run(path: &Path, threads: &[usize], bandwidth_bytes: usize) -> Result<Vec<DryRow>> {
    let gguf = Gguf::open(path)?;
    let info = ModelInfo::new(path, &gguf)?;
    drop(gguf);
    let mut bws = Bandwidths::new(bandwidth_bytes);
    let isa = KernelTable::from_env()?.isa().name().to_string();
    let cpu_info = cpu_info();
    threads
        .iter()
        .map(|&n_threads| {
            let bandwidth = bws.get(n_threads)?;
            let bpt = info.bytes_per_token();
            Ok(DryRow {
                model_filename: info.filename.clone(),
                model_type: info.model_type.clone(),
                cpu_info: cpu_info.clone(),
                isa: isa.clone(),
                n_threads,
                params: info.params.params,
                bytes: info.params.bytes,
                bytes_per_token: bpt,
                bandwidth,
                bound_ts: ratio(bandwidth, bpt as f64),
            })
        })
        .collect()
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Runs every test on the model at `path`, calling `on_row` as each row finishes (so a long
/// run shows progress), and returns all rows.
pub fn run(
    path: &Path,
    tests: &[Test],
    opts: &BenchOptions,
    bws: &mut Bandwidths,
    mut on_row: impl FnMut(&Row),
) -> Result<Vec<Row>> {
    if opts.reps == 0 {
        return Err(Error::Input("repetitions must be at least 1".into()));
    }
    if tests.is_empty() {
        return Err(Error::Input(
            "nothing to run: every -p and -n value is 0".into(),
        ));
    }
    let isa = KernelTable::from_env()?.isa().name().to_string();
    // Bandwidth first, before the model is mapped, so its buffer is gone before any row.
    for t in tests {
        bws.get(t.n_threads)?;
    }
    let gguf = Arc::new(Gguf::open(path)?);
    let info = ModelInfo::new(path, &gguf)?;
    let n_ctx = tests.iter().map(Test::n_ctx).max().unwrap_or(1);
    let mut model = model::load(
        gguf.clone(),
        &ModelOptions {
            n_ctx,
            paging: opts.paging.clone(),
            kv_type: opts.kv_type,
            ..ModelOptions::default()
        },
    )?;
    // The mode the pager settled on (`auto` resolved); dense models have no pager.
    let stats0 = model.paging_stats();
    let paging = stats0
        .as_ref()
        .map_or("none".to_string(), |s| s.mode.clone());
    let expert_budget = stats0
        .as_ref()
        .filter(|s| s.mode == "cache")
        .map(|s| s.budget_bytes);
    let cpu_info = cpu_info();
    let mut rows = Vec::with_capacity(tests.len());
    for t in tests {
        let bandwidth = bws.get(t.n_threads)?;
        let test_time = rfc3339_utc(SystemTime::now());
        let pool = thread_pool(t.n_threads)?;
        let m = pool.install(|| measure(model.as_mut(), t, opts.reps, opts.seed))?;
        let file_2mib_fraction = crate::engine::memory::file_pages_2mib()
            .and_then(|(pmd, file)| (file > 0).then(|| pmd as f64 / file as f64));
        if let Some(table) = crate::ops::pool::trace::report() {
            eprintln!(
                "LODE_TRACE_REGIONS, {} (warm-up included):\n{table}",
                t.name()
            );
        }
        let samples_ts: Vec<f64> = m
            .samples_ns
            .iter()
            .map(|&ns| t.n_tokens() as f64 * 1e9 / ns.max(1) as f64)
            .collect();
        let samples_nsf: Vec<f64> = m.samples_ns.iter().map(|&ns| ns as f64).collect();
        let (avg_ts, stddev_ts) = mean_std(&samples_ts);
        let (avg_ns, stddev_ns) = mean_std(&samples_nsf);
        let bpt = info.bytes_per_token();
        let per_token = |x: u64| m.paging.as_ref().map(|p| x as f64 / p.tokens.max(1) as f64);
        let expert_bytes_read_per_token = per_token(m.paging.as_ref().map_or(0, |p| p.bytes_read));
        let expert_io_wait_ns_per_token = per_token(m.paging.as_ref().map_or(0, |p| p.io_wait_ns));
        let expert_hit_rate = m.paging.as_ref().map(PagingStats::hit_rate);
        let row = Row {
            lode_version: env!("CARGO_PKG_VERSION").to_string(),
            build_commit: crate::BUILD_COMMIT.to_string(),
            cpu_info: cpu_info.clone(),
            model_filename: info.filename.clone(),
            model_type: info.model_type.clone(),
            model_size: info.params.bytes.total,
            model_n_params: info.params.params.total,
            n_threads: t.n_threads,
            n_prompt: t.n_prompt,
            n_gen: t.n_gen,
            n_depth: t.n_depth,
            test_time,
            avg_ns: avg_ns.round() as u64,
            stddev_ns: stddev_ns.round() as u64,
            avg_ts,
            stddev_ts,
            samples_ns: m.samples_ns,
            samples_ts,
            isa: isa.clone(),
            paging: paging.clone(),
            expert_budget,
            prefetch: opts.paging.prefetch && stats0.is_some(),
            seed: opts.seed,
            expert_hit_rate,
            expert_bytes_read_per_token,
            expert_io_wait_ns_per_token,
            rss_anon_peak: m.peaks.rss_anon,
            rss_file_peak: m.peaks.rss_file,
            rss_peak: m.peaks.rss_total,
            file_2mib_fraction,
            params_per_token: info.params.params.active_per_token,
            bytes_per_token: bpt,
            bandwidth,
            bound_ts: ratio(bandwidth, bpt as f64),
            bound_fraction: ratio(bpt as f64 * avg_ts, bandwidth),
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Timings of one row.
struct Measurement {
    samples_ns: Vec<u64>,
    peaks: MemoryPeaks,
    /// Paging counters summed over the timed parts only (None for dense models).
    paging: Option<PagingStats>,
}

/// Adds the paging counters of one timed section to `acc`.
fn add_paging(
    acc: &mut Option<PagingStats>,
    before: Option<PagingStats>,
    after: Option<PagingStats>,
) {
    let (Some(b), Some(a)) = (before, after) else {
        return;
    };
    acc.get_or_insert_with(PagingStats::default)
        .add(&a.since(&b));
}

/// Warm-up plus `reps` timed repetitions of `t`, on the current rayon pool.
fn measure(model: &mut dyn Model, t: &Test, reps: usize, seed: u64) -> Result<Measurement> {
    reset_peak_rss();
    let mut mem = MemoryTracker::new();
    let n_vocab = model.n_vocab();
    let mut rng = Rng::new(seed);
    let mut random_tokens = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| (rng.next_u64() % n_vocab as u64) as u32)
            .collect()
    };

    // Warm-up, as llama-bench: the whole prompt for pp, one step for tg.
    model.truncate(0)?;
    if t.n_prompt > 0 {
        model.forward(&random_tokens(t.n_prompt), Logits::Last)?;
    } else {
        model.forward(&random_tokens(1), Logits::Last)?;
    }
    mem.sample();

    let mut samples_ns = Vec::with_capacity(reps);
    let mut paging = None;
    let mut depth_filled = false;
    for rep in 0..reps {
        // Rewind to the depth filled by an earlier repetition when the KV cache can (sliding
        // window layers keep only a little slack); else start empty and feed the depth again.
        let reuse = depth_filled && t.n_depth > 0 && model.truncate(t.n_depth).is_ok();
        if !reuse {
            model.truncate(0)?;
            for chunk in random_tokens(t.n_depth).chunks(DEPTH_CHUNK) {
                model.forward(chunk, Logits::Last)?;
                mem.sample();
            }
            depth_filled = true;
        }
        let ns = if t.n_prompt > 0 {
            let prompt = random_tokens(t.n_prompt);
            let before = model.paging_stats();
            let t0 = Instant::now();
            model.forward(&prompt, Logits::Last)?;
            let ns = t0.elapsed().as_nanos() as u64;
            add_paging(&mut paging, before, model.paging_stats());
            mem.sample();
            ns
        } else {
            let mut sampler = Sampler::new(decode_sampler(seed.wrapping_add(rep as u64)));
            let mut tok = random_tokens(1)[0];
            // Only the forward passes are timed, as llama-bench times only llama_decode: the
            // sampler picks the inputs but its softmax over the vocabulary is not the model's.
            let mut ns = 0u64;
            for _ in 0..t.n_gen {
                let before = model.paging_stats();
                let t0 = Instant::now();
                let logits = model.forward(&[tok], Logits::Last)?;
                ns += t0.elapsed().as_nanos() as u64;
                add_paging(&mut paging, before, model.paging_stats());
                tok = sampler.sample(&logits);
                mem.sample();
            }
            ns
        };
        samples_ns.push(ns);
    }
    model.truncate(0)?;
    let mut peaks = mem.peaks();
    // VmHWM was reset at the start of the row, so on Linux it is this row's true peak, not
    // just the highest value the samples after each step happened to see.
    if let Some(hwm) = read_vm_hwm() {
        peaks.rss_total = Some(hwm);
    }
    Ok(Measurement {
        samples_ns,
        peaks,
        paging,
    })
}

/// Decode sampling for speed runs: the full distribution at temperature 1, as issue #5 asks,
/// so routed experts vary from step to step like in real use.
pub fn decode_sampler(seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        penalty_last_n: 0,
        seed,
    }
}

/// Mean and sample standard deviation (n − 1, 0 for one sample), as llama-bench's `stdev`.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Resets the kernel's peak-RSS counter (`VmHWM`) so each row reports its own peak. Linux
/// only (`/proc/self/clear_refs`, value 5, since 4.0); elsewhere, and if the write is refused,
/// the peak is the highest sample after each step. (macOS keeps a peak too,
/// `resident_size_peak`, but nothing resets it, so it would carry one row's peak into the next.)
fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
}

fn read_vm_hwm() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        crate::engine::memory::parse_status(&text).rss_total
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The CPU's name: `model name` in /proc/cpuinfo (x86 Linux), `machdep.cpu.brand_string`
/// (macOS), the core's name from its implementer and part numbers (aarch64 Linux, whose
/// /proc/cpuinfo names no model), else the architecture.
pub fn cpu_info() -> String {
    #[cfg(target_os = "macos")]
    if let Some(brand) = crate::paging::sysmem::macos::cpu_brand() {
        return brand;
    }
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_info_from(&text).unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The name from the text of /proc/cpuinfo, if it gives one.
fn cpu_info_from(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if let Some(name) = field("model name") {
        return Some(name);
    }
    let (implementer, part) = (field("CPU implementer")?, field("CPU part")?);
    let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    // A few common cores (Linux arch/arm64/include/asm/cputype.h); others print the numbers.
    let name = match (hex(&implementer)?, hex(&part)?) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd05) => "Cortex-A55",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd09) => "Cortex-A73",
        (0x41, 0xd0a) => "Cortex-A75",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd0d) => "Cortex-A77",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd41) => "Cortex-A78",
        (0x41, 0xd44) => "Cortex-X1",
        (0x41, 0xd47) => "Cortex-A710",
        (0x41, 0xd48) => "Cortex-X2",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4f) => "Neoverse-V2",
        _ => return Some(format!("aarch64 (implementer {implementer}, part {part})")),
    };
    Some(name.to_string())
}

/// `2026-11-28T08:30:00Z` (what llama-bench writes in `test_time`), without a date crate.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_names() {
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\n";
        assert_eq!(
            cpu_info_from(x86).unwrap(),
            "AMD EPYC 9654 96-Core Processor"
        );
        let n1 = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n\
                  CPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\n";
        assert_eq!(cpu_info_from(n1).unwrap(), "Neoverse-N1");
        let other = "CPU implementer\t: 0x61\nCPU part\t: 0x032\n";
        assert_eq!(
            cpu_info_from(other).unwrap(),
            "aarch64 (implementer 0x61, part 0x032)"
        );
        assert_eq!(cpu_info_from(""), None);
    }

    #[test]
    fn test_names_and_order() {
        let ts = tests(&[128, 0], &[64], &[0, 4096], &[2]);
        let names: Vec<String> = ts.iter().map(Test::name).collect();
        assert_eq!(names, ["pp128", "tg64", "pp128 @ d4096", "tg64 @ d4096"]);
        assert_eq!(ts[3].n_ctx(), 4096 + 64);
    }

    #[test]
    fn sample_std_like_llama_bench() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
    }

    #[test]
    fn utc_dates() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
