//! The one dispatch point: which ISA this CPU runs, and a table of kernel pointers per ISA.
//!
//! Holding a `&'static KernelTable` proves the CPU can run its kernels: the only ways to get
//! one are [`KernelTable::detect`], [`KernelTable::from_env`] and [`KernelTable::for_isa`],
//! all of which check the CPU (and OS) features first.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::OnceLock;

use super::ffi::{self, GemmFn, IsaKernels, TypeKernels};
use crate::gguf::GgmlType;
use crate::{Error, Result};

/// An instruction-set variant of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
    Neon,
    NeonDotprod,
}

impl Isa {
    /// Every variant, worst to best.
    pub const ALL: &'static [Isa] = &[
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Neon,
        Isa::NeonDotprod,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
        }
    }

    /// Whether this CPU and OS can run the variant.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true, // mandatory in AArch64
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best variant this CPU runs.
    pub fn best() -> Isa {
        Isa::ALL
            .iter()
            .rev()
            .copied()
            .find(|i| i.available())
            .unwrap_or(Isa::Scalar)
    }
}

crate::gguf::types::display_name!(Isa);

impl FromStr for Isa {
    type Err = Error;

    fn from_str(s: &str) -> Result<Isa> {
        match s.to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            "neon-dotprod" | "neon_dotprod" | "dotprod" => Ok(Isa::NeonDotprod),
            _ => Err(Error::Kernel(format!(
                "unknown ISA `{s}` (expected scalar, avx2, avx512, neon or neon-dotprod)"
            ))),
        }
    }
}

/// Kernel pointers for one ISA.
pub struct KernelTable {
    isa: Isa,
    k: &'static IsaKernels,
}

const fn table(isa: Isa, k: &'static IsaKernels) -> KernelTable {
    KernelTable { isa, k }
}
static SCALAR: KernelTable = table(Isa::Scalar, &ffi::SCALAR);
#[cfg(target_arch = "x86_64")]
static AVX2: KernelTable = table(Isa::Avx2, &ffi::AVX2);
#[cfg(target_arch = "x86_64")]
static AVX512: KernelTable = table(Isa::Avx512, &ffi::AVX512);
#[cfg(target_arch = "aarch64")]
static NEON: KernelTable = table(Isa::Neon, &ffi::NEON);
#[cfg(target_arch = "aarch64")]
static NEON_DOTPROD: KernelTable = table(Isa::NeonDotprod, &ffi::NEON_DOTPROD);

