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
    /// Take llama.cpp's tiled K-quant arithmetic for batches of ≥ 8 rows (parity mode; set by
    /// `new` for `Kernels`). Off, a row's result never depends on the other rows of its batch.
    pub ggml_tiled: bool,
    /// Row-chunk-major staging for batched outputs.
    tmp: Vec<f32>,
    /// Quantized activation rows (from `act_off`, aligned).
    act: Vec<u8>,
    act_off: usize,
}

/// Work below this many multiply-adds runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 15;
/// Activations of fewer values than this are quantized on the calling thread.
const PAR_MIN_QUANT: usize = 1 << 14;

impl Matmul {
    pub fn new(precision: Precision) -> Self {
        Matmul {
            precision,
            ggml_tiled: precision == Precision::Kernels,
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
        self.matmul_many(&[w], x, n, &mut [out])
    }

    /// `outs[i][t] = ws[i] · x[t]` for matrices that share one input (q/k/v, gate/up): the
    /// input is quantized once and the rows of all matrices go to the pool in one pass, so
    /// there is one synchronisation instead of one per matrix.
    pub fn matmul_many(
        &mut self,
        ws: &[&QMatrix],
        x: &[f32],
        n: usize,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        let Some(first) = ws.first() else {
            return Ok(());
        };
        let n_in = first.n_in;
        for (w, out) in ws.iter().zip(outs.iter()) {
            if w.n_in != n_in || x.len() < n * n_in || out.len() < n * w.n_out {
                return Err(Error::BadConfig(format!(
                    "matmul {}×{} over {n} rows: x has {}, out has {} (shared input {n_in})",
                    w.n_in,
                    w.n_out,
                    x.len(),
                    out.len()
                )));
            }
        }
        if outs.len() != ws.len() {
            return Err(Error::BadConfig(format!(
                "matmul_many: {} matrices, {} outputs",
                ws.len(),
                outs.len()
            )));
        }
        let x = &x[..n * n_in];
        let kt = KernelTable::detect();
        let act_of = |w: &QMatrix| match self.precision {
            Precision::Kernels => {
                KernelTable::vec_dot_type(w.ty).filter(|_| KernelTable::supports(w.ty))
            }
            Precision::Exact => None,
        };
        let act = act_of(first);
        if ws.iter().any(|w| act_of(w) != act) {
            // different activation types: one quantization each
            for (w, out) in ws.iter().zip(outs.iter_mut()) {
                self.matmul_many(&[w], x, n, &mut [&mut **out])?;
            }
            return Ok(());
        }
        // Kernel path: quantize each activation row once to the weights' dot partner.
        let mut a_row = 0;
        if let Some(at) = act {
            a_row = at.row_bytes(n_in as u64).unwrap_or(0) as usize;
            let need = n * a_row;
            // over-allocate so the rows can start 16-byte aligned (Q8_K and F32 need 4); grow
            // only (no zero fill of what a batch will overwrite anyway)
            if self.act.len() < need + 16 {
                self.act.resize(need + 16, 0);
            }
            let off = self.act.as_ptr().align_offset(16).min(16);
            let buf = &mut self.act[off..off + need];
            // rows are independent: quantize them in parallel (the same bits)
            if n * n_in >= PAR_MIN_QUANT && rayon::current_num_threads() > 1 {
                x.par_chunks(n_in)
                    .zip(buf.par_chunks_mut(a_row))
                    .try_for_each(|(src, dst)| kt.quantize_row(at, src, dst))?;
            } else {
                for (src, dst) in x.chunks_exact(n_in).zip(buf.chunks_exact_mut(a_row)) {
                    kt.quantize_row(at, src, dst)?;
                }
            }
            self.act_off = off;
        }
        let job = Job {
            kt,
            act: act.map(|_| &self.act[self.act_off..self.act_off + n * a_row]),
            x,
            n,
            threads: rayon::current_num_threads().max(1),
            ggml_tiled: self.ggml_tiled && self.precision == Precision::Kernels,
        };
        let staged: usize = if n == 1 {
            0
        } else {
            ws.iter().map(|w| n * w.n_out).sum()
        };
        if self.tmp.len() < staged {
            self.tmp.resize(staged, 0.0);
        }
        job.run_many(ws, outs, &mut self.tmp[..staged])
    }
}

/// One matrix product's shared inputs, borrowed by every worker.
#[derive(Clone, Copy)]
struct Job<'a> {
    kt: &'static KernelTable,
    /// quantized activation rows (None: f32 reference path)
    act: Option<&'a [u8]>,
    x: &'a [f32],
    n: usize,
    threads: usize,
    /// follow llama.cpp's tiled K-quant arithmetic for batches of ≥ 8 rows (parity mode)
    ggml_tiled: bool,
}

