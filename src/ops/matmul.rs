//! Quantized weight views and row-parallel matrix products.
//!
//! A weight matrix is `n_out` rows of `n_in` values (GGUF ne0 = n_in), stored in whatever block
//! type the file has. Activations are f32 `[n_tok × n_in]`, outputs `[n_tok × n_out]`.

use super::pool::{Disjoint, Pool};

use crate::gguf::GgmlType;
use crate::kernels::{GemmOut, KernelTable};
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

/// The largest chunk of one matrix's weights a thread claims at once. Four chunks a thread
/// suit the decoder's 2-13 MB matrices (more made a 26B-A4B token 3-6 % slower: every chunk
/// start costs); the 605 MB LM head in eight 75 MB chunks left one thread waiting ~1.3 ms a
/// token for the other's last (LODE_TRACE_REGIONS). 4 and 16 MiB measured 1.011 and 1.014
/// (scripts/ab-decode.sh, 6 rounds); 8 MiB, between them, was only measured with the other
/// #12 changes of that commit (docs/performance.md, morning run).
const CHUNK_BYTES: usize = 8 << 20;
/// At most this many matrices share one region of [`Matmul::matmul_many`] (more are split).
const MAX_MANY: usize = 32;
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
    #[track_caller]
    pub fn matvec(&mut self, w: &QMatrix, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.matmul(w, x, 1, out)
    }

    /// `out[t] = w · x[t]` for `n` token rows: x `[n × n_in]`, out `[n × n_out]`.
    #[track_caller]
    pub fn matmul(&mut self, w: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        self.matmul_many(&[w], x, n, &mut [out])
    }

    /// `outs[i][t] = ws[i] · x[t]` for matrices that share one input (q/k/v, gate/up): the
    /// input is quantized once and the rows of all matrices go to the pool in one pass, so
    /// there is one synchronisation instead of one per matrix.
    #[track_caller]
    pub fn matmul_many(
        &mut self,
        ws: &[&QMatrix],
        x: &[f32],
        n: usize,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        if ws.len() != outs.len() {
            return Err(Error::BadConfig(format!(
                "matmul_many: {} matrices, {} outputs",
                ws.len(),
                outs.len()
            )));
        }
        for (ws, outs) in ws.chunks(MAX_MANY).zip(outs.chunks_mut(MAX_MANY)) {
            let items: [(&QMatrix, usize); MAX_MANY] =
                std::array::from_fn(|i| (ws[i.min(ws.len() - 1)], 0));
            self.matmul_each(&[Rows { x, n }], &items[..ws.len()], outs)?;
        }
        Ok(())
    }

    /// `outs[i] = W_i · inputs[j_i]` for `items[i] = (W_i, j_i)`: several matrices with their
    /// own inputs (the experts of a MoE layer, each over the tokens routed to it) in one
    /// region. Each input is quantized once per activation type its matrices need; the rows
    /// of all matrices are spread over the pool together. At most [`MAX_MANY`] items.
    #[track_caller]
    pub fn matmul_each(
        &mut self,
        inputs: &[Rows],
        items: &[(&QMatrix, usize)],
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        if items.len() != outs.len() || items.len() > MAX_MANY {
            return Err(Error::BadConfig(format!(
                "matmul_each: {} matrices, {} outputs (at most {MAX_MANY})",
                items.len(),
                outs.len()
            )));
        }
        if items.is_empty() {
            return Ok(());
        }
        for ((w, j), out) in items.iter().zip(outs.iter()) {
            let Some(r) = inputs.get(*j) else {
                return Err(Error::BadConfig(format!("matmul_each: no input {j}")));
            };
            let shared_n_in = items
                .iter()
                .find(|(_, jj)| jj == j)
                .map_or(w.n_in, |it| it.0.n_in);
            if r.x.len() < r.n * w.n_in || out.len() < r.n * w.n_out || w.n_in != shared_n_in {
                return Err(Error::BadConfig(format!(
                    "matmul {}×{} over {} rows: x has {}, out has {}",
                    w.n_in,
                    w.n_out,
                    r.n,
                    r.x.len(),
                    out.len()
                )));
            }
        }
        let kt = KernelTable::detect();
        let act_of = |w: &QMatrix| match self.precision {
            Precision::Kernels => {
                KernelTable::vec_dot_type(w.ty).filter(|_| KernelTable::supports(w.ty))
            }
            Precision::Exact => None,
        };
        // Kernel path: quantize each (input, activation type) once, each at a 16-byte aligned
        // offset of `act` (Q8_K and F32 rows need 4).
        let mut quant = [(usize::MAX, GgmlType::F32, 0usize, 0usize); MAX_MANY];
        let mut n_quant = 0;
        let mut need = 0;
        for (w, j) in items {
            let Some(at) = act_of(w) else { continue };
            if quant[..n_quant].iter().any(|q| q.0 == *j && q.1 == at) {
                continue;
            }
            let a_row = at.row_bytes(w.n_in as u64).unwrap_or(0) as usize;
            let len = inputs[*j].n * a_row;
            quant[n_quant] = (*j, at, need, len);
            n_quant += 1;
            need = (need + len).next_multiple_of(16);
        }
        if n_quant > 0 {
            // grow only (no zero fill of what a batch will overwrite anyway)
            if self.act.len() < need + 16 {
                self.act.resize(need + 16, 0);
            }
            let base = self.act.as_ptr().align_offset(16).min(16);
            self.act_off = base;
            for &(j, at, off, len) in &quant[..n_quant] {
                let Rows { x, n } = inputs[j];
                let n_in = items
                    .iter()
                    .find(|(_, jj)| *jj == j)
                    .map_or(0, |it| it.0.n_in);
                let x = &x[..n * n_in];
                let buf = &mut self.act[base + off..base + off + len];
                let a_row = len / n.max(1);
                // rows are independent: quantize them in parallel (the same bits)
                if n * n_in >= PAR_MIN_QUANT && rayon::current_num_threads() > 1 {
                    let dst = Disjoint::new(buf);
                    let rows_per_item = 4;
                    Pool::current().run(n.div_ceil(rows_per_item), |i| {
                        let t0 = i * rows_per_item;
                        let t1 = (t0 + rows_per_item).min(n);
                        // SAFETY: item i alone writes the quantized rows t0..t1.
                        let d = unsafe { dst.part(t0 * a_row, t1 * a_row) };
                        for (src, d) in x[t0 * n_in..t1 * n_in]
                            .chunks_exact(n_in)
                            .zip(d.chunks_exact_mut(a_row))
                        {
                            kt.quantize_row(at, src, d)?;
                        }
                        Ok(())
                    })?;
                } else {
                    for (src, dst) in x.chunks_exact(n_in).zip(buf.chunks_exact_mut(a_row)) {
                        kt.quantize_row(at, src, dst)?;
                    }
                }
            }
        }
        let threads = rayon::current_num_threads().max(1);
        let mut jobs: [Option<Job>; MAX_MANY] = [None; MAX_MANY];
        let mut staged = 0;
        for (job, (w, j)) in jobs.iter_mut().zip(items) {
            let Rows { x, n } = inputs[*j];
            let act = act_of(w).map(|at| {
                let q = quant[..n_quant]
                    .iter()
                    .find(|q| q.0 == *j && q.1 == at)
                    .expect("quantized above");
                &self.act[self.act_off + q.2..self.act_off + q.2 + q.3]
            });
            *job = Some(Job {
                kt,
                act,
                x: &x[..n * w.n_in],
                n,
                threads,
                ggml_tiled: self.ggml_tiled && self.precision == Precision::Kernels,
            });
            if job.as_ref().is_some_and(Job::staged) {
                staged += n * w.n_out;
            }
        }
        if self.tmp.len() < staged {
            self.tmp.resize(staged, 0.0);
        }
        let ws: [&QMatrix; MAX_MANY] =
            std::array::from_fn(|i| items.get(i).map_or(items[0].0, |it| it.0));
        run_jobs(
            &jobs[..items.len()],
            &ws[..items.len()],
            outs,
            &mut self.tmp[..staged],
        )
    }
}

