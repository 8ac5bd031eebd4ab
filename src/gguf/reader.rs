//! Parsing of the GGUF header, metadata and tensor index from a byte slice.
//!
//! Every length and count is checked against the bytes left before anything is allocated, so a
//! hostile file costs at most about its own size in memory, and every failure names the byte
//! offset where the reader stopped.

use std::collections::HashMap;
use std::fmt::Arguments;

use super::value::{type_id, Array, Metadata, Value};
use super::GgmlType;
use crate::{Error, Result};

/// `GGUF` as the first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
/// The default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays deeper than this are rejected (the format allows any depth; no model needs 2).
const MAX_ARRAY_DEPTH: usize = 8;

/// One tensor of the index: where its bytes are, and what they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// Shape in GGUF order: `dims[0]` (ne0) is the contiguous dimension.
    pub dims: Vec<u64>,
    /// Offset of the data from the start of its file's data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
    /// Which file of a split model holds it (0 for single files).
    pub file: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Elements per row (ne0).
    pub fn row_len(&self) -> usize {
        self.dims[0] as usize
    }

    /// Number of rows (the product of every dimension after ne0).
    pub fn n_rows(&self) -> usize {
        self.dims[1..].iter().product::<u64>() as usize
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        // The reader checked that ne0 is a whole number of blocks.
        self.ty.row_bytes(self.dims[0]).unwrap_or(0) as usize
    }
}

/// What the header of one GGUF file says.
#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section in the file.
    pub data_offset: u64,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, what: impl Into<String>) -> Error {
        Error::format(self.pos as u64, what)
    }

    fn take(&mut self, n: usize, what: Arguments<'_>) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "file truncated: {what} needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: Arguments<'_>) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: Arguments<'_>) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: Arguments<'_>) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items that each take at least `min_item_bytes`: refused when the bytes left
    /// could not hold that many, so no allocation is ever sized by an unchecked field.
    fn count(&mut self, what: Arguments<'_>, min_item_bytes: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > fits {
            return Err(Error::format(
                at as u64,
                format!(
                    "{what} is {n}, but the {} bytes left hold at most {fits}",
                    self.remaining()
                ),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: Arguments<'_>) -> Result<String> {
        let at = self.pos;
        let n = self.count(what, 1)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::format(at as u64, format!("{what} is not valid UTF-8 ({e})")))
    }
}

fn scalar(c: &mut Cursor<'_>, ty: u32, key: &str) -> Result<Value> {
    // The description is only formatted when reading fails.
    macro_rules! what {
        () => {
            format_args!("value of `{}`", key)
        };
    }
    Ok(match ty {
        type_id::U8 => Value::U8(c.array::<1>(what!())?[0]),
        type_id::I8 => Value::I8(c.array::<1>(what!())?[0] as i8),
        type_id::U16 => Value::U16(u16::from_le_bytes(c.array(what!())?)),
        type_id::I16 => Value::I16(i16::from_le_bytes(c.array(what!())?)),
        type_id::U32 => Value::U32(u32::from_le_bytes(c.array(what!())?)),
        type_id::I32 => Value::I32(i32::from_le_bytes(c.array(what!())?)),
        type_id::U64 => Value::U64(u64::from_le_bytes(c.array(what!())?)),
        type_id::I64 => Value::I64(i64::from_le_bytes(c.array(what!())?)),
        type_id::F32 => Value::F32(f32::from_le_bytes(c.array(what!())?)),
        type_id::F64 => Value::F64(f64::from_le_bytes(c.array(what!())?)),
        type_id::BOOL => {
            let at = c.pos;
            match c.array::<1>(what!())?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(Error::format(at as u64, format!("`{key}`: bool byte {b}"))),
            }
        }
        type_id::STRING => Value::String(c.string(what!())?),
        type_id::ARRAY => Value::Array(array(c, key, 0)?),
        t => return Err(c.err(format!("`{key}`: unknown value type {t}"))),
    })
}

