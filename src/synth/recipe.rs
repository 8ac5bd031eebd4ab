//! Which GGML type each tensor gets: llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp)
//! for the recipes lode synthesizes, restricted to the rules that touch Gemma 4 tensors.

use crate::gguf::GgmlType;

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

/// llama-quant's `use_more_bits(i, n)`: the first and last eighth of the layers, and every third
/// layer in between, get more bits.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// What the recipe needs to know about one tensor.
pub(crate) struct TensorRole<'a> {
    /// Name without the `blk.N.` prefix, e.g. `attn_v.weight`.
    pub stem: &'a str,
    pub dims: &'a [u64],
    /// Layer index (for ffn_down's layer rule).
    pub layer: Option<usize>,
    pub n_layer: usize,
    /// Index of this tensor among all `attn_v` tensors, and their count (llama-quant counts
    /// attn_v tensors, not layers: Gemma 4 global layers have none).
    pub i_attn_v: usize,
    pub n_attn_v: usize,
    pub n_expert: usize,
}

/// The k-quant fallbacks llama-quant applies when ne0 is not a multiple of 256
/// (`llama_tensor_get_type`, "fallback" switch).
fn fallback(ty: GgmlType, ne0: u64) -> GgmlType {
    if ty.block_len() != 256 || ne0 % 256 == 0 {
        return ty;
    }
    match ty {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        GgmlType::Q2K | GgmlType::Q3K => GgmlType::Q4_0,
        _ => GgmlType::IQ4NL,
    }
}

impl Recipe {
    pub(crate) fn type_of(self, t: &TensorRole<'_>) -> GgmlType {
        if self == Recipe::F32 {
            return GgmlType::F32;
        }
        // llama-quant quantizes only 2-D+ weights, never the MoE router (`ffn_gate_inp`), and
        // leaves norms, scales and rope_freqs at F32.
        if t.dims.len() < 2 || t.stem.starts_with("ffn_gate_inp") || !t.stem.ends_with(".weight") {
            return GgmlType::F32;
        }
        let ne0 = t.dims[0];
        let ty = match t.stem {
            // Tied embedding = output head: Q6_K (Q8_0 when rows are not whole K-blocks).
            "token_embd.weight" | "output.weight" => {
                return if ne0 % 256 == 0 {
                    GgmlType::Q6K
                } else {
                    GgmlType::Q8_0
                };
            }
            "attn_v.weight" if t.n_expert == 8 => GgmlType::Q8_0,
            "attn_v.weight" if use_more_bits(t.i_attn_v, t.n_attn_v) => GgmlType::Q6K,
            "attn_k.weight" if t.n_expert == 8 => GgmlType::Q8_0,
            "attn_output.weight" if t.n_expert == 8 => GgmlType::Q5K,
            s if s.starts_with("ffn_down") && use_more_bits(t.layer.unwrap_or(0), t.n_layer) => {
                GgmlType::Q6K
            }
            _ => GgmlType::Q4K,
        };
        fallback(ty, ne0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers_of_gemma4_26b() {
        // gemma4.md §2.3: ffn_down in layers {0,1,2,5,8,...,29}; 13 of the 25 attn_v tensors.
        let layers: Vec<usize> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(layers, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
        assert_eq!((0..25).filter(|&i| use_more_bits(i, 25)).count(), 13);
    }
}