impl Job<'_> {
    /// Every matrix at once: nested `rayon::join`s, so the pool balances rows across them.
    fn run_many(&self, ws: &[&QMatrix], outs: &mut [&mut [f32]], tmp: &mut [f32]) -> Result<()> {
        match (ws, outs) {
            ([w], [out]) => self.run(w, out, tmp),
            ([w, ws @ ..], [out, outs @ ..]) => {
                let staged = if self.n == 1 { 0 } else { self.n * w.n_out };
                let (t0, tmp) = tmp.split_at_mut(staged);
                let (a, b) = rayon::join(|| self.run(w, out, t0), || self.run_many(ws, outs, tmp));
                a.and(b)
            }
            _ => Ok(()),
        }
    }

    /// One matrix, rows split into a few chunks per thread so uneven progress balances.
    /// `tmp` stages batched outputs (`[n × n_out]`, empty for one token).
    fn run(&self, w: &QMatrix, out: &mut [f32], tmp: &mut [f32]) -> Result<()> {
        let (n, n_in, n_out) = (self.n, w.n_in, w.n_out);
        // llama.cpp computes K-quant products over ≥ 8 rows with its own (tiled) arithmetic:
        // the gemm_tiled kernels give its bits (src/ops/ggml.rs `tiled_matmul` states them)
        let tiled = self.ggml_tiled
            && self.act.is_some()
            && super::ggml::tiled_takes(w.ty, n)
            && KernelTable::has_tiled(w.ty);
        let work = n * n_in * n_out;
        // a multiple of 4 rows, the AVX-512 gemm4 kernels' row tile (other rows take its
        // slower 1-row path)
        let rows_per_chunk = if work < PAR_MIN_WORK || self.threads == 1 {
            n_out
        } else {
            n_out
                .div_ceil(self.threads * 4)
                .next_multiple_of(4)
                .min(n_out)
        };
        let chunk = |r0: usize, dst: &mut [f32]| -> Result<()> {
            let r1 = (r0 + rows_per_chunk).min(n_out);
            let sub = w.rows(r0, r1);
            match self.act {
                Some(a) if n == 1 => self.kt.matvec(w.ty, n_in, sub.data, r1 - r0, a, dst),
                Some(a) if tiled => {
                    self.kt
                        .gemm_tiled(w.ty, n_in, sub.data, r1 - r0, a, n, dst, r1 - r0)
                }
                Some(a) => self
                    .kt
                    .gemm(w.ty, n_in, sub.data, r1 - r0, a, n, dst, r1 - r0),
                None => exact_chunk(&sub, self.x, n, dst),
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
        // Batched: each chunk writes [n × rows] contiguously, then scatter to [n × n_out]
        // (in parallel over token rows).
        let tmp = &mut tmp[..n * n_out];
        tmp.par_chunks_mut(n * rows_per_chunk)
            .enumerate()
            .try_for_each(|(i, dst)| chunk(i * rows_per_chunk, dst))?;
        let tmp = &*tmp;
        out[..n * n_out]
            .par_chunks_mut(n_out)
            .with_min_len(8)
            .enumerate()
            .for_each(|(t, row)| {
                for (ci, block) in tmp.chunks(n * rows_per_chunk).enumerate() {
                    let r0 = ci * rows_per_chunk;
                    let rows = block.len() / n;
                    row[r0..r0 + rows].copy_from_slice(&block[t * rows..(t + 1) * rows]);
                }
            });
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
