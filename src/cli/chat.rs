//! `lode chat`: an interactive terminal chat. Each turn renders the whole conversation with the
//! model's chat template, and only the tokens past what the KV cache already holds are
//! evaluated (`server::prefix::KvPrefix`). Reasoning is shown dimmed and never re-enters the
//! history (the template strips it anyway). Ctrl-C stops the answer, not the program.

use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use lode::chat::{ChatTemplate, RenderRequest};
use lode::engine::{prompt, GenerateOptions, Session, Stats, StopReason};
use lode::sample::Sampler;
use lode::server::output::{ChatFormat, OutputParser, Piece};
use lode::server::prefix::KvPrefix;

use super::common::{self, ModelArgs};
use super::serve::SamplingArgs;

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: ModelArgs,
    /// System prompt.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Start with thinking on (toggle with /think on|off).
    #[arg(long)]
    pub think: bool,
    /// Most tokens per answer.
    #[arg(
        short = 'n',
        long = "n-predict",
        value_name = "N",
        default_value_t = 1024
    )]
    pub n_predict: usize,
    /// Context size in tokens for the whole conversation (default: the model's, at most 4096).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 0)]
    pub ctx: usize,
    /// Prompt tokens per forward pass.
    #[arg(short = 'b', long, value_name = "N", default_value_t = 512)]
    pub batch: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// `--image` files go with the first message.
    #[command(flatten)]
    pub vision: super::run::ImageArgs,
}

/// Set by SIGINT; the decode loop checks it after every token.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Relaxed);
}

/// Ctrl-C sets [`INTERRUPTED`] instead of killing the process.
#[cfg(unix)]
fn install_sigint() {
    // SAFETY: `sa` is fully initialised (zeroed, then handler and an empty mask set) before
    // sigaction reads it; the handler only does an atomic store, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// Elsewhere Ctrl-C keeps its default (it ends the program); /exit and end of input work.
#[cfg(not(unix))]
fn install_sigint() {}

/// How to show reasoning: dimmed on a terminal, bracketed in a pipe.
struct Style {
    tty: bool,
}

impl Style {
    fn reasoning_start(&self) -> &'static str {
        if self.tty {
            "\x1b[2m"
        } else {
            "[thinking] "
        }
    }
    fn reasoning_end(&self) -> &'static str {
        if self.tty {
            "\x1b[0m\n"
        } else {
            "\n[/thinking]\n"
        }
    }
}

struct Chat {
    session: Session,
    template: ChatTemplate,
    format: ChatFormat,
    prefix: KvPrefix,
    history: Vec<Value>,
    system: Option<String>,
    think: bool,
    bos_text: String,
    last: Option<(Stats, usize)>,
    /// The `--image` files, encoded once.
    images: Vec<lode::vision::EncodedImage>,
}

