//! `lode run`: generate text from a prompt, streaming it to stdout; timings go to stderr.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use lode::engine::{
    self, memory::human_bytes_opt as human_bytes, prompt, GenerateOptions, Session, Stats, Streamed,
};
use lode::sample::Sampler;

use super::common::{self, ModelArgs};
use super::progress::Spinner;
use super::sampling::{fresh_seed, SamplingArgs};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: ModelArgs,
    /// The prompt text.
    #[arg(
        short = 'p',
        long,
        value_name = "PROMPT",
        required_unless_present = "file"
    )]
    pub prompt: Option<std::ffi::OsString>,
    /// Read the prompt from a UTF-8 file instead (`-` = standard input).
    #[arg(
        short = 'f',
        long,
        value_name = "PROMPT_FILE",
        conflicts_with = "prompt"
    )]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub predict: super::args::Predict<128>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub window: super::args::Window<2048>,
    /// When the context fills: keep the first --keep tokens, drop the oldest half of the rest
    /// and continue (the kept tokens are recomputed). Default: stop with a message.
    #[arg(long)]
    pub context_shift: bool,
    /// Tokens at the start (the system prompt) that --context-shift and --truncate keep.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep: usize,
    /// Drop the middle of a prompt longer than the context instead of failing.
    #[arg(long)]
    pub truncate: bool,
    /// Wrap the prompt in the model's chat format (one user turn).
    #[arg(long)]
    pub chat: bool,
    /// System text for --chat.
    #[arg(
        long,
        visible_alias = "system-prompt",
        value_name = "TEXT",
        requires = "chat"
    )]
    pub system: Option<String>,
    /// Do not stop at end-of-generation tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Also write the timings as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Print expert-paging telemetry per decoded token (MoE models) after the run.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub vision: ImageArgs,
}

/// Image input (Gemma 4 with an mmproj file), shared by `run` and `chat`.
#[derive(Args, Debug, Clone, Default)]
pub struct ImageArgs {
    /// Show the model an image (PNG, JPEG, WebP, GIF first frame; repeatable). The prompt's
    /// `<|image|>` placeholders mark where each goes; without them the images come first.
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    /// The vision projector GGUF that pairs with the model (needed with --image).
    #[arg(long, value_name = "PATH")]
    pub mmproj: Option<PathBuf>,
    /// Soft-token budget per image (transformers' max_soft_tokens: 70, 140, 280, 560, 1120).
    #[arg(long, value_name = "N", default_value_t = lode::vision::DEFAULT_MAX_SOFT_TOKENS)]
    pub image_max_tokens: usize,
}

impl ImageArgs {
    /// Loads the mmproj (checked against the text model) if one was given.
    pub fn load_mmproj(&self, opened: &common::Opened) -> Result<Option<lode::vision::Mmproj>> {
        if self.mmproj.is_none() && !self.images.is_empty() {
            anyhow::bail!("--image needs --mmproj PATH (the model's vision projector GGUF)");
        }
        if !lode::vision::preprocess::SOFT_TOKEN_BUDGETS.contains(&self.image_max_tokens) {
            anyhow::bail!(
                "--image-max-tokens must be one of {:?} (the budgets Gemma 4 was trained with)",
                lode::vision::preprocess::SOFT_TOKEN_BUDGETS
            );
        }
        let Some(path) = &self.mmproj else {
            return Ok(None);
        };
        let mm = lode::vision::Mmproj::open(path)?;
        let arch = opened.gguf.architecture()?;
        let n_embd = opened
            .gguf
            .metadata()
            .usize(&format!("{arch}.embedding_length"))?;
        mm.check_pair(arch, n_embd)
            .with_context(|| format!("--mmproj {} with --model", path.display()))?;
        Ok(Some(mm))
    }

    /// Decodes and encodes `paths`, then splices them into `tokens`.
    pub fn prompt(
        &self,
        mm: &lode::vision::Mmproj,
        opened: &common::Opened,
        paths: &[PathBuf],
        tokens: &[u32],
    ) -> Result<lode::vision::MmPrompt> {
        let enc = self.encode(mm, paths)?;
        Ok(lode::vision::MmPrompt::new(tokens, &opened.tokenizer, enc)?)
    }

    /// Decodes and encodes `paths` (one stderr line each).
    pub fn encode(
        &self,
        mm: &lode::vision::Mmproj,
        paths: &[PathBuf],
    ) -> Result<Vec<lode::vision::EncodedImage>> {
        let imgs = paths
            .iter()
            .map(lode::vision::load_image)
            .collect::<lode::Result<Vec<_>>>()?;
        let enc = lode::vision::encode_all(
            mm,
            &imgs,
            self.image_max_tokens,
            lode::model::Precision::Kernels,
        )?;
        for (p, e) in paths.iter().zip(&enc) {
            eprintln!(
                "lode: image {}: {}×{} → {} soft tokens ({}×{}), encoded in {:.3} s",
                p.display(),
                e.width,
                e.height,
                e.soft.len(),
                e.soft.grid_w,
                e.soft.grid_h,
                e.secs
            );
        }
        Ok(enc)
    }
}

