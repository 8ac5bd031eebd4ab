//! Edited copies of a model for malformed-model tests (drop a tensor, reshape one, change a
//! key), written with lode's own `GgufWriter`.

use std::path::Path;

use lode::gguf::{GgmlType, Gguf, GgufWriter, Metadata, TensorDesc, Value, DEFAULT_ALIGNMENT};

/// One tensor to write.
pub struct Tensor {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<u64>,
    pub data: Vec<u8>,
}

/// Writes `kv` and `tensors` as a GGUF v3 file (alignment 32). The writer checks that each
/// tensor's bytes match its type and shape, so an edit must keep them consistent.
pub fn write(path: &Path, kv: &[(String, Value)], tensors: &[Tensor]) {
    let mut md = Metadata::default();
    for (k, v) in kv {
        md.insert(k.clone(), v.clone());
    }
    let descs: Vec<TensorDesc> = tensors
        .iter()
        .map(|t| TensorDesc::new(t.name.clone(), t.ty, &t.dims).unwrap())
        .collect();
    let mut w = GgufWriter::create(path, &md, &descs, DEFAULT_ALIGNMENT).unwrap();
    for t in tensors {
        w.write_tensor(&t.name, &t.data).unwrap();
    }
    w.finish().unwrap();
}

/// The model's non-tokenizer metadata and every tensor, for editing.
pub fn copy(g: &Gguf) -> (Vec<(String, Value)>, Vec<Tensor>) {
    let kv = g
        .metadata()
        .iter()
        .filter(|(k, _)| !k.starts_with("tokenizer."))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let tensors = g
        .tensors()
        .iter()
        .map(|t| Tensor {
            name: t.name.clone(),
            ty: t.ty,
            dims: t.dims.clone(),
            data: g.tensor_data(t).to_vec(),
        })
        .collect();
    (kv, tensors)
}
