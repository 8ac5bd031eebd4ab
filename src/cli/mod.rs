//! Command-line interface: clap structs for what the user typed, one file per subcommand.
//! Output to stdout goes through `out!`/`outln!` (print.rs: a closed pipe exits 0 quietly).

#[macro_use]
mod print;
mod inspect;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod chat;
mod common;
mod logits;
mod paging_sim;
mod perplexity;
mod quantize;
mod run;
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
    /// Decode speed against the expert-cache budget, as a table and an SVG plot
    PagingSweep(paging_sim::PagingSweepArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("lode: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
