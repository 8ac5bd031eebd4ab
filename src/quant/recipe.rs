//! Which type llama.cpp's `llama-quantize` gives each tensor for a target file type
//! (`q4_k_m`, ...), so `lode quantize` writes the same mix as llama.cpp.
//!
//! Ported from llama.cpp `src/llama-quant.cpp` (`tensor_allows_quantization`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`), restricted to the targets lode
//! offers and without an importance matrix. Checked in tests/quant.rs against the types
//! llama-quantize chose for the gemma4-tiny fixture files. Known gaps: the LLaMA-2-70B
//! `attn_v` bump (needs the model size class) and the user overrides of llama-quantize
//! (`--tensor-type`, `--output-tensor-type`, `--pure`).

use crate::gguf::GgmlType;
use crate::{Error, Result};
use std::str::FromStr;

/// A target file type (llama.cpp `LLAMA_FTYPE_MOSTLY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Q4_0,
    Q8_0,
    Q4KM,
    Q5KM,
    Q6K,
}

impl Target {
    pub const ALL: &'static [Target] = &[
        Target::Q4_0,
        Target::Q8_0,
        Target::Q4KM,
        Target::Q5KM,
        Target::Q6K,
    ];

    /// The name llama-quantize accepts (lower case, `q4_k_m`), the type most tensors get
    /// (llama.cpp `llama_ftype_get_default_type`) and the `general.file_type` value
    /// llama.cpp writes (`enum llama_ftype`).
    fn facts(self) -> (&'static str, GgmlType, u32) {
        match self {
            Target::Q4_0 => ("q4_0", GgmlType::Q4_0, 2),
            Target::Q8_0 => ("q8_0", GgmlType::Q8_0, 7),
            Target::Q4KM => ("q4_k_m", GgmlType::Q4K, 15),
            Target::Q5KM => ("q5_k_m", GgmlType::Q5K, 17),
            Target::Q6K => ("q6_k", GgmlType::Q6K, 18),
        }
    }

    /// The type most tensors get (llama.cpp `llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        self.facts().1
    }

    /// The name llama-quantize accepts (lower case): `q4_k_m`.
    pub fn name(self) -> &'static str {
        self.facts().0
    }

    /// `general.file_type` value llama.cpp writes for this target (`enum llama_ftype`).
    pub fn file_type(self) -> u32 {
        self.facts().2
    }
}