pub fn run(a: ChatArgs) -> Result<()> {
    a.common.setup()?;
    if a.batch == 0 || a.n_predict == 0 {
        anyhow::bail!("--batch and --n-predict must be at least 1");
    }
    let mut sampling = a.sampling.config()?;
    let opened = common::open(&a.common.model)?;
    let arch = opened.gguf.architecture()?.to_string();
    let template = ChatTemplate::from_gguf_or_builtin(opened.gguf.metadata())
        .context("the model's chat template")?;
    let mmproj = a.vision.load_mmproj(&opened)?;
    let images = match &mmproj {
        Some(mm) if !a.vision.images.is_empty() => a.vision.encode(mm, &a.vision.images)?,
        _ => Vec::new(),
    };
    let mut model = opened.load_model(a.ctx, &a.common.paging)?;
    if let Some(n) = images.iter().map(|i| i.soft.len()).max() {
        model.reserve_image_tokens(n)?;
    }
    let tok = opened.tokenizer.clone();
    let bos_text = prompt::bos_text(&tok).to_string();
    let mut chat = Chat {
        session: Session::new(model, tok, Sampler::new(sampling.clone())),
        template,
        format: ChatFormat::for_arch(&arch),
        prefix: KvPrefix::new(),
        history: Vec::new(),
        system: a.system.clone(),
        think: a.think,
        bos_text,
        last: None,
        images,
    };
    chat.reset();
    install_sigint();

    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let style = Style {
        tty: std::io::stdout().is_terminal(),
    };
    if interactive {
        eprintln!(
            "lode chat: {} ({} tokens of context). /reset /think on|off /stats /exit; \
             Ctrl-C stops an answer.",
            a.common.model.display(),
            chat.session.model.n_ctx()
        );
    }
    let opts = GenerateOptions {
        max_tokens: a.n_predict,
        batch: a.batch,
        ignore_eos: false,
    };
    let mut line = String::new();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        line.clear();
        // A line ending in `\` continues on the next one (as in llama-cli).
        let mut eof = false;
        loop {
            let start = line.len();
            if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
                eof = true;
                break;
            }
            let trimmed = line[start..].trim_end_matches(['\n', '\r']).len() + start;
            line.truncate(trimmed);
            if !line.ends_with('\\') {
                break;
            }
            line.pop();
            line.push('\n');
        }
        if eof && line.is_empty() {
            break; // end of input
        }
        let text = line.as_str();
        if text.trim().is_empty() {
            continue;
        }
        match text.trim() {
            "/exit" | "/quit" => break,
            "/reset" => {
                chat.reset();
                eprintln!("lode: conversation cleared");
                continue;
            }
            "/think on" => {
                chat.think = true;
                eprintln!("lode: thinking on");
                continue;
            }
            "/think off" => {
                chat.think = false;
                eprintln!("lode: thinking off");
                continue;
            }
            "/stats" => {
                chat.print_stats();
                continue;
            }
            t if t.starts_with('/') => {
                eprintln!("lode: commands: /reset, /think on|off, /stats, /exit");
                continue;
            }
            _ => {}
        }
        if a.sampling.seed.is_none() {
            sampling.seed = fresh_seed();
        }
        INTERRUPTED.store(false, Relaxed);
        if let Err(e) = chat.turn(text, &opts, &sampling, &style) {
            eprintln!("lode: error: {e:#}");
        }
    }
    Ok(())
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

impl Chat {
    fn reset(&mut self) {
        self.history.clear();
        if let Some(s) = &self.system {
            self.history.push(json!({"role": "system", "content": s}));
        }
        self.prefix.clear(self.session.model.as_mut());
        self.last = None;
    }

    fn print_stats(&self) {
        let n_ctx = self.session.model.n_ctx();
        let used = self.session.model.n_past();
        match &self.last {
            Some((s, reused)) => eprintln!(
                "lode: last answer: prompt {} tokens ({reused} cached, {} evaluated, {:.1} tok/s) \
                 | generated {} tokens, {:.1} tok/s | context {used}/{n_ctx} | thinking {}",
                s.prompt_tokens + reused,
                s.prompt_tokens,
                s.prompt_tps(),
                s.gen_tokens,
                s.gen_tps(),
                if self.think { "on" } else { "off" }
            ),
            None => eprintln!("lode: no answer yet | context {used}/{n_ctx}"),
        }
    }