/// The kernels of weight type `w` in `types`.
fn find(types: &'static [TypeKernels], w: GgmlType) -> Option<&'static TypeKernels> {
    types.iter().find(|k| k.weight == w)
}

fn kernel_err(msg: String) -> Error {
    Error::Kernel(msg)
}

impl KernelTable {
    /// The table for `isa`, or `None` when this CPU/OS cannot run it (or it is another
    /// architecture's ISA).
    pub fn for_isa(isa: Isa) -> Option<&'static KernelTable> {
        if !isa.available() {
            return None;
        }
        match isa {
            Isa::Scalar => Some(&SCALAR),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(&AVX2),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(&AVX512),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Some(&NEON),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => Some(&NEON_DOTPROD),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The table `LODE_ISA` asks for (scalar|avx2|avx512|neon|neon-dotprod), else the best
    /// this CPU runs. Errors when `LODE_ISA` is malformed or names an ISA the CPU lacks.
    pub fn from_env() -> Result<&'static KernelTable> {
        match std::env::var("LODE_ISA") {
            Ok(s) if !s.trim().is_empty() => {
                let isa: Isa = s.trim().parse()?;
                KernelTable::for_isa(isa).ok_or_else(|| {
                    kernel_err(format!(
                        "LODE_ISA={isa}: this CPU does not support {isa} (best available: {})",
                        Isa::best()
                    ))
                })
            }
            _ => Ok(KernelTable::for_isa(Isa::best()).unwrap_or(&SCALAR)),
        }
    }

    /// The process-wide table, chosen once: `LODE_ISA` if set and runnable, else the best
    /// available ISA (a bad `LODE_ISA` is reported on stderr, not fatal).
    pub fn detect() -> &'static KernelTable {
        static CHOSEN: OnceLock<&'static KernelTable> = OnceLock::new();
        CHOSEN.get_or_init(|| {
            KernelTable::from_env().unwrap_or_else(|e| {
                let best = KernelTable::for_isa(Isa::best()).unwrap_or(&SCALAR);
                eprintln!("lode: {e}; using {}", best.isa);
                best
            })
        })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The activation type a weight type is dotted against; `None` = no kernel for it.
    pub fn vec_dot_type(w: GgmlType) -> Option<GgmlType> {
        find(ffi::SCALAR.types, w).map(|k| k.act)
    }

    pub fn supports(w: GgmlType) -> bool {
        find(ffi::SCALAR.types, w).is_some()
    }

    /// Whether `w` has a SIMD kernel on this table's ISA (false: the scalar kernel runs).
    pub fn has_simd(&self, w: GgmlType) -> bool {
        self.isa != Isa::Scalar && find(self.k.types, w).is_some()
    }

    /// The kernels of `w`: this ISA's own, else the scalar ones.
    fn kernels(&self, w: GgmlType) -> Result<&'static TypeKernels> {
        find(self.k.types, w)
            .or_else(|| find(ffi::SCALAR.types, w))
            .ok_or_else(|| Error::UnsupportedQuant(format!("{w} (no dot kernel)")))
    }

    /// Quantize one activation row `x` into `out` (`act` = Q8_0, Q8_K or F32; F32 copies).
    pub fn quantize_row(&self, act: GgmlType, x: &[f32], out: &mut [u8]) -> Result<()> {
        let n = x.len();
        let need = row_bytes(act, n)?;
        if out.len() != need {
            return Err(kernel_err(format!(
                "quantize_row {act}: output is {} bytes, {n} elements need {need}",
                out.len()
            )));
        }
        check_align(act, "quantize_row output", out)?;
        let f = match act {
            GgmlType::Q8_0 => self.k.quantize_q8_0,
            GgmlType::Q8K => self.k.quantize_q8_k,
            GgmlType::F32 => {
                for (o, v) in out.chunks_exact_mut(4).zip(x) {
                    o.copy_from_slice(&v.to_ne_bytes());
                }
                return Ok(());
            }
            _ => {
                return Err(kernel_err(format!(
                    "{act} is not an activation type (Q8_0, Q8_K or F32)"
                )))
            }
        };
        // SAFETY: x holds n floats and out holds exactly row_bytes(act, n) bytes (checked
        // above), which is what the quantizer reads and writes; n is a whole number of blocks.
        unsafe { f(n, x.as_ptr(), out.as_mut_ptr().cast::<c_void>()) };
        Ok(())
    }

    /// Dot product of one weight row and one activation row of `n` elements.
    pub fn vec_dot(&self, w: GgmlType, n: usize, w_row: &[u8], a_row: &[u8]) -> Result<f32> {
        let k = self.kernels(w)?;
        let act = k.act;
        check_len("weight row", w_row.len(), row_bytes(w, n)?)?;
        check_len("activation row", a_row.len(), row_bytes(act, n)?)?;
        check_align(w, "weight row", w_row)?;
        check_align(act, "activation row", a_row)?;
        // SAFETY: both rows have exactly the byte length of n elements of their type and
        // the alignment of their block structs (checked above); the kernel reads only those.
        Ok(unsafe { (k.vec_dot)(n, w_row.as_ptr().cast(), a_row.as_ptr().cast()) })
    }

    /// out[c*out_col_stride + r] = dot(weight row r, activation row c) for r < nrows,
    /// c < ncols. `w_rows`: nrows rows of row_bytes(w, n) each, contiguous; `a`: ncols rows
    /// of row_bytes(vec_dot_type(w), n) each, contiguous.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<'o>(
        &self,
        w: GgmlType,
        n: usize,
        w_rows: &[u8],
        nrows: usize,
        a: &[u8],
        ncols: usize,
        out: impl Into<GemmOut<'o>>,
        out_col_stride: usize,
    ) -> Result<()> {
        let k = self.kernels(w)?;
        run_gemm(
            k.gemm,
            w,
            k.act,
            n,
            w_rows,
            None,
            nrows,
            a,
            ncols,
            out.into(),
            out_col_stride,
        )
    }

    /// `Σ x·y` as ggml_vec_dot_f32 computes it in llama.cpp's AVX-512 build (64 FMA lanes,
    /// its fold order, a plain tail): the same bits on every ISA. Uses the shorter length.
    pub fn ggml_dot_f32(&self, x: &[f32], y: &[f32]) -> f32 {
        let n = x.len().min(y.len());
        // SAFETY: the kernel reads n floats from each slice, and both hold at least n.
        unsafe { (self.k.ggml_dot_f32)(n, x.as_ptr(), y.as_ptr()) }
    }

    /// ggml's RoPE rotation of the pairs `(lo[i], hi[i])` by angles with sine and cosine
    /// `sc[i]` (`[s, c]`): `lo = fma(lo, c, −hi·s)`, `hi = fma(lo, s, hi·c)`, the bits of
    /// `f32::mul_add` without a libm call per value. Uses the shortest length.
    pub fn ggml_rope_pairs(&self, lo: &mut [f32], hi: &mut [f32], sc: &[[f32; 2]]) {
        let n = lo.len().min(hi.len()).min(sc.len());
        // SAFETY: the kernel reads/writes n floats of lo and hi (unique borrows holding at
        // least n) and reads 2n floats of sc (n pairs).
        unsafe { (self.k.ggml_rope_pairs)(n, lo.as_mut_ptr(), hi.as_mut_ptr(), sc.as_ptr().cast()) }
    }

    /// `acc[i] = fma(x[i], p, acc[i])` (one rounding each; `f32::mul_add` without its libm
    /// call): the same bits on every ISA. Uses the shorter length.
    pub fn ggml_fma_row(&self, acc: &mut [f32], x: &[f32], p: f32) {
        let n = acc.len().min(x.len());
        // SAFETY: the kernel reads n floats of x and reads/writes n floats of acc; both hold
        // at least n, and acc is a unique borrow.
        unsafe { (self.k.ggml_fma_row)(n, acc.as_mut_ptr(), x.as_ptr(), p) }
    }

    /// `x[i] = f32(f16(x[i]))`, round to nearest even: the value an F16 store keeps (ggml's
    /// F16 accumulators). The same bits on every ISA, and as `half::f16::from_f32`, for every
    /// input but NaN.
    pub fn ggml_round_f16_row(&self, x: &mut [f32]) {
        // SAFETY: the kernel reads and writes x.len() floats of x, a unique borrow.
        unsafe { (self.k.ggml_round_f16_row)(x.len(), x.as_mut_ptr()) }
    }

    /// `y[i]` = the binary16 value in bytes `2i, 2i + 1` of `x` (native order), exactly;
    /// converts `min(x.len() / 2, y.len())` values.
    pub fn ggml_f16_to_f32_row(&self, x: &[u8], y: &mut [f32]) {
        let n = (x.len() / 2).min(y.len());
        // SAFETY: the kernel reads 2n bytes of x (any alignment) and writes n floats of y, a
        // unique borrow; both hold at least that many.
        unsafe { (self.k.ggml_f16_to_f32_row)(n, x.as_ptr().cast(), y.as_mut_ptr()) }
    }

    /// Whether [`KernelTable::gemm_tiled`] has a kernel for `w` (Q4_K, Q5_K, Q6_K).
    pub fn has_tiled(w: GgmlType) -> bool {
        slot(&ffi::TILED_TYPES, w).is_some()
    }

    /// [`KernelTable::gemm`] with llama.cpp's tiled K-quant arithmetic (ggml-cpu/tiled/, what
    /// llama.cpp uses for K-quant weights over >= 8 activation rows): per 256-block
    /// `r = isum·d − dmin·summs` (one FMA), `acc = fma(r, y.d, acc)`. The same bits on every
    /// ISA; `a` holds Q8_K rows. Errors for other weight types.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_tiled<'o>(
        &self,
        w: GgmlType,
        n: usize,
        w_rows: &[u8],
        nrows: usize,
        a: &[u8],
        ncols: usize,
        out: impl Into<GemmOut<'o>>,
        out_col_stride: usize,
    ) -> Result<()> {
        let f = slot(&ffi::TILED_TYPES, w)
            .map(|s| self.k.tiled[s])
            .ok_or_else(|| Error::UnsupportedQuant(format!("{w} (no tiled gemm kernel)")))?;
        run_gemm(
            f,
            w,
            GgmlType::Q8K,
            n,
            w_rows,
            None,
            nrows,
            a,
            ncols,
            out.into(),
            out_col_stride,
        )
    }
}

