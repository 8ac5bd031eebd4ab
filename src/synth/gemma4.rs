//! The Gemma 4 text model as GGUF metadata and tensors (docs/gemma4.md §2.1, §2.2), for the real
//! 26B-A4B sizes and for the tiny public fixture's sizes.

use super::{ModelSpec, Recipe};
use crate::gguf::{Array, Metadata, TensorDesc, Value};
use crate::Result;

/// The hyperparameters that decide a Gemma 4 MoE file's metadata and tensor shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma4Shape {
    pub name: String,
    /// `context_length`.
    pub n_ctx_train: u32,
    /// `embedding_length`.
    pub n_embd: u64,
    /// `block_count`.
    pub n_layer: usize,
    /// `attention.sliding_window_pattern`: true = sliding layer.
    pub sliding: Vec<bool>,
    /// `attention.head_count`.
    pub n_head: u64,
    /// `attention.head_count_kv` on sliding / global layers.
    pub n_head_kv_swa: u64,
    pub n_head_kv: u64,
    /// `attention.key_length_swa` (= value) / `attention.key_length` (= value).
    pub head_dim_swa: u64,
    pub head_dim: u64,
    /// `attention.sliding_window`.
    pub sliding_window: u32,
    /// `feed_forward_length` (dense MLP).
    pub n_ff: u64,
    /// `expert_count`, `expert_used_count`, `expert_feed_forward_length`.
    pub n_expert: u64,
    pub n_expert_used: u64,
    pub n_ff_exp: u64,
    /// Vocabulary size (`token_embd` rows, tokenizer arrays).
    pub n_vocab: u64,
}

impl Gemma4Shape {
    /// google/gemma-4-26B-A4B(-it), text model (docs/gemma4.md §1.1).
    pub fn b26_a4b() -> Gemma4Shape {
        Gemma4Shape {
            name: "gemma-4-26B-A4B-it (synthetic)".into(),
            n_ctx_train: 262_144,
            n_embd: 2816,
            n_layer: 30,
            sliding: (0..30).map(|i| (i + 1) % 6 != 0).collect(),
            n_head: 16,
            n_head_kv_swa: 8,
            n_head_kv: 2,
            head_dim_swa: 256,
            head_dim: 512,
            sliding_window: 1024,
            n_ff: 2112,
            n_expert: 128,
            n_expert_used: 8,
            n_ff_exp: 704,
            n_vocab: 262_144,
        }
    }

    /// The sizes of tests/fixtures/gemma4-tiny (its README: hidden 256, 5 layers [S,S,G,S,G],
    /// 8 experts top-2, vocabulary 512).
    pub fn tiny() -> Gemma4Shape {
        Gemma4Shape {
            name: "gemma4-tiny (synthetic)".into(),
            n_ctx_train: 4096,
            n_embd: 256,
            n_layer: 5,
            sliding: vec![true, true, false, true, false],
            n_head: 4,
            n_head_kv_swa: 2,
            n_head_kv: 1,
            head_dim_swa: 64,
            head_dim: 128,
            sliding_window: 8,
            n_ff: 128,
            n_expert: 8,
            n_expert_used: 2,
            n_ff_exp: 32,
            n_vocab: 512,
        }
    }

