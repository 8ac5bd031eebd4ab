//! `lode tokenize`: text to token ids with the model's own tokenizer (no weights loaded).

use anyhow::Result;
use clap::Args;

use super::common;

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Path to the GGUF model file.
    #[arg(short = 'm', long, value_name = "MODEL")]
    pub model: std::path::PathBuf,
    /// The text to tokenize.
    #[arg(value_name = "TEXT")]
    pub text: std::ffi::OsString,
    /// Print a JSON array of ids instead of `id<TAB>piece` lines.
    #[arg(long)]
    pub json: bool,
    /// Do not prepend BOS (by default it is added when the model adds one).
    #[arg(long)]
    pub no_bos: bool,
    /// Treat special-token text like `<start_of_turn>` as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
}

pub fn run(a: TokenizeArgs) -> Result<()> {
    let opened = common::open(&a.model)?;
    let tok = &opened.tokenizer;
    let text = common::utf8_arg(&a.text, "TEXT")?;
    let ids = tok.encode(&text, !a.no_bos, !a.no_parse_special);
    if a.json {
        outln!("{}", serde_json::to_string(&ids)?)?;
    } else {
        for &id in &ids {
            // The piece as llama-tokenize shows it: special tokens rendered, `▁` as a space.
            outln!("{id}\t{}", tok.decode(&[id], true))?;
        }
    }
    Ok(())
}
