//! The library's one error type. Every variant names the key, tensor or offset it is about,
//! so the binary can print a single clear line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Malformed GGUF bytes: what was wrong and where.
    #[error("gguf: {what} at byte {offset}")]
    Format { offset: u64, what: String },
    #[error("gguf: missing metadata key `{0}`")]
    MissingKey(String),
    #[error("gguf: metadata key `{key}` is {found}, expected {expected}")]
    KeyType {
        key: String,
        expected: String,
        found: String,
    },
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}`: expected shape {expected:?}, file has {found:?}")]
    Shape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("unsupported tensor type {0}")]
    UnsupportedQuant(String),
    #[error("unsupported architecture `{0}`")]
    UnsupportedArch(String),
    #[error("invalid model config: {0}")]
    BadConfig(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Bad user input that is not a file format problem (prompt too long, token out of range).
    #[error("{0}")]
    Input(String),
    /// More tokens than the context holds: `what` says how many.
    #[error("{what}, but the context holds {n_ctx} (the model was trained with {n_ctx_train})")]
    ContextFull {
        what: String,
        n_ctx: usize,
        n_ctx_train: usize,
    },
    /// A prompt that does not fit and cannot be shortened, because the tokens it must keep
    /// from its start leave no room.
    #[error(
        "the prompt is {n_prompt} tokens and cannot be truncated to {target}: keeping its first \
         {n_keep} leaves no room"
    )]
    KeepTooLong {
        n_prompt: usize,
        target: usize,
        n_keep: usize,
    },
    /// A context shorter than the operation needs (perplexity scores half of each chunk).
    #[error("a context of {n_ctx} tokens is too small (at least {min})")]
    ContextTooSmall { n_ctx: usize, min: usize },
    /// A context longer than lode allocates for.
    #[error("a context of {n_ctx} tokens is out of range (at most {max})")]
    ContextTooLong { n_ctx: usize, max: usize },
    /// The KV cache at full context does not fit the memory this process may still use
    /// (`need_bytes` is `u64::MAX` when its size overflows).
    #[error("{}", kv_too_large(*.n_ctx, *.kv_type, *.n_seq, *.need_bytes, *.avail_bytes, .avail_source))]
    KvTooLarge {
        n_ctx: usize,
        kv_type: crate::model::KvType,
        n_seq: usize,
        need_bytes: u64,
        avail_bytes: u64,
        avail_source: String,
    },
    /// A KV cache element type this model's head size cannot use.
    #[error(
        "a {kv_type} KV cache needs head dims that are multiples of 32 (this model has {head_dim})"
    )]
    KvTypeUnfit {
        kv_type: crate::model::KvType,
        head_dim: usize,
    },
    #[error("kernels: {0}")]
    Kernel(String),
    /// A chat template that does not compile, fails to render, or calls `raise_exception`.
    #[error("chat template: {0}")]
    Template(String),
    /// An image that cannot be read, decoded or used (vision input).
    #[error("image: {0}")]
    Image(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn kv_too_large(
    n_ctx: usize,
    ty: crate::model::KvType,
    n_seq: usize,
    need: u64,
    avail: u64,
    source: &str,
) -> String {
    if need == u64::MAX {
        return format!("a context of {n_ctx} tokens: the {ty} KV cache size overflows");
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let seqs = if n_seq > 1 {
        format!(" ({n_seq} sequences)")
    } else {
        String::new()
    };
    format!(
        "a context of {n_ctx} tokens needs a {ty} KV cache of {:.2} GiB at full context{seqs}, \
         but only {:.2} GiB are available ({source})",
        gib(need),
        gib(avail)
    )
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn format(offset: u64, what: impl Into<String>) -> Self {
        Error::Format {
            offset,
            what: what.into(),
        }
    }
}