/// The index of `t` in `types`.
fn slot(types: &[GgmlType], t: GgmlType) -> Option<usize> {
    types.iter().position(|&x| x == t)
}

/// Where a gemm writes: `len` floats from `ptr`, of which the call writes
/// `out[c·out_col_stride + r]` (r < nrows, c < ncols). Either a whole slice, or (from
/// [`crate::ops::pool::Disjoint::gemm_out`]) a span of a larger output whose other elements
/// other threads write at the same time: no `&mut` slice over the span exists then.
pub struct GemmOut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

impl<'a> From<&'a mut [f32]> for GemmOut<'a> {
    fn from(s: &'a mut [f32]) -> Self {
        GemmOut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }
}

impl<'a> From<&'a mut Vec<f32>> for GemmOut<'a> {
    fn from(v: &'a mut Vec<f32>) -> Self {
        GemmOut::from(v.as_mut_slice())
    }
}

impl GemmOut<'_> {
    /// # Safety
    /// `ptr` must be valid for writes of `len` floats while the result lives, and nothing else
    /// may read or write the elements a gemm through it writes (`out[c·stride + r]` of its
    /// call) meanwhile.
    pub unsafe fn from_raw(ptr: *mut f32, len: usize) -> Self {
        GemmOut {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }
}

/// Checks the sizes and alignment of one gemm call, then makes it. `w_row_stride`: the bytes
/// from one weight row to the next, `None` for packed rows (`w_rows` holds exactly `nrows`).
#[allow(clippy::too_many_arguments)]
fn run_gemm(
    f: GemmFn,
    w: GgmlType,
    act: GgmlType,
    n: usize,
    w_rows: &[u8],
    w_row_stride: Option<usize>,
    nrows: usize,
    a: &[u8],
    ncols: usize,
    out: GemmOut<'_>,
    out_col_stride: usize,
) -> Result<()> {
    let w_row = row_bytes(w, n)?;
    let a_row = row_bytes(act, n)?;
    let stride = w_row_stride.unwrap_or(w_row);
    if w_row_stride.is_none() {
        check_len("weight rows", w_rows.len(), mul(w_row, nrows)?)?;
    }
    check_len("activation rows", a.len(), mul(a_row, ncols)?)?;
    check_align(w, "weight rows", w_rows)?;
    check_stride(w, stride)?;
    check_align(act, "activation rows", a)?;
    if nrows == 0 || ncols == 0 {
        return Ok(());
    }
    check_span("weight rows", w_rows.len(), nrows, stride, w_row)?;
    if out_col_stride < nrows && ncols > 1 {
        return Err(kernel_err(format!(
            "gemm: out_col_stride {out_col_stride} < nrows {nrows} would overlap columns"
        )));
    }
    check_span("gemm output", out.len, ncols, out_col_stride, nrows)?;
    // SAFETY: the kernel reads row r < nrows at r*stride .. + w_row bytes of w_rows and
    // ncols*a_row bytes of a, and writes out[c*out_col_stride + r] for r < nrows, c < ncols,
    // all in bounds and aligned (checked above) and, by GemmOut's contract, this call's alone.
    unsafe {
        f(
            n,
            w_rows.as_ptr().cast(),
            stride,
            nrows,
            a.as_ptr().cast(),
            a_row,
            ncols,
            out.ptr,
            out_col_stride,
        )
    };
    Ok(())
}

