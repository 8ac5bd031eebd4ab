//! Writes a synthetic model: the preset's metadata and tensor list (the spec), optionally cut
//! to the first N layers, a stand-in tokenizer if the spec has none, and every tensor filled
//! by `weights::Plan` and streamed to the GGUF writer one tensor at a time.

use super::vocab::tokenizer_metadata;
use super::weights::{Plan, SynthOptions};
use crate::gguf::{GgufWriter, Metadata, TensorDesc as OutTensor, Value};
use crate::quant::TensorDesc;
use crate::{Error, Result};
use std::path::Path;

/// The models `lode synth` imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Gemma4_26bA4b,
    Gemma4Tiny,
}

spelled!(Preset { Gemma4_26bA4b = "gemma4-26b-a4b", Gemma4Tiny = "gemma4-tiny" } else |s| {
    Error::Input(format!(
        "unknown preset `{s}` (expected gemma4-26b-a4b or gemma4-tiny)"
    ))
});

/// What `synthesize` wrote.
#[derive(Clone, Debug)]
pub struct SynthReport {
    pub n_layer: usize,
    pub n_tensors: usize,
    /// Bytes of tensor data.
    pub bytes: u64,
}

/// Progress callback: (tensors done, tensor count, name of the tensor just written).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    rest[..rest.find('.')?].parse().ok()
}

/// Keeps layers `0..n`: drops later `blk.*` tensors, sets `block_count`, and cuts every
/// per-layer array (`head_count_kv`, `sliding_window_pattern`, …) to `n` entries. Kept
/// tensors keep the full model's types (the real file's mix for those layers).
pub fn truncate_layers(
    md: &Metadata,
    tensors: &[OutTensor],
    n: usize,
) -> Result<(Metadata, Vec<OutTensor>)> {
    let arch = md.architecture()?.to_string();
    let key = format!("{arch}.block_count");
    let n_layer = md.usize(&key)?;
    if n == 0 || n > n_layer {
        return Err(Error::Input(format!(
            "--layers {n}: the model has {n_layer} layers (choose 1..={n_layer})"
        )));
    }
    let mut out = Metadata::default();
    for (k, v) in md.iter() {
        let v = match v {
            _ if k == key => Value::U32(n as u32),
            Value::Array(a) if k.starts_with(&format!("{arch}.")) && a.len() == n_layer => {
                Value::Array(truncate_array(a, n))
            }
            v => v.clone(),
        };
        out.insert(k.to_string(), v);
    }
    let tensors = tensors
        .iter()
        .filter(|t| layer_of(&t.name).map_or(true, |l| l < n))
        .cloned()
        .collect();
    Ok((out, tensors))
}

fn truncate_array(a: &crate::gguf::Array, n: usize) -> crate::gguf::Array {
    use crate::gguf::Array as A;
    macro_rules! first_n {
        ($($variant:ident),*) => {
            match a {
                $(A::$variant(v) => A::$variant(v[..n].to_vec()),)*
            }
        };
    }
    first_n!(U8, I8, U16, I16, U32, I32, U64, I64, F32, F64, Bool, String, Array)
}

/// Writes a synthetic `preset` model (first `layers` layers, default all) to `out`.
pub fn synthesize(
    preset: Preset,
    layers: Option<usize>,
    out: &Path,
    opts: SynthOptions,
    progress: Option<Progress>,
) -> Result<SynthReport> {
    let (md, tensors) = preset_spec(preset)?;
    write_model(&md, &tensors, layers, out, opts, progress)
}

/// Writes a synthetic model for any spec (metadata + tensor list with types).
pub fn write_model(
    md: &Metadata,
    tensors: &[OutTensor],
    layers: Option<usize>,
    out: &Path,
    opts: SynthOptions,
    mut progress: Option<Progress>,
) -> Result<SynthReport> {
    let (mut md, tensors) = match layers {
        Some(n) => truncate_layers(md, tensors, n)?,
        None => (md.clone(), tensors.to_vec()),
    };
    if !md.contains("tokenizer.ggml.tokens") {
        let n_vocab = tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| Error::MissingTensor("token_embd.weight".into()))?;
        if n_vocab < 1024 {
            return Err(Error::Input(format!(
                "synth: the stand-in vocabulary needs at least 1024 tokens, token_embd has {n_vocab}"
            )));
        }
        for (k, v) in tokenizer_metadata(n_vocab as usize) {
            md.insert(k, v);
        }
    }
    let n_layer = md.usize(&format!("{}.block_count", md.architecture()?))?;
    let descs: Vec<TensorDesc> = tensors
        .iter()
        .map(|t| TensorDesc {
            name: &t.name,
            ne: &t.dims,
            ty: t.ty,
        })
        .collect();
    let plan = Plan::new(&md, &descs, opts)?;
    let mut writer = GgufWriter::create(out, &md, &tensors, crate::gguf::DEFAULT_ALIGNMENT)?;
    let mut bytes = 0u64;
    for (i, (t, d)) in tensors.iter().zip(&descs).enumerate() {
        let mut buf = vec![0u8; t.n_bytes as usize];
        plan.fill(d, &mut buf)?;
        writer.write_tensor(&t.name, &buf)?;
        bytes += buf.len() as u64;
        if let Some(p) = progress.as_mut() {
            p(i + 1, tensors.len(), &t.name);
        }
    }
    writer.finish()?;
    Ok(SynthReport {
        n_layer,
        n_tensors: tensors.len(),
        bytes,
    })
}

/// PENDING: the preset specs (metadata + tensor list) come from the gguf helper's spec module.
fn preset_spec(preset: Preset) -> Result<(Metadata, Vec<OutTensor>)> {
    let shape = match preset {
        Preset::Gemma4_26bA4b => super::gemma4::Gemma4Shape::b26_a4b(),
        Preset::Gemma4Tiny => super::gemma4::Gemma4Shape::tiny(),
    };
    let spec = shape.spec(super::Recipe::Q4KM)?;
    // The spec's tokenizer is a shape-only placeholder (no merges); leave the tokenizer keys out
    // so `write_model` puts in the runnable stand-in vocabulary of `vocab.rs`.
    // The tiny vocabulary (512) is too small for the stand-in, so it keeps the spec's
    // placeholder tokens with one merge that never produces a vocabulary entry (the tokenizer
    // wants a non-empty list): every character falls back to byte tokens.
    let keep_tokenizer = matches!(preset, Preset::Gemma4Tiny);
    let mut md = Metadata::default();
    for (k, v) in spec.metadata.iter() {
        if k == "tokenizer.ggml.merges" {
            continue;
        }
        if keep_tokenizer || !k.starts_with("tokenizer.") {
            md.insert(k.to_string(), v.clone());
        }
    }
    if keep_tokenizer {
        md.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(crate::gguf::Array::String(vec!["▁ ▁".into()])),
        );
    }
    Ok((md, spec.tensors))
}
