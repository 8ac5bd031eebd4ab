//! `lode chat`: an interactive terminal chat. Each turn renders the whole conversation with the
//! model's chat template, and only the tokens past what the KV cache already holds are
//! evaluated (`server::prefix::KvPrefix`). Reasoning is shown dimmed and never re-enters the
//! history (the template strips it anyway).
//!
//! On a terminal the prompt is a line editor (rustyline): arrows, history kept in the user's
//! data directory, Ctrl-R search. Keys as in llama-cli and ollama: Ctrl-C during an answer
//! stops the answer; Ctrl-C on a line with text clears it; Ctrl-C on an empty line and Ctrl-D
//! end the chat (with a newline, so the shell prompt starts on its own line). A message goes on
//! over several lines after a trailing `\` (llama-cli) or between `"""` lines (ollama). Piped
//! input is read line by line with the same continuation rules.

use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
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
use super::progress::Spinner;
use super::sampling::{fresh_seed, SamplingArgs};

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: ModelArgs,
    /// System prompt.
    #[arg(long, visible_alias = "system-prompt", value_name = "TEXT")]
    pub system: Option<String>,
    /// Start with thinking on (toggle with /think on|off; models with a thinking mode only).
    #[arg(long)]
    pub think: bool,
    #[command(flatten)]
    pub predict: super::args::Predict<1024>,
    #[command(flatten)]
    pub window: super::args::Window<512>,
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
    /// Whether the template renders `enable_thinking` at all (Gemma 4 does, Gemma 3 not).
    can_think: bool,
    bos_text: String,
    last: Option<(Stats, usize)>,
    /// The `--image` files, encoded once.
    images: Vec<lode::vision::EncodedImage>,
}

