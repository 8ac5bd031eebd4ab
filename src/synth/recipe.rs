//! Which GGML type each tensor gets: llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp)
//! for the recipes lode synthesizes; the rules themselves live in `quant::recipe`.

use crate::gguf::GgmlType;
use crate::quant::recipe::{self as quant, ModelDesc, Target, TensorDesc};
use crate::Result;

/// A quantization recipe, named like `llama-quantize`'s presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// Every tensor F32 (`general.file_type` 0, ALL_F32).
    F32,
    /// llama.cpp's default Q4_K_M (`general.file_type` 15, MOSTLY_Q4_K_M).
    Q4KM,
}

impl Recipe {
    /// The `general.file_type` value llama-quantize writes.
    pub fn file_type(self) -> u32 {
        match self {
            Recipe::F32 => 0,
            Recipe::Q4KM => 15,
        }
    }
}

impl Recipe {
    /// The type this recipe gives each tensor of a model, in order. Q4_K_M is
    /// [`crate::quant::recipe`], the same llama-quant rules `lode quantize` uses.
    pub(crate) fn types(
        self,
        n_layer: usize,
        n_expert: usize,
        shapes: &[(String, Vec<u64>)],
    ) -> Result<Vec<GgmlType>> {
        if self == Recipe::F32 {
            return Ok(vec![GgmlType::F32; shapes.len()]);
        }
        let model = ModelDesc {
            arch: "gemma4".into(),
            n_layer,
            n_expert,
        };
        let recipe =
            quant::Recipe::new(Target::Q4KM, model, shapes.iter().map(|(n, _)| n.as_str()));
        shapes
            .iter()
            .map(|(name, ne)| {
                recipe.tensor_type(&TensorDesc {
                    name,
                    ne,
                    ty: GgmlType::F32,
                })
            })
            .collect()
    }
}
