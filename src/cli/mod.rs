//! Command-line interface: clap structs for what the user typed, one file per subcommand.
//! Output to stdout goes through `out!`/`outln!` (print.rs: a closed pipe exits 0 quietly).

#[macro_use]
mod print;
mod inspect;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

mod args;
mod bench;
mod chat;
mod common;
mod logits;
mod paging_sim;
mod perplexity;
mod progress;
mod quantize;
mod run;
mod sampling;
mod serve;
mod synth;
mod tokenize;

#[derive(Parser)]
#[command(
    name = "lode",
    version,
    about = "Run quantized GGUF language models on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (streams to stdout, timings to stderr).
    Run(run::RunArgs),
    /// Show how the model's tokenizer splits a text.
    Tokenize(tokenize::TokenizeArgs),
    /// Write the logits of every position of a token sequence to a .npy file.
    Logits(logits::LogitsArgs),
    /// Measure perplexity on a text file, as llama-perplexity does.
    Perplexity(perplexity::PerplexityArgs),
    /// Show what a GGUF file holds: architecture, sizes, tensors, parameters per token.
    Inspect(inspect::Args),
    /// Quantize an F32/F16/BF16 GGUF with llama.cpp's per-tensor type mix
    Quantize(quantize::QuantizeArgs),
    /// Write a synthetic model (real names, shapes and type mix; random valid weights)
    Synth(synth::SynthArgs),
    /// Measure prompt and generation speed, peak memory and the bandwidth bound (llama-bench style).
    Bench(bench::BenchArgs),
    /// Chat with the model in the terminal (streamed answers, history, /reset /think /stats).
    Chat(chat::ChatArgs),
    /// Serve the model over an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Replay a --trace-experts file through the expert-cache policies at several sizes
    PagingSim(paging_sim::PagingSimArgs),
    /// Decode speed against the expert-cache budget, as a table and a plot (SVG or PNG)
    PagingSweep(paging_sim::PagingSweepArgs),
}

/// `lode --version`: the version, the commit and profile it was built from, and the kernel set
/// this CPU gets (what a bug report needs).
fn version() -> String {
    let isa = match lode::kernels::KernelTable::from_env() {
        Ok(t) => t.isa().name().to_string(),
        Err(e) => format!("? ({e})"),
    };
    format!(
        "{} (commit {}, {} build, {} {}, ISA {isa})",
        env!("CARGO_PKG_VERSION"),
        lode::BUILD_COMMIT,
        lode::BUILD_PROFILE,
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

/// llama.cpp's multi-letter short flags, which clap cannot declare: `-ngl` would read as
/// `-n gl`.
fn llama_cpp_spellings(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| {
        if a == "-ngl" {
            OsString::from("--n-gpu-layers")
        } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("-ngl=")) {
            OsString::from(format!("--n-gpu-layers={v}"))
        } else {
            a
        }
    })
    .collect()
}

pub fn main() -> ExitCode {
    let args = llama_cpp_spellings(std::env::args_os());
    // clap keeps a &'static str; this string lives as long as the process anyway
    let version: &'static str = Box::leak(version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches_from(args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result: anyhow::Result<()> = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Logits(a) => logits::run(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Serve(a) => serve::run(a),
        Command::PagingSim(a) => paging_sim::run(a),
        Command::PagingSweep(a) => paging_sim::sweep(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `lode ... | head`: the reader has what it wanted.
        Err(e) if print::is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain on one line, like `{:#}`, but without repeating a cause that a message
            // already quotes (lode::Error::Io prints its io::Error and also names it as source).
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.ends_with(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            if let Some(hint) = common::flag_hint(&e) {
                msg.push_str("; ");
                msg.push_str(hint);
            }
            eprintln!("lode: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
