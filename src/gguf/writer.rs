//! A streaming GGUF v3 writer: header first, then tensor data in declared order, written
//! through [`crate::output::Output`] (a temporary file beside the target renamed over it by
//! [`GgufWriter::finish`], or in place for a device, FIFO or open descriptor).
//!
//! Tensors can be skipped ([`GgufWriter::skip_tensor`]), which leaves a hole: the file is sparse
//! and a 16 GB model-shaped file costs only its header on disk (used by `lode synth` and tests).
//! An in-place output is a stream, so a skipped tensor is written as zeros there.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::reader::{tensor_bytes, MAX_DIMS};
use super::value::{Array, Metadata, Value};
use super::{GgmlType, DEFAULT_ALIGNMENT, MAGIC};
use crate::output::Output;
use crate::{Error, Result};

/// One tensor to be written: name, type and shape in GGUF order (ne0 first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<u64>,
    /// Bytes of the data, from type and shape.
    pub n_bytes: u64,
}

impl TensorDesc {
    /// Checks the shape as the reader will (1..=4 non-zero dims, whole blocks per row, no
    /// overflow) and computes the byte size.
    pub fn new(name: impl Into<String>, ty: GgmlType, dims: &[u64]) -> Result<TensorDesc> {
        let name = name.into();
        if dims.is_empty() || dims.len() > MAX_DIMS || dims.contains(&0) {
            return Err(Error::Input(format!(
                "tensor `{name}`: shape {dims:?} must have 1..={MAX_DIMS} non-zero dimensions"
            )));
        }
        let n_bytes = tensor_bytes(&name, ty, dims).map_err(Error::Input)?;
        Ok(TensorDesc {
            name,
            ty,
            dims: dims.to_vec(),
            n_bytes,
        })
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// Writes one GGUF file. Dropping it without [`finish`](GgufWriter::finish) deletes the
/// temporary file, so a failed or interrupted write never leaves a half-written model at `path`.
#[derive(Debug)]
pub struct GgufWriter {
    out: Option<BufWriter<Output>>,
    /// Sequential only (no seek, no `set_len`): holes are written as zeros.
    stream: bool,
    tensors: Vec<TensorDesc>,
    /// Offset of each tensor from the start of the data section.
    offsets: Vec<u64>,
    alignment: u64,
    data_start: u64,
    /// Absolute position the next write goes to.
    pos: u64,
    /// Index of the next tensor to write or skip.
    next: usize,
}

impl GgufWriter {
    /// Writes the header of a GGUF v3 file for `path` (through [`Output`]: a temporary file in
    /// the same directory, or in place). `alignment` must be a power of two; when it is not the
    /// default 32 and `metadata` has no `general.alignment`, that key is added (a present key
    /// must agree).
    pub fn create(
        path: impl AsRef<Path>,
        metadata: &Metadata,
        tensors: &[TensorDesc],
        alignment: u64,
    ) -> Result<GgufWriter> {
        GgufWriter::new(Output::create(path, &[])?, metadata, tensors, alignment)
    }

    /// [`GgufWriter::create`] into an output already opened (e.g. checked against the inputs).
    pub fn new(
        out: Output,
        metadata: &Metadata,
        tensors: &[TensorDesc],
        alignment: u64,
    ) -> Result<GgufWriter> {
        if alignment == 0 || !alignment.is_power_of_two() || alignment > u32::MAX as u64 {
            return Err(Error::Input(format!(
                "gguf writer: alignment {alignment} is not a power of two"
            )));
        }
        let mut md = metadata.clone();
        match md.get("general.alignment") {
            Some(Value::U32(a)) if *a as u64 == alignment => {}
            None if alignment == DEFAULT_ALIGNMENT => {}
            None => {
                md.insert("general.alignment".into(), Value::U32(alignment as u32));
            }
            Some(v) => {
                return Err(Error::Input(format!(
                    "gguf writer: metadata says general.alignment = {v}, writing with {alignment}"
                )))
            }
        }
        let mut seen = std::collections::HashSet::new();
        for t in tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(Error::Input(format!(
                    "gguf writer: tensor `{}` given twice",
                    t.name
                )));
            }
            let check = TensorDesc::new(t.name.clone(), t.ty, &t.dims)?;
            if check.n_bytes != t.n_bytes {
                return Err(Error::Input(format!(
                    "gguf writer: tensor `{}` says {} bytes, its type and shape need {}",
                    t.name, t.n_bytes, check.n_bytes
                )));
            }
        }

        let mut offsets = Vec::with_capacity(tensors.len());
        let mut end = 0u64;
        for t in tensors {
            offsets.push(end);
            end = (end + t.n_bytes).div_ceil(alignment) * alignment;
        }

        let mut header = Vec::new();
        header.extend(MAGIC);
        header.extend(3u32.to_le_bytes());
        header.extend((tensors.len() as u64).to_le_bytes());
        header.extend((md.len() as u64).to_le_bytes());
        for (key, value) in md.iter() {
            put_str(&mut header, key);
            header.extend(value.type_id().to_le_bytes());
            put_value(&mut header, value);
        }
        for (t, &off) in tensors.iter().zip(&offsets) {
            put_str(&mut header, &t.name);
            header.extend((t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                header.extend(d.to_le_bytes());
            }
            header.extend((t.ty as u32).to_le_bytes());
            header.extend(off.to_le_bytes());
        }
        let data_start = (header.len() as u64).div_ceil(alignment) * alignment;
        header.resize(data_start as usize, 0);

        let mut w = GgufWriter {
            stream: out.in_place(),
            out: Some(BufWriter::with_capacity(1 << 20, out)),
            tensors: tensors.to_vec(),
            offsets,
            alignment,
            data_start,
            pos: 0,
            next: 0,
        };
        w.write_raw(&header)?;
        Ok(w)
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(self.path(), e)
    }

    fn zeros(&mut self, mut n: u64) -> Result<()> {
        let block = vec![0u8; n.min(1 << 20) as usize];
        while n > 0 {
            let k = n.min(block.len() as u64) as usize;
            self.write_raw(&block[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("writer used after finish");
        let r = out.write_all(bytes);
        r.map_err(|e| self.io(e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Checks that `name` is the next tensor and moves to its start (zero padding or a seek).
    fn advance_to(&mut self, name: &str) -> Result<u64> {
        let Some(t) = self.tensors.get(self.next) else {
            return Err(Error::Input(format!(
                "gguf writer: tensor `{name}` after all {} declared tensors",
                self.tensors.len()
            )));
        };
        if t.name != name {
            return Err(Error::Input(format!(
                "gguf writer: got tensor `{name}`, expected `{}` (tensors are written in declared order)",
                t.name
            )));
        }
        let n_bytes = t.n_bytes;
        let start = self.data_start + self.offsets[self.next];
        self.zeros(start - self.pos)?;
        Ok(n_bytes)
    }

    /// Writes the data of the next declared tensor, which must be `name`, of exactly its size.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let n = self.advance_to(name)?;
        if bytes.len() as u64 != n {
            return Err(Error::Input(format!(
                "gguf writer: tensor `{name}` needs {n} bytes, got {}",
                bytes.len()
            )));
        }
        self.write_raw(bytes)?;
        self.next += 1;
        Ok(())
    }

    /// Leaves the next declared tensor (`name`) as a hole: its bytes read as zeros, and on
    /// file systems with sparse files it takes no space.
    pub fn skip_tensor(&mut self, name: &str) -> Result<()> {
        let n = self.advance_to(name)?;
        if self.stream {
            self.zeros(n)?;
        } else {
            self.pos += n;
            let pos = self.pos;
            let out = self.out.as_mut().expect("writer used after finish");
            let r = out.seek(SeekFrom::Start(pos));
            r.map_err(|e| self.io(e))?;
        }
        self.next += 1;
        Ok(())
    }

    /// Skips every remaining tensor (a fully sparse data section).
    pub fn skip_rest(&mut self) -> Result<()> {
        while let Some(t) = self.tensors.get(self.next) {
            let name = t.name.clone();
            self.skip_tensor(&name)?;
        }
        Ok(())
    }

    /// Names of the tensors still to be written, in order.
    pub fn remaining(&self) -> impl Iterator<Item = &TensorDesc> {
        self.tensors[self.next..].iter()
    }

    /// Flushes, syncs and renames the temporary file over `path` (see [`Output::commit`]).
    /// Every tensor must have been written or skipped.
    pub fn finish(mut self) -> Result<()> {
        if let Some(t) = self.tensors.get(self.next) {
            return Err(Error::Input(format!(
                "gguf writer: finished before tensor `{}` ({} of {} tensors written)",
                t.name,
                self.next,
                self.tensors.len()
            )));
        }
        let data_len = match (self.tensors.last(), self.offsets.last()) {
            (Some(t), Some(&off)) => (off + t.n_bytes).div_ceil(self.alignment) * self.alignment,
            _ => 0,
        };
        let len = self.data_start + data_len;
        if self.stream {
            self.zeros(len - self.pos)?;
        }
        let out = self.out.take().expect("finish called twice");
        let mut out = out.into_inner().map_err(|e| {
            let (e, out) = e.into_parts();
            out.get_ref().io_error(e)
        })?;
        if !out.in_place() {
            // Trailing holes (and the final padding) only exist once the length says so.
            let r = out.file().set_len(len);
            r.map_err(|e| out.io_error(e))?;
        }
        out.commit()
    }

    /// The file the writer will produce, as given.
    pub fn path(&self) -> &Path {
        self.out
            .as_ref()
            .map_or(Path::new(""), |o| o.get_ref().path())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
    }
}

/// An array value: element type, length, items (an item that is an array is itself written as
/// type, length, items).
fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend(a.elem_type_id().to_le_bytes());
    out.extend((a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend(x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => out.extend(v),
        Array::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Bool(v) => out.extend(v.iter().map(|&x| x as u8)),
        Array::String(v) => v.iter().for_each(|s| put_str(out, s)),
        Array::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
    }
}