impl KernelTable {
    /// out[r] = dot(weight row r, a_row) for r < nrows: one FFI call (gemm with one column).
    pub fn matvec(
        &self,
        w: GgmlType,
        n: usize,
        w_rows: &[u8],
        nrows: usize,
        a_row: &[u8],
        out: &mut [f32],
    ) -> Result<()> {
        check_len("matvec output", out.len(), nrows)?;
        self.gemm(w, n, w_rows, nrows, a_row, 1, out, nrows)
    }

    /// [`KernelTable::gemm`] over weight rows `w_row_stride` bytes apart (rows of a KV cache,
    /// one head of each cell): `w_rows` starts at row 0 and holds at least
    /// `(nrows − 1) · w_row_stride + row_bytes` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_strided<'o>(
        &self,
        w: GgmlType,
        n: usize,
        w_rows: &[u8],
        w_row_stride: usize,
        nrows: usize,
        a: &[u8],
        ncols: usize,
        out: impl Into<GemmOut<'o>>,
        out_col_stride: usize,
    ) -> Result<()> {
        let k = self.kernels(w)?;
        run_gemm(
            k.gemm,
            w,
            k.act,
            n,
            w_rows,
            Some(w_row_stride),
            nrows,
            a,
            ncols,
            out.into(),
            out_col_stride,
        )
    }

    /// The P·V product of one key tile: `acc[h·acc_stride + i] += Σ_{j<nk} p[h·p_stride + j] ·
    /// V_j[i]` for `i < n`, `h < nh`, `V_j` the row of `n` elements of type `t` (F32, F16 or
    /// Q8_0) at byte `j · v_row_stride` of `v`.
    #[allow(clippy::too_many_arguments)]
    pub fn attn_axpy(
        &self,
        t: GgmlType,
        n: usize,
        nk: usize,
        v: &[u8],
        v_row_stride: usize,
        p: &[f32],
        p_stride: usize,
        nh: usize,
        acc: &mut [f32],
        acc_stride: usize,
    ) -> Result<()> {
        let f = slot(&ffi::ATTN_TYPES, t)
            .map(|s| self.k.attn_axpy[s])
            .ok_or_else(|| Error::UnsupportedQuant(format!("{t} (no attention kernel)")))?;
        let v_row = row_bytes(t, n)?;
        if nk == 0 || nh == 0 {
            return Ok(());
        }
        check_span("V rows", v.len(), nk, v_row_stride, v_row)?;
        check_align(t, "V rows", v)?;
        check_stride(t, v_row_stride)?;
        check_span("attention weights", p.len(), nh, p_stride, nk)?;
        if acc_stride < n && nh > 1 {
            return Err(kernel_err(format!(
                "attn_axpy: acc_stride {acc_stride} < n {n} would overlap heads"
            )));
        }
        check_span("attention accumulator", acc.len(), nh, acc_stride, n)?;
        // SAFETY: the kernel reads V rows j < nk at j*v_row_stride .. + v_row bytes of v,
        // p[h*p_stride + j] and reads/writes acc[h*acc_stride + i] for h < nh, i < n: all in
        // bounds and aligned (checked above).
        unsafe {
            f(
                n,
                nk,
                v.as_ptr().cast(),
                v_row_stride,
                p.as_ptr(),
                p_stride,
                nh,
                acc.as_mut_ptr(),
                acc_stride,
            )
        };
        Ok(())
    }
}

