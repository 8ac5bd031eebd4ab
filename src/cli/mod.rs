//! Command-line interface: clap structs for what the user typed, one file per subcommand.

mod inspect;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Show what a GGUF file holds: architecture, sizes, tensors, parameters per token.
    Inspect(inspect::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Inspect(a) => inspect::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lode: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
