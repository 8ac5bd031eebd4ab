//! Metadata access with the architecture prefix (`gemma4.block_count`), shared by the model
//! files. Each architecture's `Config::from_gguf` is the only place that names its keys.

use crate::gguf::Metadata;
use crate::Result;

/// Keys of one architecture: `keys.usize("block_count")` reads `<arch>.block_count`.
pub struct ArchKeys<'a> {
    pub md: &'a Metadata,
    pub arch: &'a str,
}

impl<'a> ArchKeys<'a> {
    pub fn new(md: &'a Metadata, arch: &'a str) -> Self {
        ArchKeys { md, arch }
    }

    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    pub fn usize(&self, k: &str) -> Result<usize> {
        self.md.usize(&self.key(k))
    }

    pub fn usize_opt(&self, k: &str) -> Result<Option<usize>> {
        self.md.usize_opt(&self.key(k))
    }

    pub fn f32(&self, k: &str) -> Result<f32> {
        self.md.f32(&self.key(k))
    }

    pub fn f32_opt(&self, k: &str) -> Result<Option<f32>> {
        self.md.f32_opt(&self.key(k))
    }

    pub fn str_opt(&self, k: &str) -> Result<Option<&'a str>> {
        self.md.str_opt(&self.key(k))
    }

    /// A per-layer count (scalar or array); missing → error naming the key.
    pub fn usize_per_layer(&self, k: &str, n_layer: usize) -> Result<Vec<usize>> {
        self.md
            .usize_per_layer(&self.key(k), n_layer)?
            .ok_or_else(|| crate::Error::MissingKey(self.key(k)))
    }

    pub fn bool_per_layer(&self, k: &str, n_layer: usize) -> Result<Option<Vec<bool>>> {
        self.md.bool_per_layer(&self.key(k), n_layer)
    }

    pub fn is_array(&self, k: &str) -> bool {
        matches!(
            self.md.get(&self.key(k)),
            Some(crate::gguf::Value::Array(_))
        )
    }
}