/// `count` items of `item` units, `stride` apart, fit in `len` units.
fn check_span(what: &str, len: usize, count: usize, stride: usize, item: usize) -> Result<()> {
    let need = mul(count - 1, stride)?
        .checked_add(item)
        .ok_or_else(|| kernel_err(format!("{what}: size overflows")))?;
    if len < need {
        return Err(kernel_err(format!(
            "{what}: {len} units, {count} items of {item} at stride {stride} need {need}"
        )));
    }
    Ok(())
}

/// A row stride keeps every row at the block alignment of `t`.
fn check_stride(t: GgmlType, stride: usize) -> Result<()> {
    let align = block_align(t);
    if stride % align != 0 {
        return Err(kernel_err(format!(
            "row stride {stride} of {t} rows is not a multiple of {align} bytes"
        )));
    }
    Ok(())
}

fn row_bytes(t: GgmlType, n: usize) -> Result<usize> {
    t.row_bytes(n as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            kernel_err(format!(
                "{t}: row of {n} elements is not a whole number of {}-element blocks",
                t.block_len()
            ))
        })
}

fn mul(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| kernel_err(format!("size {a} x {b} overflows")))
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(kernel_err(format!("{what}: {got} bytes, expected {want}")))
    }
}

/// The C kernels read blocks through their structs, so bytes must have the block's
/// alignment: 4 for F32 and Q8_K (f32 fields), 1 for MXFP4, 2 for the rest (f16 fields).
fn block_align(t: GgmlType) -> usize {
    match t {
        GgmlType::F32 | GgmlType::Q8K => 4,
        GgmlType::MXFP4 => 1,
        _ => 2,
    }
}

/// `bytes` start at the [`block_align`] of `t`. GGUF tensor data is 32-byte aligned and row
/// sizes keep that, so real weights always pass.
fn check_align(t: GgmlType, what: &str, bytes: &[u8]) -> Result<()> {
    let align = block_align(t);
    if bytes.as_ptr().align_offset(align) != 0 {
        return Err(kernel_err(format!(
            "{what} ({t}) must be {align}-byte aligned"
        )));
    }
    Ok(())
}

/// Test support: dequantize a row of weight type `w` (or Q8_0 / Q8_K activations) with the
/// scalar C reference.
#[doc(hidden)]
pub fn dequantize_row_scalar(t: GgmlType, n: usize, x: &[u8]) -> Result<Vec<f32>> {
    check_len("dequantize row", x.len(), row_bytes(t, n)?)?;
    check_align(t, "dequantize row", x)?;
    let f = ffi::DEQUANTIZE
        .iter()
        .find(|(d, _)| *d == t)
        .map(|&(_, f)| f)
        .ok_or_else(|| Error::UnsupportedQuant(t.to_string()))?;
    let mut y = vec![0f32; n];
    // SAFETY: x holds exactly row_bytes(t, n) bytes and y n floats.
    unsafe { f(n, x.as_ptr().cast(), y.as_mut_ptr()) };
    Ok(y)
}
