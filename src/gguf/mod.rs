//! GGUF container: header, metadata, tensor index, one read-only mapping per file.
//! Knows nothing of layers, experts or Gemma.

pub mod types;

pub use types::GgmlType;
