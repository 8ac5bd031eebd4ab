//! A small GGUF v3 writer for malformed-model tests: copy a model's metadata and tensors,
//! with edits (drop a tensor, reshape one, change a key).

use lode::gguf::{Array, GgmlType, Gguf, Value};

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(*x as u8),
        Value::String(s) => put_str(b, s),
        Value::Array(a) => {
            b.extend_from_slice(&a.elem_type_id().to_le_bytes());
            b.extend_from_slice(&(a.len() as u64).to_le_bytes());
            match a {
                Array::I32(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
                Array::U32(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
                Array::F32(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
                Array::Bool(v) => v.iter().for_each(|&x| b.push(x as u8)),
                Array::String(v) => v.iter().for_each(|s| put_str(b, s)),
                other => panic!("writer: array of {} not supported", other.elem_type_name()),
            }
        }
        other => panic!("writer: {} not supported", other.type_name()),
    }
}

/// One tensor to write.
pub struct Tensor {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<u64>,
    pub data: Vec<u8>,
}

/// Serialises `kv` and `tensors` as a GGUF v3 file (alignment 32).
pub fn write(kv: &[(String, Value)], tensors: &[Tensor]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut b, k);
        b.extend_from_slice(&v.type_id().to_le_bytes());
        put_value(&mut b, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut b, &t.name);
        b.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&(t.ty as u32).to_le_bytes());
        b.extend_from_slice(&offset.to_le_bytes());
        offset += (t.data.len() as u64).div_ceil(32) * 32;
    }
    while b.len() % 32 != 0 {
        b.push(0);
    }
    for t in tensors {
        b.extend_from_slice(&t.data);
        while b.len() % 32 != 0 {
            b.push(0);
        }
    }
    b
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
