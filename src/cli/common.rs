//! Options shared by the model-running subcommands, and loading a model from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use lode::chat::ChatTemplate;
use lode::gguf::Gguf;
use lode::kernels::KernelTable;
use lode::model::{self, KvType, Model, ModelOptions, Precision};
use lode::paging::{Budget, PagingMode, PagingOptions};
use lode::tokenizer::Tokenizer;

use super::progress::Spinner;

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
    /// Accepted for llama.cpp compatibility (also as -ngl) and ignored: lode runs on the CPU.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub n_gpu_layers: Option<i64>,
    #[command(flatten)]
    pub paging: PagingArgs,
}

/// How routed experts (MoE models) are kept in memory.
#[derive(Args, Debug, Clone)]
pub struct PagingArgs {
    /// Expert residency: mmap (OS page cache), cache (budgeted expert cache read with pread),
    /// or auto (cache when every expert fits in memory, read at load, or when the file is
    /// bigger than the available memory; else mmap).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub paging: PagingMode,
    /// Expert cache size for --paging cache, e.g. 6GiB, or auto (what fits in memory).
    #[arg(long, value_name = "SIZE", default_value = "auto")]
    pub expert_budget: Budget,
    /// Router look-ahead prefetch: predict layer L+1's experts from layer L's output
    /// (`--prefetch` alone means on).
    #[arg(long, value_name = "on|off", default_value = "off", num_args = 0..=1,
          default_missing_value = "on", value_parser = parse_on_off,
          action = clap::ArgAction::Set)]
    pub prefetch: bool,
    /// Write each token's per-layer expert selection to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub trace_experts: Option<PathBuf>,
    /// KV cache element type: f16, q8_0 (half the bytes) or f32.
    #[arg(long, value_name = "TYPE", default_value = "f16")]
    pub kv_type: KvType,
}

/// `on|off` for switches that take a value (`--prefetch on`), as `bench` and `run` both do.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
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
        gpu_layers_note(self.n_gpu_layers);
        if let Some(isa) = &self.isa {
            // The kernel table is chosen once, on first use, from LODE_ISA; nothing has run
            // yet and no other thread exists, so setting it here is race-free.
            std::env::set_var("LODE_ISA", isa);
        }
        // chosen now so that a bad --isa fails before any work
        KernelTable::from_env().context("--isa")?;
        set_threads(self.threads)
    }
}

/// `--threads N`: the global rayon pool gets N threads (None: all cores); call once, before
/// any parallel work.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("building the thread pool")?;
    }
    Ok(())
}

/// The one line `-ngl N` gets: lode has no GPU offload, so the flag changes nothing.
pub fn gpu_layers_note(n: Option<i64>) {
    if let Some(n) = n {
        eprintln!("lode: note: -ngl {n} ignored: lode runs on the CPU only");
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
        Ok(self.load_model_with(n_ctx, paging, Precision::Kernels)?.0)
    }

    /// [`Opened::load_model`], also returning the load's wall time in seconds.
    pub fn load_model_timed(
        &self,
        n_ctx: usize,
        paging: &PagingArgs,
    ) -> Result<(Box<dyn Model>, f64)> {
        self.load_model_with(n_ctx, paging, Precision::Kernels)
    }

    /// [`Opened::load_model_timed`] with an explicit arithmetic (`--precision`). A load that
    /// takes over a second shows a spinner on a terminal.
    pub fn load_model_with(
        &self,
        n_ctx: usize,
        paging: &PagingArgs,
        precision: Precision,
    ) -> Result<(Box<dyn Model>, f64)> {
        let opts = ModelOptions {
            n_ctx,
            paging: paging.options(),
            kv_type: paging.kv_type,
            ..ModelOptions::default()
        };
        let t0 = std::time::Instant::now();
        let spinner = Spinner::after("loading the model", std::time::Duration::from_secs(1));
        let model = model::load_with(self.gguf.clone(), &opts, precision);
        spinner.finish();
        let model = model.context("loading the model")?;
        let secs = t0.elapsed().as_secs_f64();
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
        Ok((model, secs))
    }
}

/// The model's own chat template, else lode's built-in one for its architecture; with the
/// warning to print when it is the built-in one (print it once the run is under way, so that
/// an error stays the only line of a failed run).
pub fn chat_template(opened: &Opened) -> Result<(ChatTemplate, Option<String>)> {
    let md = opened.gguf.metadata();
    let warning = ChatTemplate::from_gguf(md)?.is_none().then(|| {
        format!(
            "lode: warning: the model has no chat template (tokenizer.chat_template); using \
             lode's built-in {} template, which a base (not instruction-tuned) model may not \
             follow",
            opened.gguf.architecture().unwrap_or("?")
        )
    });
    Ok((ChatTemplate::from_gguf_or_builtin(md)?, warning))
}

/// `--precision`: the arithmetic of the matrix products.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrecisionArg {
    /// llama.cpp's: activations quantized to the weight type's partner, SIMD kernels.
    #[default]
    Kernels,
    /// Dequantized weights and f32 dot products (what transformers computes; slower).
    Exact,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Kernels => Precision::Kernels,
            PrecisionArg::Exact => Precision::Exact,
        }
    }
}

/// Reads a text file that must be UTF-8 (`-` = standard input, as llama.cpp's `-f -`); the
/// error names the file and the first bad byte.
pub fn read_utf8(path: &Path, what: &str) -> Result<String> {
    let bytes = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .with_context(|| format!("reading {what} from standard input"))?;
        b
    } else {
        std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?
    };
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

/// One line describing a KV cache at full context (docs/gemma4.md §4's split).
pub fn kv_line(e: &model::KvEstimate, ty: KvType, n_ctx: usize) -> String {
    let h = lode::paging::human_bytes;
    format!(
        "KV cache ({ty}) at --ctx {n_ctx}: {} = global {} ({} B/token) + sliding window {} + \
         batch slack {}; allocated as the context fills",
        h(e.total()),
        h(e.global),
        e.global_per_token,
        h(e.sliding_window),
        h(e.sliding_slack)
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

/// The flag that gets the user past a library error, if any: the library's messages name no
/// flags, the binary adds this to its one error line.
pub fn flag_hint(e: &anyhow::Error) -> Option<&'static str> {
    use lode::Error as E;
    Some(match e.chain().find_map(|c| c.downcast_ref::<E>())? {
        E::ContextFull { .. } => "raise --ctx",
        E::KeepTooLong { .. } => "raise --ctx or lower --keep",
        E::ContextTooLong { .. } => "lower --ctx",
        E::ContextTooSmall { .. } => "raise --ctx",
        E::KvTooLarge { kv_type, .. } if *kv_type != KvType::Q8_0 => {
            "lower --ctx or use --kv-type q8_0"
        }
        E::KvTooLarge { .. } => "lower --ctx",
        E::KvTypeUnfit { .. } => "use --kv-type f16",
        _ => return None,
    })
}