/// Smallest encoding of one element of a type, for bounding array counts.
fn min_size(ty: u32) -> Option<usize> {
    Some(match ty {
        type_id::U8 | type_id::I8 | type_id::BOOL => 1,
        type_id::U16 | type_id::I16 => 2,
        type_id::U32 | type_id::I32 | type_id::F32 => 4,
        type_id::U64 | type_id::I64 | type_id::F64 => 8,
        type_id::STRING => 8,
        type_id::ARRAY => 12,
        _ => return None,
    })
}

fn array(c: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array> {
    if depth >= MAX_ARRAY_DEPTH {
        return Err(c.err(format!(
            "`{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}"
        )));
    }
    let at = c.pos;
    let ty = c.u32(format_args!("array type of `{key}`"))?;
    let size = min_size(ty)
        .ok_or_else(|| Error::format(at as u64, format!("`{key}`: unknown array type {ty}")))?;
    let n = c.count(format_args!("array length of `{key}`"), size)?;
    macro_rules! fixed {
        ($variant:ident, $t:ty) => {{
            let bytes = c.take(n * size, format_args!("{key}"))?;
            Array::$variant(
                bytes
                    .chunks_exact(size)
                    .map(|b| <$t>::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            )
        }};
    }
    Ok(match ty {
        type_id::U8 => Array::U8(c.take(n, format_args!("{key}"))?.to_vec()),
        type_id::I8 => Array::I8(
            c.take(n, format_args!("{key}"))?
                .iter()
                .map(|&b| b as i8)
                .collect(),
        ),
        type_id::U16 => fixed!(U16, u16),
        type_id::I16 => fixed!(I16, i16),
        type_id::U32 => fixed!(U32, u32),
        type_id::I32 => fixed!(I32, i32),
        type_id::U64 => fixed!(U64, u64),
        type_id::I64 => fixed!(I64, i64),
        type_id::F32 => fixed!(F32, f32),
        type_id::F64 => fixed!(F64, f64),
        type_id::BOOL => {
            let start = c.pos;
            let bytes = c.take(n, format_args!("{key}"))?;
            let mut v = Vec::with_capacity(n);
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    0 => v.push(false),
                    1 => v.push(true),
                    _ => {
                        return Err(Error::format(
                            (start + i) as u64,
                            format!("`{key}`: bool byte {b}"),
                        ))
                    }
                }
            }
            Array::Bool(v)
        }
        type_id::STRING => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.string(format_args!("string in `{key}`"))?);
            }
            Array::String(v)
        }
        _ => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(array(c, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}

/// Parses the header of one GGUF file. `bytes` is the whole file (a mapping of it).
pub fn parse(bytes: &[u8]) -> Result<Header> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let magic = c.array::<4>(format_args!("magic"))?;
    if magic != MAGIC {
        return Err(Error::format(
            0,
            format!("not a GGUF file (magic {magic:02x?}, expected \"GGUF\")"),
        ));
    }
    let version = c.u32(format_args!("version"))?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::format(
                4,
                "GGUF version 1 is not supported (re-convert the model)",
            ))
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(Error::format(4, "big-endian GGUF files are not supported"))
        }
        v => return Err(Error::format(4, format!("unknown GGUF version {v}"))),
    }
    // A tensor info takes at least 8 (name len) + 4 (n_dims) + 8 (one dim) + 4 + 8 bytes.
    let n_tensors = c.count(format_args!("tensor count"), 32)?;
    // A key-value pair takes at least 8 (key len) + 4 (type) + 1 byte.
    let n_kv = c.count(format_args!("metadata count"), 13)?;

    let mut metadata = Metadata::default();
    let mut alignment_at = 0;
    for _ in 0..n_kv {
        let at = c.pos as u64;
        let key = c.string(format_args!("metadata key"))?;
        if key == "general.alignment" {
            alignment_at = at;
        }
        let ty = c.u32(format_args!("type of `{key}`"))?;
        let value = scalar(&mut c, ty, &key)?;
        if !metadata.insert(key.clone(), value) {
            return Err(Error::format(at, format!("duplicate metadata key `{key}`")));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if *a != 0 && a.is_power_of_two() => *a as u64,
        Some(v) => {
            return Err(Error::format(
                alignment_at,
                format!(
                    "`general.alignment` must be a power-of-two UINT32, found {} {v}",
                    v.type_name()
                ),
            ))
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let at = c.pos as u64;
        let name = c.string(format_args!("name of tensor {i}"))?;
        let n_dims = c.u32(format_args!("dimension count of `{name}`"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Error::format(
                at,
                format!("tensor `{name}` has {n_dims} dimensions (1..={MAX_DIMS} allowed)"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for d in 0..n_dims {
            let dim_at = c.pos as u64;
            let ne = c.u64(format_args!("dimension {d} of `{name}`"))?;
            // ggml stores ne as int64; an empty dimension is legal there but never written by
            // a converter, and a zero-element tensor would only hide a broken file.
            if ne == 0 || ne > i64::MAX as u64 {
                return Err(Error::format(
                    dim_at,
                    format!("tensor `{name}` dimension {d} is {ne} (1..=2^63-1 allowed)"),
                ));
            }
            dims.push(ne);
        }
        let ty_at = c.pos as u64;
        let ty_raw = c.u32(format_args!("type of `{name}`"))?;
        let ty = GgmlType::from_u32(ty_raw).ok_or_else(|| {
            Error::format(ty_at, format!("tensor `{name}` has unknown type {ty_raw}"))
        })?;
        let offset = c.u64(format_args!("offset of `{name}`"))?;
        let n_bytes = tensor_bytes(&name, ty, &dims).map_err(|what| Error::format(at, what))?;
        if offset % alignment != 0 {
            return Err(Error::format(
                at,
                format!("tensor `{name}` offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        if names.insert(name.clone(), i).is_some() {
            return Err(Error::format(at, format!("duplicate tensor name `{name}`")));
        }
        tensors.push(TensorInfo {
            name,
            ty,
            dims,
            offset,
            n_bytes,
            file: 0,
        });
    }

    let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
    let data_len = (bytes.len() as u64).saturating_sub(data_offset);
    // Every tensor inside the data section, and no two overlapping.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    let mut prev_end = 0u64;
    let mut prev_name = "";
    for &i in &order {
        let t = &tensors[i];
        let end = t.offset.checked_add(t.n_bytes).filter(|&e| e <= data_len);
        let Some(end) = end else {
            return Err(Error::format(
                data_offset.saturating_add(t.offset),
                format!(
                    "tensor `{}` ({} bytes at data offset {}) runs past the end of the file ({} data bytes)",
                    t.name, t.n_bytes, t.offset, data_len
                ),
            ));
        };
        if t.offset < prev_end {
            return Err(Error::format(
                data_offset + t.offset,
                format!("tensor `{}` overlaps tensor `{prev_name}`", t.name),
            ));
        }
        if t.n_bytes > 0 {
            prev_end = end;
            prev_name = &t.name;
        }
    }

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// Bytes of a tensor of this type and shape, refusing partial blocks and overflow.
pub(crate) fn tensor_bytes(
    name: &str,
    ty: GgmlType,
    dims: &[u64],
) -> std::result::Result<u64, String> {
    let mut n: u64 = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| format!("tensor `{name}` shape {dims:?} overflows"))?;
    }
    let row = ty.row_bytes(dims[0]).ok_or_else(|| {
        format!(
            "tensor `{name}`: row of {} elements is not a whole number of {ty} blocks ({})",
            dims[0],
            ty.block_len()
        )
    })?;
    let rows: u64 = dims[1..].iter().product();
    row.checked_mul(rows)
        .ok_or_else(|| format!("tensor `{name}` shape {dims:?} overflows"))
}
