//! `lode quantize`: a float GGUF in, a quantized GGUF out, with llama-quantize's per-tensor
//! type mix (`recipe`) and its reference quantizers (bit-identical on the gemma4-tiny
//! fixtures, see tests/quant.rs).
//!
//! Tensors are streamed: one tensor's output (and at most `CHUNK_ELEMS` floats of its input)
//! is in memory at a time; the input stays mapped. The writer writes through `crate::output`
//! (a temporary file renamed over `out` at the end, so a failed run never leaves a
//! half-written model; an output that is one of the input files is refused).

use super::recipe::{ModelDesc, Recipe, Target, TensorDesc};
use super::{dequantize_row, is_quantized, quantize_row};
use crate::gguf::{
    GgmlType, Gguf, GgufWriter, Metadata, TensorDesc as OutTensor, TensorInfo, Value,
};
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Input floats converted per step (64 Mi elements = 256 MiB of f32).
const CHUNK_ELEMS: usize = 64 << 20;

/// What `quantize_model` did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub n_tensors: usize,
    /// Tensors whose type changed.
    pub n_quantized: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Output tensor count per type name.
    pub type_counts: BTreeMap<String, usize>,
}

/// Progress callback: (tensors done, tensor count, name of the tensor just written).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// The output types `quantize_model` would write for `input`, in file order.
pub fn plan_types(input: &Gguf, target: Target) -> Result<Vec<GgmlType>> {
    if let Some(t) = input.tensors().iter().find(|t| is_quantized(t.ty)) {
        return Err(Error::Input(format!(
            "input is already quantized (tensor `{}` is {}); lode quantize needs an F32, F16 or BF16 model",
            t.name, t.ty
        )));
    }
    let md = input.metadata();
    let arch = md.architecture()?.to_string();
    let model = ModelDesc {
        n_layer: md.usize(&format!("{arch}.block_count"))?,
        n_expert: md.usize_opt(&format!("{arch}.expert_count"))?.unwrap_or(0),
        arch,
    };
    let recipe = Recipe::new(
        target,
        model,
        input.tensors().iter().map(|t| t.name.as_str()),
    );
    input
        .tensors()
        .iter()
        .map(|t| {
            recipe.tensor_type(&TensorDesc {
                name: &t.name,
                ne: &t.dims,
                ty: t.ty,
            })
        })
        .collect()
}

/// The input's metadata with `general.quantization_version = 2` and `general.file_type` set
/// (appended last, as llama-quantize does).
pub fn quantized_metadata(md: &Metadata, target: Target) -> Metadata {
    const QV: &str = "general.quantization_version";
    const FT: &str = "general.file_type";
    let mut out = Metadata::default();
    for (k, v) in md.iter() {
        if k != QV && k != FT {
            out.insert(k.to_string(), v.clone());
        }
    }
    out.insert(QV.to_string(), Value::U32(2));
    out.insert(FT.to_string(), Value::U32(target.file_type()));
    out
}

/// Quantizes `input` to `target` and writes the result to `out`.
pub fn quantize_model(
    input: &Gguf,
    out: &Path,
    target: Target,
    mut progress: Option<Progress>,
) -> Result<Report> {
    let types = plan_types(input, target)?;
    let metadata = quantized_metadata(input.metadata(), target);
    let outs: Vec<OutTensor> = input
        .tensors()
        .iter()
        .zip(&types)
        .map(|(t, &ty)| OutTensor::new(t.name.clone(), ty, &t.dims))
        .collect::<Result<_>>()?;
    let inputs: Vec<&Path> = input.files().iter().map(|f| f.path.as_path()).collect();
    let out = crate::output::Output::create(out, &inputs)?;
    let mut writer = GgufWriter::new(out, &metadata, &outs, input.alignment())?;
    let mut report = Report {
        n_tensors: outs.len(),
        ..Report::default()
    };
    for (i, (t, o)) in input.tensors().iter().zip(&outs).enumerate() {
        let src = input.tensor_data(t);
        report.bytes_in += src.len() as u64;
        let bytes = convert(t, src, o.ty)?;
        report.bytes_out += bytes.len() as u64;
        if o.ty != t.ty {
            report.n_quantized += 1;
        }
        *report
            .type_counts
            .entry(o.ty.name().to_string())
            .or_default() += 1;
        writer.write_tensor(&t.name, &bytes)?;
        if let Some(p) = progress.as_mut() {
            p(i + 1, outs.len(), &t.name);
        }
    }
    writer.finish()?;
    Ok(report)
}

/// One tensor's bytes as `to`: copied if the type is unchanged, else decoded to f32 and
/// re-encoded in chunks of whole rows (rows in parallel).
pub fn convert(t: &TensorInfo, src: &[u8], to: GgmlType) -> Result<Vec<u8>> {
    if to == t.ty {
        return Ok(src.to_vec());
    }
    let ne0 = t.row_len();
    let n_rows = t.n_rows();
    let (rb_in, rb_out) = (row_bytes(t.ty, ne0, &t.name)?, row_bytes(to, ne0, &t.name)?);
    let mut out = vec![0u8; rb_out * n_rows];
    let rows_per_chunk = (CHUNK_ELEMS / ne0.max(1)).max(1);
    for (src, dst) in src
        .chunks(rb_in * rows_per_chunk)
        .zip(out.chunks_mut(rb_out * rows_per_chunk))
    {
        src.par_chunks(rb_in)
            .zip(dst.par_chunks_mut(rb_out))
            .try_for_each_init(
                || vec![0.0f32; ne0],
                |x, (s, d)| {
                    dequantize_row(t.ty, s, x)?;
                    quantize_row(to, x, d)
                },
            )
            .map_err(|e| Error::Input(format!("tensor `{}`: {e}", t.name)))?;
    }
    Ok(out)
}

fn row_bytes(ty: GgmlType, ne0: usize, name: &str) -> Result<usize> {
    ty.row_bytes(ne0 as u64).map(|b| b as usize).ok_or_else(|| {
        Error::Input(format!(
            "tensor `{name}`: rows of {ne0} are not whole {ty} blocks"
        ))
    })
}