    /// Metadata as llama.cpp's converter writes it for `gemma4` (docs/gemma4.md §2.1).
    ///
    /// The tokenizer is a placeholder of the right size: `<pad>`, `<eos>`, `<bos>`, `<unk>`,
    /// `<mask>` at ids 0..5, the 256 byte tokens `<0x00>`..`<0xFF>`, then `<unusedN>` fillers;
    /// no merges; scores all −1000 (as in real files). The chat template is a short
    /// Gemma-4-style placeholder, not Google's.
    pub fn metadata(&self, recipe: Recipe) -> Metadata {
        let a = |k: &str| format!("gemma4.{k}");
        let u32v = |v: u64| Value::U32(v as u32);
        let kv_heads: Vec<i32> = self
            .sliding
            .iter()
            .map(|&s| if s { self.n_head_kv_swa } else { self.n_head_kv } as i32)
            .collect();
        let n_vocab = self.n_vocab as usize;
        let specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"];
        let mut tokens: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
        let mut types: Vec<i32> = vec![3; specials.len()]; // CONTROL
        for b in 0..=255u32 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6); // BYTE
        }
        while tokens.len() < n_vocab {
            tokens.push(format!("<unused{}>", tokens.len()));
            types.push(5); // UNUSED
        }
        tokens.truncate(n_vocab);
        types.truncate(n_vocab);
        let mut entries: Vec<(String, Value)> = vec![
            (
                "general.architecture".into(),
                Value::String("gemma4".into()),
            ),
            ("general.type".into(), Value::String("model".into())),
            ("general.name".into(), Value::String(self.name.clone())),
            ("general.file_type".into(), Value::U32(recipe.file_type())),
            ("general.quantization_version".into(), Value::U32(2)),
            (a("context_length"), Value::U32(self.n_ctx_train)),
            (a("embedding_length"), u32v(self.n_embd)),
            (a("block_count"), u32v(self.n_layer as u64)),
            (a("feed_forward_length"), u32v(self.n_ff)),
            (a("expert_feed_forward_length"), u32v(self.n_ff_exp)),
            (a("expert_count"), u32v(self.n_expert)),
            (a("expert_used_count"), u32v(self.n_expert_used)),
            (a("attention.head_count"), u32v(self.n_head)),
            (
                a("attention.head_count_kv"),
                Value::Array(Array::I32(kv_heads)),
            ),
            (a("attention.key_length"), u32v(self.head_dim)),
            (a("attention.value_length"), u32v(self.head_dim)),
            (a("attention.key_length_swa"), u32v(self.head_dim_swa)),
            (a("attention.value_length_swa"), u32v(self.head_dim_swa)),
            (
                a("attention.sliding_window"),
                Value::U32(self.sliding_window),
            ),
            (
                a("attention.sliding_window_pattern"),
                Value::Array(Array::Bool(self.sliding.clone())),
            ),
            (a("attention.shared_kv_layers"), Value::U32(0)),
            (a("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
            (a("embedding_length_per_layer_input"), Value::U32(0)),
            (a("rope.freq_base"), Value::F32(1e6)),
            (a("rope.freq_base_swa"), Value::F32(1e4)),
            (a("rope.dimension_count"), u32v(self.head_dim)),
            (a("rope.dimension_count_swa"), u32v(self.head_dim_swa)),
            (a("final_logit_softcapping"), Value::F32(30.0)),
        ];
        entries.extend(super::vocab::gemma4_keys(tokens, types, vec![]));
        let mut md = Metadata::default();
        for (k, v) in entries {
            md.insert(k, v);
        }
        md
    }

    /// Tensor names and shapes (ne0 first) in the order llama.cpp writes them: the global
    /// tensors, then each layer's tensors sorted by name.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<u64>)> {
        let d = self.n_embd;
        let mut out: Vec<(String, Vec<u64>)> = vec![
            ("output_norm.weight".into(), vec![d]),
            // Proportional RoPE on global layers: one factor per rotated pair.
            ("rope_freqs.weight".into(), vec![self.head_dim / 2]),
            ("token_embd.weight".into(), vec![d, self.n_vocab]),
        ];
        for il in 0..self.n_layer {
            let sliding = self.sliding[il];
            let (hd, kv) = if sliding {
                (self.head_dim_swa, self.n_head_kv_swa)
            } else {
                (self.head_dim, self.n_head_kv)
            };
            let q = self.n_head * hd;
            let (e, fe) = (self.n_expert, self.n_ff_exp);
            let mut layer: Vec<(&str, Vec<u64>)> = vec![
                ("attn_norm.weight", vec![d]),
                ("attn_q.weight", vec![d, q]),
                ("attn_k.weight", vec![d, kv * hd]),
                ("attn_q_norm.weight", vec![hd]),
                ("attn_k_norm.weight", vec![hd]),
                ("attn_output.weight", vec![q, d]),
                ("post_attention_norm.weight", vec![d]),
                ("ffn_norm.weight", vec![d]),
                ("ffn_gate.weight", vec![d, self.n_ff]),
                ("ffn_up.weight", vec![d, self.n_ff]),
                ("ffn_down.weight", vec![self.n_ff, d]),
                ("post_ffw_norm_1.weight", vec![d]),
                ("pre_ffw_norm_2.weight", vec![d]),
                ("post_ffw_norm_2.weight", vec![d]),
                ("post_ffw_norm.weight", vec![d]),
                ("ffn_gate_inp.weight", vec![d, e]),
                ("ffn_gate_inp.scale", vec![d]),
                ("ffn_gate_up_exps.weight", vec![d, 2 * fe, e]),
                ("ffn_down_exps.weight", vec![fe, d, e]),
                ("ffn_down_exps.scale", vec![e]),
                ("layer_output_scale.weight", vec![1]),
            ];
            // Global layers share K and V (attention_k_eq_v): no attn_v.
            if sliding {
                layer.push(("attn_v.weight", vec![d, kv * hd]));
            }
            layer.sort_by(|a, b| a.0.cmp(b.0));
            out.extend(layer.into_iter().map(|(n, s)| (format!("blk.{il}.{n}"), s)));
        }
        out
    }

    /// The whole file: metadata and every tensor with its type under `recipe`.
    pub fn spec(&self, recipe: Recipe) -> Result<ModelSpec> {
        let shapes = self.tensor_shapes();
        let types = recipe.types(self.n_layer, self.n_expert as usize, &shapes)?;
        let tensors = shapes
            .iter()
            .zip(types)
            .map(|((name, dims), ty)| TensorDesc::new(name.clone(), ty, dims))
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelSpec {
            metadata: self.metadata(recipe),
            tensors,
        })
    }
}