/// One input of [`Matmul::matmul_each`]: `n` token rows of `x` (`[n × n_in]`).
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    pub x: &'a [f32],
    pub n: usize,
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

/// Every matrix at once: the rows of all of them are cut into chunks that the pool's threads
/// claim one by one, so there is one synchronisation for the whole set. `jobs[i]` holds the
/// input of `ws[i]`; `tmp` stages the batched outputs (`n_i × n_out_i` each, in order).
#[track_caller]
fn run_jobs(
    jobs: &[Option<Job>],
    ws: &[&QMatrix],
    outs: &mut [&mut [f32]],
    tmp: &mut [f32],
) -> Result<()> {
    let Some(Some(first)) = jobs.first() else {
        return Ok(());
    };
    let threads = first.threads;
    // per matrix: rows per chunk, first item index, staging offset
    let mut plan = [(0usize, 0usize, 0usize); MAX_MANY];
    let per_matrix_chunks = (threads * 4).div_ceil(ws.len()).max(1);
    let n_of = |m: usize| jobs[m].as_ref().map_or(1, |j| j.n);
    let batched = (0..ws.len()).any(|m| n_of(m) > 1);
    // batched (prefill's experts, each over its own tokens): a matrix with more than twice
    // the average work is cut so that no chunk exceeds a quarter of a thread's share
    let total: usize = (0..ws.len())
        .map(|m| n_of(m) * ws[m].n_in * ws[m].n_out)
        .sum();
    let most = (total / (threads * 4)).max(1);
    let (mut items, mut staged) = (0, 0);
    for (m, ((p, w), job)) in plan.iter_mut().zip(ws).zip(jobs).enumerate() {
        let n = n_of(m);
        let work = n * w.n_in * w.n_out;
        let rpc = if work < PAR_MIN_WORK || threads == 1 {
            w.n_out
        } else {
            // a multiple of 8 rows: the AVX-512 tiled K-quant kernel's band and twice the
            // gemm4 kernels' row tile (other rows take their slower paths); a large matrix
            // (the LM head) in chunks of at most CHUNK_BYTES, so the region's last chunk
            // leaves the other threads waiting less
            let mut chunks = per_matrix_chunks.max(w.data.len().div_ceil(CHUNK_BYTES));
            if n > 1 {
                chunks = chunks.max(work.div_ceil(most));
            }
            w.n_out.div_ceil(chunks).next_multiple_of(8).min(w.n_out)
        }
        .max(1);
        *p = (rpc, items, staged);
        items += w.n_out.div_ceil(rpc);
        if job.as_ref().is_some_and(Job::staged) {
            staged += n * w.n_out;
        }
    }
    let mut parts: [Option<Disjoint<f32>>; MAX_MANY] = std::array::from_fn(|_| None);
    for (d, out) in parts.iter_mut().zip(outs.iter_mut()) {
        *d = Some(Disjoint::new(out));
    }
    let tmp = Disjoint::new(&mut tmp[..staged]);
    // the matrix an item (a chunk) belongs to
    let matrix_of = |item: usize| {
        plan[..ws.len()]
            .iter()
            .rposition(|&(_, first, _)| first <= item)
            .unwrap_or(0)
    };
    // batched: the costliest chunks first (the experts' token counts differ), so the region
    // does not end on one thread computing a big expert alone; decode keeps matrix order
    let order: Vec<usize> = if batched {
        let cost = |item: usize| {
            let m = matrix_of(item);
            let (rpc, first, _) = plan[m];
            let rows = rpc.min(ws[m].n_out - (item - first) * rpc);
            n_of(m) * ws[m].n_in * rows
        };
        let mut o: Vec<usize> = (0..items).collect();
        o.sort_by_key(|&i| std::cmp::Reverse(cost(i)));
        o
    } else {
        Vec::new()
    };
    let pool = Pool::current();
    pool.run(items, |k| {
        let item = order.get(k).copied().unwrap_or(k);
        let m = matrix_of(item);
        let (rpc, first, off) = plan[m];
        let (w, job) = (ws[m], jobs[m].as_ref().expect("one job per matrix"));
        let n = job.n;
        let r0 = (item - first) * rpc;
        let r1 = (r0 + rpc).min(w.n_out);
        let out = parts[m].as_ref().expect("one output per matrix");
        let dst = if n == 1 {
            // SAFETY: item (m, chunk) alone writes rows r0..r1 of matrix m's output.
            Dst::Rows(unsafe { out.part(r0, r1) })
        } else if !job.staged() {
            // SAFETY: item (m, chunk) alone writes rows r0..r1 of each of the n token rows
            // of matrix m's [n × n_out] output (the gemm's out_col_stride is n_out).
            Dst::Strided(unsafe { out.gemm_out(r0, (n - 1) * w.n_out + r1) }, w.n_out)
        } else {
            // SAFETY: item (m, chunk) alone writes its [n × (r1 − r0)] staging block.
            Dst::Rows(unsafe { tmp.part(off + n * r0, off + n * r1) })
        };
        job.chunk(w, r0, r1, dst)
    })?;
    // Batched on the f32 reference path: each chunk wrote [n × rows] contiguously; scatter to
    // [n × n_out] per matrix, in parallel over (token row, chunk) pairs.
    for (m, w) in ws.iter().enumerate() {
        if !jobs[m].as_ref().is_some_and(Job::staged) {
            continue;
        }
        let n = jobs[m].as_ref().map_or(1, |j| j.n);
        let (rpc, _, off) = plan[m];
        let n_out = w.n_out;
        let chunks = n_out.div_ceil(rpc);
        // SAFETY: the region above is over; this is the only borrow of this staging block.
        let staged = unsafe { tmp.part(off, off + n * n_out) };
        let staged = &*staged;
        let out = parts[m].as_ref().expect("one output per matrix");
        pool.run(n * chunks, |i| {
            let (t, ci) = (i / chunks, i % chunks);
            let r0 = ci * rpc;
            let k = rpc.min(n_out - r0);
            let block = &staged[n * r0..n * (r0 + k)];
            // SAFETY: item i alone writes rows r0..r0 + k of token row t.
            let dst = unsafe { out.part(t * n_out + r0, t * n_out + r0 + k) };
            dst.copy_from_slice(&block[t * k..(t + 1) * k]);
            Ok(())
        })?;
    }
    Ok(())
}