/// Prompts from this many tokens on get a spinner until the first token.
const LONG_PROMPT: usize = 256;

/// The `--stats-json` document.
#[derive(Serialize)]
struct StatsJson {
    /// Wall time of loading the weights (mapping, repacking, KV cache), before the prompt.
    load_secs: f64,
    prompt_tokens: usize,
    prompt_tps: f64,
    gen_tokens: usize,
    gen_tps: f64,
    /// Bytes; null where the OS does not say.
    peak_rss_anon: Option<u64>,
    peak_rss_file: Option<u64>,
    peak_rss_total: Option<u64>,
    prompt_secs: f64,
    gen_secs: f64,
    stop: engine::StopReason,
    seed: u64,
    /// Expert paging counters of the decode phase (MoE models only).
    paging: Option<lode::paging::PagingStats>,
    /// Bytes of weights one decoded token reads (model::params).
    active_bytes_per_token: Option<u64>,
}

pub fn run(a: RunArgs) -> Result<()> {
    a.common.setup()?;
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => common::utf8_arg(p, "the prompt (-p)")?,
        (None, Some(f)) => common::read_utf8(f, "prompt file")?,
        (None, None) => anyhow::bail!("give a prompt with -p TEXT or -f FILE"),
    };
    let seed = a.sampling.seed.unwrap_or_else(fresh_seed);
    let cfg = a.sampling.config_with_seed(seed)?;
    if a.window.batch.n == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    // as the server: an empty prompt or no tokens to generate is a mistake, not a no-op
    if text.is_empty() && a.vision.images.is_empty() {
        anyhow::bail!("the prompt is empty");
    }
    if a.predict.n == 0 {
        anyhow::bail!("--n-predict must be at least 1");
    }
    if let Some(p) = &a.stats_json {
        lode::output::check(p, &inputs(&a))?;
    }

    let opened = common::open(&a.common.model)?;
    let mmproj = a.vision.load_mmproj(&opened)?;
    // without `<|image|>` placeholders in the prompt the images go first
    let text = lode::vision::prompt_with_images(&text, a.vision.images.len());
    // Special-token text in the prompt (e.g. <start_of_turn>) becomes the special token, as in
    // llama-cli; BOS comes first exactly once for a chat prompt (the template writes `<bos>`).
    let mut template_warning = None;
    let tokens = if a.chat {
        let (template, warning) =
            common::chat_template(&opened).context("--chat: the model's chat template")?;
        template_warning = warning;
        let tok = &opened.tokenizer;
        prompt::single_turn(&template, tok, a.system.as_deref(), &text)?.1
    } else {
        let tokens = prompt::encode_raw(&opened.tokenizer, &text);
        if prompt::has_double_bos(&opened.tokenizer, &tokens) {
            eprintln!(
                "warning: the prompt starts with BOS and the model adds one: it now starts with \
                 2 BOS tokens (as llama.cpp does); drop the leading <bos> or use --chat"
            );
        }
        tokens
    };
    let mm_prompt = match &mmproj {
        Some(mm) if !a.vision.images.is_empty() => {
            Some(a.vision.prompt(mm, &opened, &a.vision.images, &tokens)?)
        }
        _ => None,
    };
    let (mut model, load_secs) = opened.load_model_timed(a.window.ctx.n, &a.common.paging)?;
    if let Some(p) = &mm_prompt {
        model.reserve_image_tokens(p.max_image_tokens())?;
    }
    let spans = mm_prompt.as_ref().map(|p| p.spans()).unwrap_or_default();
    let tokens = mm_prompt.as_ref().map_or(&tokens, |p| &p.tokens);
    let mut session = Session::new(model, opened.tokenizer.clone(), Sampler::new(cfg));
    session.context = lode::engine::ContextPolicy {
        context_shift: a.context_shift,
        n_keep: a.keep,
        truncate_prompt: a.truncate,
    };
    let opts = GenerateOptions {
        max_tokens: a.predict.n,
        batch: a.window.batch.n,
        ignore_eos: a.ignore_eos,
    };

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut pipe_closed = false;
    // Until the first token: a spinner for a long prompt (terminal only).
    let spinner = (tokens.len() >= LONG_PROMPT).then(|| {
        Spinner::after(
            &format!("processing the prompt ({} tokens)", tokens.len()),
            std::time::Duration::from_millis(500),
        )
    });
    let stats = session.generate_embd(tokens, &spans, &opts, |s: Streamed<'_>| {
        if let Some(sp) = &spinner {
            sp.finish();
        }
        // the prompt was accepted: now the warning, before the answer it is about
        if let Some(w) = template_warning.take() {
            eprintln!("{w}");
        }
        if s.text.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        match out.write_all(s.text.as_bytes()).and_then(|_| out.flush()) {
            Ok(()) => Ok(ControlFlow::Continue(())),
            // `lode run ... | head`: the reader left; stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                pipe_closed = true;
                Ok(ControlFlow::Break(()))
            }
            Err(e) => Err(lode::Error::io("<stdout>", e)),
        }
    })?;
    if let Some(w) = template_warning {
        eprintln!("{w}"); // the answer ended before its first token
    }
    if !pipe_closed && std::io::stdout().is_terminal() {
        let _ = writeln!(out);
    }
    drop(out);

    print_summary(&stats, load_secs, a.sampling.sampled(), seed);
    let active = lode::model::params::ParamReport::from_gguf(&opened.gguf)
        .ok()
        .map(|r| r.bytes.active_per_token);
    if a.stats {
        print_paging(&stats, active);
    }
    if let Some(path) = &a.stats_json {
        let j = StatsJson {
            load_secs,
            prompt_tokens: stats.prompt_tokens,
            prompt_tps: stats.prompt_tps(),
            gen_tokens: stats.gen_tokens,
            gen_tps: stats.gen_tps(),
            peak_rss_anon: stats.memory.rss_anon,
            peak_rss_file: stats.memory.rss_file,
            peak_rss_total: stats.memory.rss_total,
            prompt_secs: stats.prompt_secs,
            gen_secs: stats.gen_secs,
            stop: stats.stop,
            seed,
            paging: stats.paging.clone(),
            active_bytes_per_token: active,
        };
        let mut bytes = serde_json::to_vec_pretty(&j)?;
        bytes.push(b'\n');
        lode::output::write(path, &bytes, &inputs(&a))
            .with_context(|| format!("writing --stats-json {}", path.display()))?;
    }
    Ok(())
}

