//! Options shared by the model-running subcommands, and loading a model from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use lode::gguf::Gguf;
use lode::kernels::KernelTable;
use lode::model::{self, KvType, Model, ModelOptions};
use lode::paging::{Budget, PagingMode, PagingOptions};
use lode::tokenizer::Tokenizer;

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Path to the GGUF model file (the first file of a split model).
    #[arg(short = 'm', long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Force a kernel set: scalar, avx2, avx512, neon, neon-dotprod (default: the best this CPU
    /// runs).
    #[arg(long, value_name = "ISA")]
    pub isa: Option<String>,
    #[command(flatten)]
    pub paging: PagingArgs,
}

/// How routed experts (MoE models) are kept in memory.
#[derive(Args, Debug, Clone)]
pub struct PagingArgs {
    /// Expert residency: mmap (OS page cache), cache (budgeted expert cache read with pread),
    /// or auto (cache when the file is bigger than the available memory).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub paging: PagingMode,
    /// Expert cache size for --paging cache, e.g. 6GiB, or auto (what fits in memory).
    #[arg(long, value_name = "SIZE", default_value = "auto")]
    pub expert_budget: Budget,
    /// Router look-ahead prefetch: predict layer L+1's experts from layer L's output.
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub prefetch: bool,
    /// Write each token's per-layer expert selection to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub trace_experts: Option<PathBuf>,
    /// KV cache element type: f16, q8_0 (half the bytes) or f32.
    #[arg(long, value_name = "TYPE", default_value = "f16")]
    pub kv_type: KvType,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}`: expected on or off")),
    }
}

impl PagingArgs {
    pub fn options(&self) -> PagingOptions {
        PagingOptions {
            mode: self.paging,
            budget: self.expert_budget,
            prefetch: self.prefetch,
            trace: self.trace_experts.clone(),
            ..PagingOptions::default()
        }
    }
}

impl ModelArgs {
    /// Applies `--isa` and `--threads`; call once, before any model work.
    pub fn setup(&self) -> Result<()> {
        if let Some(isa) = &self.isa {
            // The kernel table is chosen once, on first use, from LODE_ISA; nothing has run
            // yet and no other thread exists, so setting it here is race-free.
            std::env::set_var("LODE_ISA", isa);
        }
        let table = KernelTable::from_env().context("--isa")?;
        if let Some(n) = self.threads {
            if n == 0 {
                anyhow::bail!("--threads must be at least 1");
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("building the thread pool")?;
        }
        let _ = table;
        Ok(())
    }
}

/// A model file opened with its tokenizer.
pub struct Opened {
    pub gguf: Arc<Gguf>,
    pub tokenizer: Arc<Tokenizer>,
}

pub fn open(path: &Path) -> Result<Opened> {
    // Gguf's errors name the file already.
    let gguf = Gguf::open(path).context("opening the model")?;
    let tokenizer =
        Tokenizer::from_gguf(gguf.metadata()).context("reading the model's tokenizer")?;
    Ok(Opened {
        gguf: Arc::new(gguf),
        tokenizer: Arc::new(tokenizer),
    })
}

impl Opened {
    /// Loads the weights with a context of `n_ctx` tokens (0 = the model's default) and says on
    /// stderr what automatic paging choices were made.
    pub fn load_model(&self, n_ctx: usize, paging: &PagingArgs) -> Result<Box<dyn Model>> {
        let opts = ModelOptions {
            n_ctx,
            paging: paging.options(),
            kv_type: paging.kv_type,
            ..ModelOptions::default()
        };
        let model = model::load(self.gguf.clone(), &opts).context("loading the model")?;
        // The full-context KV size, once it matters for memory (small caches stay quiet so a
        // bad-input error remains the only stderr line).
        if let Some(e) = model
            .kv_estimate()
            .filter(|e| e.total() >= KV_LINE_MIN_BYTES)
        {
            eprintln!("lode: {}", kv_line(&e, paging.kv_type, model.n_ctx()));
        }
        let choice = model.paging_choice();
        if !choice.is_empty() {
            eprintln!("lode: {choice}");
        }
        Ok(model)
    }
}

/// Reads a text file that must be UTF-8; the error names the file and the first bad byte.
pub fn read_utf8(path: &Path, what: &str) -> Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} {} is not valid UTF-8 (bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Caches from this size on are announced at load.
const KV_LINE_MIN_BYTES: u64 = 64 << 20;

/// One line describing a KV cache at full context (design/gemma4.md §4's split).
pub fn kv_line(e: &model::KvEstimate, ty: KvType, n_ctx: usize) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    format!(
        "KV cache ({ty}) at --ctx {n_ctx}: {:.1} MiB = global {:.1} MiB ({} B/token) + \
         sliding window {:.1} MiB + batch slack {:.1} MiB; allocated as the context fills",
        mib(e.total()),
        mib(e.global),
        e.global_per_token,
        mib(e.sliding_window),
        mib(e.sliding_slack)
    )
}

/// A command-line argument that must be UTF-8 (clap's own check prints a usage block, not one
/// line); the error names the argument and the first bad byte.
pub fn utf8_arg(arg: &std::ffi::OsStr, what: &str) -> Result<String> {
    match arg.to_str() {
        Some(s) => Ok(s.to_string()),
        None => {
            let at = std::str::from_utf8(arg.as_encoded_bytes())
                .err()
                .map_or(0, |e| e.valid_up_to());
            anyhow::bail!("{what} is not valid UTF-8 (bad byte at offset {at})")
        }
    }
}
