//! Quantized weight views and row-parallel matrix products.
//!
//! A weight matrix is `n_out` rows of `n_in` values (GGUF ne0 = n_in), stored in whatever block
//! type the file has. Activations are f32 `[n_tok × n_in]`, outputs `[n_tok × n_out]`.

use rayon::prelude::*;

use crate::gguf::GgmlType;
use crate::kernels::KernelTable;
use crate::{Error, Result};

/// A borrowed weight matrix: `n_out` rows of `n_in` values of type `ty`.
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub n_in: usize,
    pub n_out: usize,
    pub data: &'a [u8],
}

impl<'a> QMatrix<'a> {
    /// Checks that `data` holds exactly `n_out` rows of `n_in` values.
    pub fn new(ty: GgmlType, n_in: usize, n_out: usize, data: &'a [u8]) -> Result<Self> {
        let rb = ty.row_bytes(n_in as u64).ok_or_else(|| {
            Error::BadConfig(format!(
                "{n_in} values are not a whole number of {ty} blocks"
            ))
        })? as usize;
        if rb.checked_mul(n_out) != Some(data.len()) {
            return Err(Error::BadConfig(format!(
                "{ty} matrix {n_in}×{n_out} needs {} bytes, got {}",
                rb * n_out,
                data.len()
            )));
        }
        Ok(QMatrix {
            ty,
            n_in,
            n_out,
            data,
        })
    }

    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.n_out.max(1)
    }

    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Rows `r0..r1` as a matrix of their own.
    pub fn rows(&self, r0: usize, r1: usize) -> QMatrix<'a> {
        let rb = self.row_bytes();
        QMatrix {
            n_out: r1 - r0,
            data: &self.data[r0 * rb..r1 * rb],
            ..*self
        }
    }

    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        dequantize_row(self.ty, self.row(r), &mut out[..self.n_in])
    }
}

/// One row of any type `quant` knows to f32 (F32 read directly).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    match ty {
        GgmlType::F32 if src.len() == 4 * dst.len() => {
            for (d, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            Ok(())
        }
        _ => crate::quant::dequantize_row(ty, src, dst),
    }
}

/// How a matrix product treats the activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// ggml's way: quantize the activations to the weight type's dot partner (q8_0, q8_K) and
    /// use the SIMD kernels. Matches llama.cpp.
    #[default]
    Kernels,
    /// Dequantize weight rows to f32 and take f32 dot products (the exact answer for the file's
    /// weights; matches transformers run on dequantized weights).
    Exact,
}

/// Row-parallel matrix products with reusable scratch buffers (no allocation once warm).
#[derive(Debug, Default)]
pub struct Matmul {
    pub precision: Precision,
    /// Row-chunk-major staging for batched outputs.
    tmp: Vec<f32>,
    /// Quantized activation rows (from `act_off`, aligned).
    act: Vec<u8>,
    act_off: usize,
}

/// Work below this many multiply-adds runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 15;

impl Matmul {
    pub fn new(precision: Precision) -> Self {
        Matmul {
            precision,
            ..Matmul::default()
        }
    }

    /// Whether activations should follow ggml's float16 GELU table (parity mode).
    pub fn ggml_gelu(&self) -> bool {
        self.precision == Precision::Kernels
    }

    /// `out[n_out] = w · x[n_in]`.
    pub fn matvec(&mut self, w: &QMatrix, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.matmul(w, x, 1, out)
    }

