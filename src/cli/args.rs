//! Flags that several subcommands share, each declared once. The const parameter is the
//! command's default, so `run` and `chat` can differ in it without a second copy of the flag.

use clap::Args;

/// A `usize` flag `-S/--LONG` (alias `--ALIAS`) in a struct of its own, default `N` (not
/// shown when 0, which means "the model's").
macro_rules! count_flag {
    ($(#[$doc:meta])* $name:ident: $id:literal, $short:literal, $long:literal, $alias:literal,
     $help:literal) => {
        $(#[$doc])*
        #[derive(Args, Debug, Clone, Copy)]
        pub struct $name<const N: usize> {
            #[doc = $help]
            #[arg(id = $id, short = $short, long = $long, visible_alias = $alias,
                  value_name = "N", default_value_t = N, hide_default_value = N == 0)]
            pub n: usize,
        }
    };
}

count_flag!(
    /// `-n/--n-predict`: how many tokens to generate.
    Predict: "n_predict", 'n', "n-predict", "predict",
    "Tokens to generate, at most (per answer in chat, per repetition in paging-sweep)."
);
count_flag!(
    /// `-c/--ctx`: the context window in tokens.
    Ctx: "ctx", 'c', "ctx", "ctx-size",
    "Context size in tokens, prompt + output (0 or unset: the model's, at most 4096)."
);
count_flag!(
    /// `-b/--batch`: prompt tokens per forward pass.
    Batch: "batch", 'b', "batch", "batch-size",
    "Prompt tokens per forward pass during prompt processing (each pass runs in internal \
     batches of at most 256)."
);

/// The context window and the prompt batch of a generating command (`run`, `chat`, `serve`):
/// the context defaults to the model's (at most 4096), the batch to `BATCH`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Window<const BATCH: usize> {
    #[command(flatten)]
    pub ctx: Ctx<0>,
    #[command(flatten)]
    pub batch: Batch<BATCH>,
}
