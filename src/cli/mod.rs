//! Command-line interface: clap structs for what the user typed, one file per subcommand.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod quantize;
mod synth;

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
    /// Quantize an F32/F16/BF16 GGUF with llama.cpp's per-tensor type mix
    Quantize(quantize::QuantizeArgs),
    /// Write a synthetic model (real names, shapes and type mix; random valid weights)
    Synth(synth::SynthArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Quantize(a) => quantize::run(a),
        Command::Synth(a) => synth::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lode: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