    /// One user turn: render, reuse the cached prefix, stream the answer, extend the history.
    fn turn(
        &mut self,
        user: &str,
        opts: &GenerateOptions,
        sampling: &lode::sample::SamplerConfig,
        style: &Style,
    ) -> Result<()> {
        // The --image files belong to the first user message (image parts, then the text).
        let first = !self.history.iter().any(|m| m["role"] == "user");
        if first && !self.images.is_empty() {
            let mut parts: Vec<serde_json::Value> = self
                .images
                .iter()
                .map(|_| json!({"type": "image"}))
                .collect();
            parts.push(json!({"type": "text", "text": user}));
            self.history.push(json!({"role": "user", "content": parts}));
        } else {
            self.history.push(json!({"role": "user", "content": user}));
        }
        let rendered = self.template.render(&RenderRequest {
            enable_thinking: self.think,
            bos_token: &self.bos_text,
            ..RenderRequest::new(&self.history)
        });
        let prompt = match rendered {
            Ok(p) => p,
            Err(e) => {
                self.history.pop();
                return Err(e.into());
            }
        };
        let tok = self.session.tokenizer.clone();
        let mut tokens = prompt::encode_chat(&tok, &prompt);
        let mm = if self.images.is_empty() {
            None
        } else {
            match lode::vision::MmPrompt::new(&tokens, &tok, self.images.clone()) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.history.pop();
                    return Err(e.into());
                }
            }
        };
        if let Some(p) = &mm {
            tokens = p.tokens.clone();
        }
        let n_ctx = self.session.model.n_ctx();
        if tokens.len() >= n_ctx {
            self.history.pop();
            anyhow::bail!(
                "the conversation is {} tokens and the context holds {n_ctx}: /reset (or raise --ctx)",
                tokens.len()
            );
        }
        let mut reused = self.prefix.prepare(self.session.model.as_mut(), &tokens);
        // never resume inside an image: its soft tokens are fed as one span
        if let Some(p) = &mm {
            if p.positions
                .iter()
                .any(|&(s, l)| reused > s && reused < s + l)
            {
                self.prefix.clear(self.session.model.as_mut());
                reused = 0;
            }
        }
        let spans: Vec<lode::model::EmbdSpan> = mm
            .as_ref()
            .map(|p| p.spans())
            .unwrap_or_default()
            .into_iter()
            .filter(|sp| sp.start >= reused)
            .map(|sp| lode::model::EmbdSpan {
                start: sp.start - reused,
                ..sp
            })
            .collect();
        let mut sampler = Sampler::new(sampling.clone());
        for &t in &tokens[reused.saturating_sub(sampling.penalty_last_n)..reused] {
            sampler.accept(t);
        }
        self.session.sampler = sampler;
        let opts = GenerateOptions {
            max_tokens: opts.max_tokens.min(n_ctx - tokens.len()),
            ..opts.clone()
        };

        let mut decoder = tok.stream_decoder_with_special();
        let mut parser = OutputParser::new(self.format, "");
        let mut content = String::new();
        let mut calls = Vec::new();
        let mut generated = Vec::new();
        let mut in_reasoning = false;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut show = |pieces: Vec<Piece>, out: &mut std::io::StdoutLock<'_>| -> Vec<Piece> {
            for p in &pieces {
                let _ = match p {
                    Piece::Reasoning(t) => {
                        if !in_reasoning {
                            in_reasoning = true;
                            let _ = write!(out, "{}", style.reasoning_start());
                        }
                        write!(out, "{t}")
                    }
                    other => {
                        if in_reasoning {
                            in_reasoning = false;
                            let _ = write!(out, "{}", style.reasoning_end());
                        }
                        match other {
                            Piece::Content(t) => write!(out, "{t}"),
                            Piece::ToolCall(c) => {
                                writeln!(out, "\n[tool call] {}({})", c.name, c.arguments_json)
                            }
                            Piece::Malformed(m) => write!(out, "{}", m.raw),
                            Piece::Reasoning(_) => Ok(()),
                        }
                    }
                };
            }
            let _ = out.flush();
            pieces
        };
        let mut keep = |pieces: Vec<Piece>| {
            for p in pieces {
                match p {
                    Piece::Content(t) => content.push_str(&t),
                    Piece::Malformed(m) => content.push_str(&m.raw),
                    Piece::ToolCall(c) => calls.push(c),
                    Piece::Reasoning(_) => {}
                }
            }
        };
        let result = self
            .session
            .generate_embd(&tokens[reused..], &spans, &opts, |s| {
                generated.extend(s.token);
                if let Some(t) = s.token {
                    if let Some(text) = decoder.push(t) {
                        keep(show(parser.push(&text), &mut out));
                    }
                }
                if INTERRUPTED.load(Relaxed) {
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            });
        let stats = match result {
            Ok(s) => s,
            Err(e) => {
                self.prefix.clear(self.session.model.as_mut());
                self.history.pop();
                return Err(e.into());
            }
        };
        let mut rest = decoder
            .finish()
            .map(|t| parser.push(&t))
            .unwrap_or_default();
        rest.extend(parser.finish());
        keep(show(rest, &mut out));
        if in_reasoning {
            let _ = write!(out, "{}", style.reasoning_end());
        }
        let _ = writeln!(out);
        drop(out);
        self.prefix
            .record(self.session.model.as_ref(), &tokens, &generated);
        match stats.stop {
            StopReason::Callback => eprintln!("lode: [interrupted]"),
            StopReason::MaxTokens => eprintln!("lode: [answer cut at --n-predict]"),
            StopReason::ContextFull => eprintln!("lode: [context full: /reset]"),
            StopReason::Eog => {}
        }
        // The answer goes into the history without its reasoning; the template re-renders it.
        let mut msg = json!({"role": "assistant", "content": content});
        if !calls.is_empty() {
            msg["tool_calls"] = calls
                .iter()
                .map(|c| json!({"type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect();
        }
        self.history.push(msg);
        self.last = Some((stats, reused));
        Ok(())
    }
}
