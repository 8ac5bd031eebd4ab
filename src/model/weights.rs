//! Binding GGUF tensors to typed views, with the shape checked at load.

use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::ops::{dequantize_row, QMatrix};
use crate::{Error, Result};

/// A bound 2-D weight: `n_out` rows of `n_in` (GGUF `[n_in, n_out]`). Holds the tensor's index
/// entry; the bytes are resolved from the mapping on use (zero-copy).
#[derive(Clone, Debug)]
pub struct Mat {
    info: TensorInfo,
    pub n_in: usize,
    pub n_out: usize,
}

impl Mat {
    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn view<'a>(&self, g: &'a Gguf) -> QMatrix<'a> {
        QMatrix {
            ty: self.info.ty,
            n_in: self.n_in,
            n_out: self.n_out,
            data: g.tensor_data(&self.info),
        }
    }
}

fn shape_err(t: &TensorInfo, expected: &[usize]) -> Error {
    Error::Shape {
        name: t.name.clone(),
        expected: expected.iter().map(|&d| d as u64).collect(),
        found: t.dims.clone(),
    }
}

fn check(t: &TensorInfo, expected: &[usize]) -> Result<()> {
    let same = t.dims.len() == expected.len()
        && t.dims.iter().zip(expected).all(|(&a, &b)| a as usize == b);
    if !same {
        return Err(shape_err(t, expected));
    }
    if t.ty.row_bytes(t.dims[0]).is_none() {
        return Err(Error::BadConfig(format!(
            "tensor `{}`: {} values are not whole {} blocks",
            t.name, t.dims[0], t.ty
        )));
    }
    Ok(())
}

/// `name` as an `[n_in] → [n_out]` matrix.
pub fn mat(g: &Gguf, name: &str, n_in: usize, n_out: usize) -> Result<Mat> {
    let t = g.require(name)?;
    check(t, &[n_in, n_out])?;
    Ok(Mat {
        info: t.clone(),
        n_in,
        n_out,
    })
}

pub fn mat_opt(g: &Gguf, name: &str, n_in: usize, n_out: usize) -> Result<Option<Mat>> {
    match g.tensor(name) {
        None => Ok(None),
        Some(_) => mat(g, name, n_in, n_out).map(Some),
    }
}

/// A 1-D tensor of `len` values (norm weights, scales), converted to f32.
pub fn vector(g: &Gguf, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = g.require(name)?;
    check(t, &[len])?;
    let mut v = vec![0f32; len];
    dequantize_row(t.ty, g.tensor_data(t), &mut v)?;
    Ok(v)
}

pub fn vector_opt(g: &Gguf, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    match g.tensor(name) {
        None => Ok(None),
        Some(_) => vector(g, name, len).map(Some),
    }
}