crate::gguf::types::display_name!(Target);

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target> {
        Target::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                Error::Input(format!(
                    "unknown quantization target `{s}` (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// One tensor as the recipe sees it: GGUF name, shape (`ne`, ne[0] first) and current type.
#[derive(Clone, Copy, Debug)]
pub struct TensorDesc<'a> {
    pub name: &'a str,
    pub ne: &'a [u64],
    pub ty: GgmlType,
}

/// The model facts the rules depend on (from GGUF metadata).
#[derive(Clone, Debug)]
pub struct ModelDesc {
    /// `general.architecture`
    pub arch: String,
    /// `<arch>.block_count`
    pub n_layer: usize,
    /// `<arch>.expert_count` (0 for dense models)
    pub n_expert: usize,
}

/// llama-quant's broad tensor categories (`tensor_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    use Category::*;
    // the first part the name contains decides (`attn_qkv` before `attn_q`, ...)
    const BY_PART: &[(&str, Category)] = &[
        ("attn_qkv.weight", AttnQkv),
        ("attn_kv_b.weight", AttnKvB),
        ("attn_v.weight", AttnV),
        ("attn_k.weight", AttnK),
        ("attn_q.weight", AttnQ),
        ("attn_output.weight", AttnOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ];
    match name {
        "output.weight" => Output,
        "token_embd.weight" | "per_layer_token_embd.weight" => TokenEmbd,
        _ => BY_PART
            .iter()
            .find(|(part, _)| name.contains(part))
            .map_or(Other, |&(_, c)| c),
    }
}

fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// `blk.N.` prefix -> N.
fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    rest[..rest.find('.')?].parse().ok()
}

/// llama.cpp's loader order (`weight_name_comparer`): by layer (non-layer tensors first),
/// then by name. The attn_v counter walks tensors in this order.
fn loader_order(a: &str, b: &str) -> std::cmp::Ordering {
    let la = layer_of(a).map_or(-1, |l| l as i64);
    let lb = layer_of(b).map_or(-1, |l| l as i64);
    la.cmp(&lb).then_with(|| a.cmp(b))
}

/// "More bits" layers of the K_M mixes: the first and last eighth, and every third layer
/// in between (llama-quant `use_more_bits`).
pub fn use_more_bits(i_layer: usize, n_layer: usize) -> bool {
    let (i, n) = (i_layer as i64, n_layer as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Does llama-quantize touch this tensor at all? (`tensor_allows_quantization`.) Tensors it
/// skips keep their type: 1-D tensors, norms, the MoE router, a few small special cases.
pub fn allows_quantization(t: &TensorDesc, arch: &str) -> bool {
    let name = t.name;
    let n_dims = t.ne.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    if n_dims < 2 || !name.ends_with("weight") {
        return false;
    }
    const SKIP: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight", // the router: never quantized
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
    ];
    if SKIP.iter().any(|s| name.contains(s)) {
        return false;
    }
    let _ = arch; // BERT's position/token-type embeddings are named the same for every arch
    name != "position_embd.weight" && name != "token_types.weight"
}

/// The 32-element type llama-quant substitutes when a row does not split into 256-blocks
/// (`tensor_type_fallback`); F16 if even 32 does not divide it.
pub fn fallback(ty: GgmlType, ne0: u64) -> Result<GgmlType> {
    use GgmlType::*;
    if ne0 % ty.block_len() as u64 == 0 {
        return Ok(ty);
    }
    let alt = match ty {
        IQ1S | IQ1M | IQ2XXS | IQ2XS | IQ2S | IQ3XXS | IQ3S | IQ4XS => IQ4NL,
        Q2K | Q3K | TQ1_0 | TQ2_0 => Q4_0,
        Q4K => Q5_0,
        Q5K => Q5_1,
        Q6K => Q8_0,
        _ => {
            return Err(Error::UnsupportedQuant(format!(
                "no fallback for {ty} with rows of {ne0}"
            )))
        }
    };
    Ok(if ne0 % alt.block_len() as u64 == 0 {
        alt
    } else {
        F16
    })
}

/// The per-tensor type chooser for one model and one target.
#[derive(Clone, Debug)]
pub struct Recipe {
    target: Target,
    model: ModelDesc,
    /// false when the model has a separate `output.weight`
    tied_embeddings: bool,
    /// attn_v-like tensor names in loader order: position = llama-quant's `i_attention_wv`
    attn_v: Vec<String>,
}

impl Recipe {
    /// `tensor_names` must list every tensor of the model (the attn_v rule counts them).
    pub fn new<'a>(
        target: Target,
        model: ModelDesc,
        tensor_names: impl IntoIterator<Item = &'a str>,
    ) -> Recipe {
        let mut tied_embeddings = true;
        let mut attn_v = Vec::new();
        for name in tensor_names {
            let c = category(name);
            if c == Category::Output {
                tied_embeddings = false;
            }
            if is_attn_v_like(c) {
                attn_v.push(name.to_string());
            }
        }
        attn_v.sort_by(|a, b| loader_order(a, b));
        Recipe {
            target,
            model,
            tied_embeddings,
            attn_v,
        }
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// The type llama-quantize would write for `t`.
    pub fn tensor_type(&self, t: &TensorDesc) -> Result<GgmlType> {
        if !allows_quantization(t, &self.model.arch) {
            return Ok(t.ty);
        }
        let ty = self.mix_type(t)?;
        fallback(ty, t.ne.first().copied().unwrap_or(0))
    }

    /// `llama_tensor_get_type_impl` for the targets in [`Target`].
    fn mix_type(&self, t: &TensorDesc) -> Result<GgmlType> {
        use GgmlType as G;
        use Target::*;
        let ftype = self.target;
        let mut new_type = ftype.default_type();
        let cat = category(t.name);
        let falcon = self.model.arch == "falcon";
        let n_expert = self.model.n_expert;
        let ne0 = t.ne.first().copied().unwrap_or(0);

        if cat == Category::Output || (self.tied_embeddings && cat == Category::TokenEmbd) {
            // The output matrix (or the tied embedding that doubles as it) gets more bits.
            if falcon || ne0 % new_type.block_len() as u64 != 0 {
                new_type = G::Q8_0;
            } else if new_type != G::Q8_0 {
                new_type = G::Q6K;
            }
        } else if cat == Category::TokenEmbd {
            // untied token embeddings: no change for these targets
        } else if is_attn_v_like(cat) {
            let i = self.attn_v.iter().position(|n| n == t.name).unwrap_or(0);
            if matches!(ftype, Q4KM | Q5KM) && use_more_bits(i, self.attn_v.len()) {
                new_type = G::Q6K;
            }
            if n_expert == 8 {
                // llama.cpp: "for the 8-expert model, bumping this to Q8_0 trades just ~128MB"
                new_type = G::Q8_0;
            }
        } else if cat == Category::AttnK {
            if n_expert == 8 {
                new_type = G::Q8_0;
            }
        } else if cat == Category::FfnDown {
            let n_layer = self.model.n_layer;
            let i_layer = layer_of(t.name).filter(|&l| l < n_layer).ok_or_else(|| {
                Error::BadConfig(format!(
                    "tensor `{}`: no layer index below block_count {n_layer}",
                    t.name
                ))
            })?;
            match ftype {
                Q4KM if falcon => {
                    new_type = if i_layer < n_layer / 16 {
                        G::Q6K
                    } else if use_more_bits(i_layer, n_layer) {
                        G::Q5K
                    } else {
                        G::Q4K
                    };
                }
                Q4KM | Q5KM if use_more_bits(i_layer, n_layer) => new_type = G::Q6K,
                _ => {}
            }
        } else if cat == Category::AttnOutput {
            if !falcon && n_expert == 8 && ftype == Q4KM {
                new_type = G::Q5K;
            }
        } else if cat == Category::AttnQkv {
            match ftype {
                Q4KM => new_type = G::Q5K,
                Q5KM => new_type = G::Q6K,
                _ => {}
            }
        }
        Ok(new_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers_of_gemma4_26b() {
        // docs/gemma4.md §2.3: ffn_down more-bits layers for 30 layers, and 13 of 25 attn_v
        let down: Vec<usize> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(down, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
        assert_eq!((0..25).filter(|&i| use_more_bits(i, 25)).count(), 13);
    }

    #[test]
    fn fallbacks_for_32_multiples() {
        assert_eq!(fallback(GgmlType::Q4K, 704).unwrap(), GgmlType::Q5_0);
        assert_eq!(fallback(GgmlType::Q5K, 2112).unwrap(), GgmlType::Q5_1);
        assert_eq!(fallback(GgmlType::Q6K, 704).unwrap(), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q3K, 640).unwrap(), GgmlType::Q4_0);
        assert_eq!(fallback(GgmlType::IQ4XS, 640).unwrap(), GgmlType::IQ4NL);
        assert_eq!(fallback(GgmlType::Q4K, 100).unwrap(), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q4K, 2816).unwrap(), GgmlType::Q4K);
    }

    #[test]
    fn target_names() {
        assert_eq!("Q4_K_M".parse::<Target>().unwrap(), Target::Q4KM);
        assert!("q3_k_xl".parse::<Target>().is_err());
    }

    #[test]
    fn router_and_norms_are_kept() {
        let m = ModelDesc {
            arch: "gemma4".into(),
            n_layer: 30,
            n_expert: 128,
        };
        let r = Recipe::new(Target::Q4KM, m, ["blk.0.ffn_gate_inp.weight"]);
        for (name, ne) in [
            ("blk.0.ffn_gate_inp.weight", &[2816u64, 128][..]),
            ("blk.0.attn_norm.weight", &[2816][..]),
            ("blk.0.ffn_gate_inp.scale", &[2816, 1][..]),
        ] {
            let t = TensorDesc {
                name,
                ne,
                ty: GgmlType::F32,
            };
            assert_eq!(r.tensor_type(&t).unwrap(), GgmlType::F32, "{name}");
        }
    }
}