pub fn run(a: ChatArgs) -> Result<()> {
    a.common.setup()?;
    if a.window.batch.n == 0 || a.predict.n == 0 {
        anyhow::bail!("--batch and --n-predict must be at least 1");
    }
    let mut sampling = a.sampling.config()?;
    let opened = common::open(&a.common.model)?;
    let arch = opened.gguf.architecture()?.to_string();
    let (template, template_warning) =
        common::chat_template(&opened).context("the model's chat template")?;
    let can_think = has_thinking_mode(&template);
    if a.think && !can_think {
        anyhow::bail!("--think: this model has no thinking mode (its chat template ignores it)");
    }
    let mmproj = a.vision.load_mmproj(&opened)?;
    let images = match &mmproj {
        Some(mm) if !a.vision.images.is_empty() => a.vision.encode(mm, &a.vision.images)?,
        _ => Vec::new(),
    };
    let mut model = opened.load_model(a.window.ctx.n, &a.common.paging)?;
    if let Some(n) = images.iter().map(|i| i.soft.len()).max() {
        model.reserve_image_tokens(n)?;
    }
    if let Some(w) = template_warning {
        eprintln!("{w}"); // the model loaded: the chat is on
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
        can_think,
        bos_text,
        last: None,
        images,
    };
    chat.reset();
    install_sigint();

    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let style = Style {
        tty: std::io::stdout().is_terminal(),
    };
    let mut input = if interactive {
        eprintln!(
            "lode chat: {} ({} tokens of context). /reset /think on|off /stats /exit; a line \
             ending in \\ or text between \"\"\" lines continues; Ctrl-C stops an answer; \
             Ctrl-D or Ctrl-C on an empty line exits.",
            a.common.model.display(),
            chat.session.model.n_ctx()
        );
        Input::editor()?
    } else {
        Input::Pipe(std::io::stdin().lock())
    };
    let opts = GenerateOptions {
        max_tokens: a.predict.n,
        batch: a.window.batch.n,
        ignore_eos: false,
    };
    loop {
        let Some(line) = input.next()? else {
            break; // end of input, Ctrl-D, or Ctrl-C on an empty line
        };
        let text = line.as_str();
        if text.trim().is_empty() {
            continue;
        }
        match text.trim() {
            "/exit" | "/quit" | "/bye" => break,
            "/reset" => {
                chat.reset();
                eprintln!("lode: conversation cleared");
                continue;
            }
            "/think on" if !chat.can_think => {
                eprintln!("lode: this model has no thinking mode (its chat template ignores it)");
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
            match super::common::flag_hint(&e) {
                Some(hint) => eprintln!("lode: error: {e:#}; {hint}"),
                None => eprintln!("lode: error: {e:#}"),
            }
        }
    }
    input.close();
    Ok(())
}

/// Whether the template reacts to `enable_thinking` (a probe conversation renders differently).
fn has_thinking_mode(t: &ChatTemplate) -> bool {
    let msgs = [json!({"role": "user", "content": "x"})];
    let render = |on: bool| {
        t.render(&RenderRequest {
            enable_thinking: on,
            ..RenderRequest::new(&msgs)
        })
        .ok()
    };
    render(true) != render(false)
}

/// Whether `buf` (the lines typed so far, joined by newlines) goes on: a trailing `\` (as in
/// llama-cli), or an opening `"""` not yet closed (as in ollama).
fn continues(buf: &str) -> bool {
    if buf.ends_with('\\') {
        return true;
    }
    let t = buf.trim_start();
    t.starts_with(r#"""""#) && t.matches(r#"""""#).count() % 2 == 1
}

/// The message of a finished `buf`: `\`-newline becomes a newline, `"""` quotes are removed.
fn message(buf: &str) -> String {
    let text = buf.replace("\\\n", "\n");
    let t = text.trim();
    match t
        .strip_prefix(r#"""""#)
        .and_then(|r| r.strip_suffix(r#"""""#))
    {
        Some(inner) => inner.trim_matches('\n').to_string(),
        None => text,
    }
}

/// Where messages come from: the line editor on a terminal, or lines of piped input.
enum Input {
    Editor(Box<Editor>),
    Pipe(std::io::StdinLock<'static>),
}

/// The line editor and its history file.
struct Editor {
    rl: rustyline::Editor<EditHelper, rustyline::history::FileHistory>,
    history: Option<PathBuf>,
}

/// Multi-line input for the editor: Enter on an unfinished message (see [`continues`]) inserts
/// a newline instead of sending it.
struct EditHelper;

impl rustyline::completion::Completer for EditHelper {
    type Candidate = String;
}
impl rustyline::hint::Hinter for EditHelper {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for EditHelper {}
impl rustyline::validate::Validator for EditHelper {
    fn validate(
        &self,
        ctx: &mut rustyline::validate::ValidationContext,
    ) -> rustyline::Result<rustyline::validate::ValidationResult> {
        use rustyline::validate::ValidationResult;
        Ok(if continues(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}
impl rustyline::Helper for EditHelper {}

/// Ctrl-C in the editor: clears a line with text, ends the chat on an empty one.
struct CtrlC;

impl rustyline::ConditionalEventHandler for CtrlC {
    fn handle(
        &self,
        _: &rustyline::Event,
        _: rustyline::RepeatCount,
        _: bool,
        ctx: &rustyline::EventContext,
    ) -> Option<rustyline::Cmd> {
        if ctx.line().is_empty() {
            Some(rustyline::Cmd::Interrupt)
        } else {
            Some(rustyline::Cmd::Kill(rustyline::Movement::WholeBuffer))
        }
    }
}

/// `$XDG_DATA_HOME/lode/chat_history` (default `~/.local/share/lode/chat_history`), or
/// `~/Library/Application Support/lode/chat_history` on macOS; None without a home.
fn history_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let base = if cfg!(target_os = "macos") {
        home?.join("Library/Application Support")
    } else {
        match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => home?.join(".local/share"),
        }
    };
    Some(base.join("lode").join("chat_history"))
}

impl Input {
    fn editor() -> Result<Input> {
        use rustyline::{Config, EventHandler, KeyCode, KeyEvent, Modifiers};
        let config = Config::builder()
            .auto_add_history(true)
            .max_history_size(1000)
            .context("history size")?
            .build();
        let mut rl = rustyline::Editor::with_config(config).context("starting the line editor")?;
        rl.set_helper(Some(EditHelper));
        rl.bind_sequence(
            KeyEvent(KeyCode::Char('C'), Modifiers::CTRL),
            EventHandler::Conditional(Box::new(CtrlC)),
        );
        let history = history_path();
        if let Some(p) = &history {
            // a missing file is a first run; an unreadable one only costs the old history
            let _ = rl.load_history(p);
        }
        Ok(Input::Editor(Box::new(Editor { rl, history })))
    }

    /// The next message, or None at the end (end of input, Ctrl-D, Ctrl-C on an empty line).
    fn next(&mut self) -> Result<Option<String>> {
        match self {
            Input::Editor(ed) => {
                use rustyline::error::ReadlineError;
                match ed.rl.readline("> ") {
                    Ok(buf) => Ok(Some(message(&buf))),
                    Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
                        // the editor leaves the cursor after the prompt: end that line
                        outln!()?;
                        Ok(None)
                    }
                    Err(e) => Err(e).context("reading the terminal"),
                }
            }
            Input::Pipe(stdin) => {
                let mut buf = String::new();
                loop {
                    let start = buf.len();
                    if stdin.read_line(&mut buf).context("reading stdin")? == 0 {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        break;
                    }
                    let end = buf[start..].trim_end_matches(['\n', '\r']).len() + start;
                    buf.truncate(end);
                    if !continues(&buf) {
                        break;
                    }
                    buf.push('\n');
                }
                Ok(Some(message(&buf)))
            }
        }
    }

    /// Saves the editor's history.
    fn close(&mut self) {
        let Input::Editor(ed) = self else { return };
        let Some(p) = &ed.history else { return };
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = ed.rl.save_history(p) {
            eprintln!(
                "lode: warning: could not save the chat history to {}: {e}",
                p.display()
            );
        }
    }
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
        // Until the first token (prompt processing can take seconds on a big model).
        let spinner = Spinner::new("");
        let result = self
            .session
            .generate_embd(&tokens[reused..], &spans, &opts, |s| {
                spinner.finish();
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
        spinner.finish();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_mode_is_read_from_the_template() {
        assert!(has_thinking_mode(&ChatTemplate::builtin_gemma4()));
        assert!(!has_thinking_mode(&ChatTemplate::builtin_gemma3()));
    }

    #[test]
    fn continuation_rules() {
        assert!(continues("a\\"));
        assert!(continues(r#""""a"#));
        assert!(continues("\"\"\"\nline"));
        assert!(!continues("\"\"\"\nline\n\"\"\""));
        assert!(!continues("plain"));
        assert_eq!(message("Q: x\\\nA:"), "Q: x\nA:");
        assert_eq!(message("\"\"\"\nline 1\nline 2\n\"\"\""), "line 1\nline 2");
        assert_eq!(message("\"\"\"one\"\"\""), "one");
    }
}