    /// `out[t] = w · x[t]` for `n` token rows: x `[n × n_in]`, out `[n × n_out]`.
    pub fn matmul(&mut self, w: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        let (n_in, n_out) = (w.n_in, w.n_out);
        if x.len() < n * n_in || out.len() < n * n_out {
            return Err(Error::BadConfig(format!(
                "matmul {n_in}×{n_out} over {n} rows: x has {}, out has {}",
                x.len(),
                out.len()
            )));
        }
        let x = &x[..n * n_in];
        // Kernel path: quantize each activation row once to the weight type's dot partner.
        let kt = KernelTable::detect();
        let act = match self.precision {
            Precision::Kernels => {
                KernelTable::vec_dot_type(w.ty).filter(|_| KernelTable::supports(w.ty))
            }
            Precision::Exact => None,
        };
        let mut a_row = 0;
        if let Some(at) = act {
            a_row = at.row_bytes(n_in as u64).unwrap_or(0) as usize;
            let need = n * a_row;
            // over-allocate so the rows can start 16-byte aligned (Q8_K and F32 need 4)
            self.act.resize(need + 16, 0);
            let off = self.act.as_ptr().align_offset(16).min(16);
            let buf = &mut self.act[off..off + need];
            for (src, dst) in x.chunks_exact(n_in).zip(buf.chunks_exact_mut(a_row)) {
                kt.quantize_row(at, src, dst)?;
            }
            self.act_off = off;
        }
        let a_bytes = &self.act[self.act_off..self.act_off + n * a_row];
        // llama.cpp computes K-quant products over ≥ 8 rows with its own (tiled) arithmetic
        if self.precision == Precision::Kernels && super::ggml::tiled_takes(w.ty, n) {
            return super::ggml::tiled_matmul(w, a_bytes, n, out);
        }
        let threads = rayon::current_num_threads().max(1);
        let work = n * n_in * n_out;
        // Chunks of whole rows: a few per thread so uneven progress balances.
        let rows_per_chunk = if work < PAR_MIN_WORK || threads == 1 {
            n_out
        } else {
            n_out.div_ceil(threads * 4).max(1)
        };
        let chunk = |r0: usize, dst: &mut [f32]| -> Result<()> {
            let r1 = (r0 + rows_per_chunk).min(n_out);
            let sub = w.rows(r0, r1);
            match act {
                Some(_) if n == 1 => kt.matvec(w.ty, n_in, sub.data, r1 - r0, a_bytes, dst),
                Some(_) => kt.gemm(w.ty, n_in, sub.data, r1 - r0, a_bytes, n, dst, r1 - r0),
                None => exact_chunk(&sub, x, n, dst),
            }
        };
        // One chunk, or one token: the chunk layout already is the output layout.
        if rows_per_chunk == n_out {
            return chunk(0, &mut out[..n * n_out]);
        }
        if n == 1 {
            return out[..n_out]
                .par_chunks_mut(rows_per_chunk)
                .enumerate()
                .try_for_each(|(i, dst)| chunk(i * rows_per_chunk, dst));
        }
        // Batched: each chunk writes [n × rows] contiguously, then scatter to [n × n_out].
        self.tmp.resize(n * n_out, 0.0);
        let tmp = &mut self.tmp[..n * n_out];
        tmp.par_chunks_mut(n * rows_per_chunk)
            .enumerate()
            .try_for_each(|(i, dst)| chunk(i * rows_per_chunk, dst))?;
        for (ci, block) in tmp.chunks(n * rows_per_chunk).enumerate() {
            let r0 = ci * rows_per_chunk;
            let rows = block.len() / n;
            for t in 0..n {
                out[t * n_out + r0..t * n_out + r0 + rows]
                    .copy_from_slice(&block[t * rows..(t + 1) * rows]);
            }
        }
        Ok(())
    }
}

/// f32 reference: dequantize each row once, dot it with every token. `dst` is `[n × rows]`.
fn exact_chunk(w: &QMatrix, x: &[f32], n: usize, dst: &mut [f32]) -> Result<()> {
    let rows = w.n_out;
    let mut buf = vec![0f32; w.n_in];
    for r in 0..rows {
        w.dequantize_row(r, &mut buf)?;
        for t in 0..n {
            dst[t * rows + r] = super::dot(&buf, &x[t * w.n_in..(t + 1) * w.n_in]);
        }
    }
    Ok(())
}
