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
