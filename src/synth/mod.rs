//! Model-shaped GGUF files without a trained model: the metadata and the full tensor list of a
//! real architecture (names, shapes, per-tensor quantization types), written sparse (every
//! tensor a hole, so a 17 GB Gemma 4 26B-A4B-shaped file costs a few MB of disk) or, later,
//! filled with random weights (`lode synth`).
//!
//! Used to test what depends only on shapes and sizes (inspect, parameter accounting, the expert
//! pager's byte ranges) at full scale without downloading a model.

pub mod blocks;
pub mod gemma4;
mod recipe;
pub mod vocab;
pub mod weights;
pub mod write;

use std::path::Path;

use crate::gguf::{GgufWriter, Metadata, TensorDesc, DEFAULT_ALIGNMENT};
use crate::Result;

pub use recipe::Recipe;
pub use write::{synthesize, write_model, Preset, SynthReport};

/// Everything a GGUF header holds: metadata and tensor descriptors, in file order.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub metadata: Metadata,
    pub tensors: Vec<TensorDesc>,
}

impl ModelSpec {
    /// Writes the header and leaves every tensor as a hole (reads as zeros).
    pub fn write_sparse(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = GgufWriter::create(path, &self.metadata, &self.tensors, DEFAULT_ALIGNMENT)?;
        w.skip_rest()?;
        w.finish()
    }

    /// Total bytes of tensor data.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorDesc> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