/// Where a chunk of rows `r0..r1` goes: `[n × (r1 − r0)]` of its own, or straight into the
/// matrix's `[n × n_out]` output (rows r0..r1 of each token row; the stride n_out).
enum Dst<'b> {
    Rows(&'b mut [f32]),
    Strided(GemmOut<'b>, usize),
}

impl Job<'_> {
    /// A batch whose chunks go through a staging block (the f32 reference path; the kernels
    /// write the strided output themselves).
    fn staged(&self) -> bool {
        self.n > 1 && self.act.is_none()
    }

    /// Rows `r0..r1` of `w` for all tokens into `dst`.
    fn chunk(&self, w: &QMatrix, r0: usize, r1: usize, dst: Dst<'_>) -> Result<()> {
        let (n, n_in) = (self.n, w.n_in);
        // llama.cpp computes K-quant products over ≥ 8 rows with its own (tiled) arithmetic:
        // the gemm_tiled kernels give its bits (src/ops/ggml.rs `tiled_matmul` states them)
        let tiled = self.ggml_tiled
            && self.act.is_some()
            && super::ggml::tiled_takes(w.ty, n)
            && KernelTable::has_tiled(w.ty);
        let sub = w.rows(r0, r1);
        let (a, out, ocs) = match (self.act, dst) {
            (None, Dst::Rows(d)) => return exact_chunk(&sub, self.x, n, d),
            (Some(a), Dst::Rows(d)) => (a, GemmOut::from(d), r1 - r0),
            (Some(a), Dst::Strided(o, ocs)) => (a, o, ocs),
            (None, Dst::Strided(..)) => {
                return Err(Error::BadConfig(
                    "matmul: a strided output needs the kernel path".into(),
                ))
            }
        };
        if tiled {
            self.kt
                .gemm_tiled(w.ty, n_in, sub.data, r1 - r0, a, n, out, ocs)
        } else {
            self.kt.gemm(w.ty, n_in, sub.data, r1 - r0, a, n, out, ocs)
        }
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