/// The files `run` reads, which its outputs must not replace.
fn inputs(a: &RunArgs) -> Vec<&std::path::Path> {
    let mut v = vec![a.common.model.as_path()];
    v.extend(a.file.as_deref());
    v.extend(a.vision.mmproj.as_deref());
    v.extend(a.vision.images.iter().map(PathBuf::as_path));
    v
}

fn print_summary(s: &Stats, load_secs: f64, sampled: bool, seed: u64) {
    let stop = match s.stop {
        engine::StopReason::ContextFull => {
            "context full (raise --ctx, or pass --context-shift to keep going)"
        }
        engine::StopReason::Callback => "output closed",
        other => other.describe(),
    };
    eprintln!(
        "lode: load {load_secs:.2} s | prompt {} tokens, {:.1} tok/s | generated {} tokens, \
         {:.1} tok/s | stop: {stop}{}",
        s.prompt_tokens,
        s.prompt_tps(),
        s.gen_tokens,
        s.gen_tps(),
        if sampled {
            format!(" | seed {seed}")
        } else {
            String::new()
        }
    );
    eprintln!(
        "lode: peak RSS {}; its parts peaked separately (so they need not add up): \
         anonymous {}, file-backed {}",
        human_bytes(s.memory.rss_total),
        human_bytes(s.memory.rss_anon),
        human_bytes(s.memory.rss_file)
    );
}

/// `--stats`: expert paging per decoded token, and memory next to what a token reads.
fn print_paging(s: &Stats, active: Option<u64>) {
    let mb = |b: f64| format!("{:.1} MB", b / 1e6);
    let active = active.map_or("?".into(), |a| mb(a as f64));
    let Some(p) = &s.paging else {
        eprintln!("lode: stats: no routed experts (dense model); weights read per token {active}");
        return;
    };
    let n = p.tokens.max(1) as f64;
    eprintln!(
        "lode: paging {}{}: {} decode tokens, {:.1} experts/token, hit rate {:.1}% ({} hits, {} misses), \
         read {}/token, I/O wait {:.2} ms/token{}",
        p.mode,
        if p.budget_bytes > 0 {
            format!(" (budget {})", human_bytes(Some(p.budget_bytes)))
        } else {
            String::new()
        },
        p.tokens,
        p.experts_routed as f64 / n,
        100.0 * p.hit_rate(),
        p.hits,
        p.misses,
        mb(p.bytes_read as f64 / n),
        p.io_wait_ns as f64 / n / 1e6,
        if p.prefetch_predicted > 0 {
            format!(", prefetch accuracy {:.1}%", 100.0 * p.prefetch_accuracy())
        } else {
            String::new()
        }
    );
    eprintln!(
        "lode: memory: resident experts {} (peak {}, evictions {}) of {}; peak RSS anonymous {}, \
         file-backed {}; weights read per token {active}",
        human_bytes(Some(p.resident_bytes)),
        human_bytes(Some(p.peak_resident_bytes)),
        p.evictions,
        human_bytes(Some(p.expert_bytes_total)),
        human_bytes(s.memory.rss_anon),
        human_bytes(s.memory.rss_file),
    );
}
