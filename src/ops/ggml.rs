//! ggml's CPU arithmetic, reproduced bit for bit in scalar Rust for [`Precision::Kernels`]
//! (llama.cpp parity). Each function names the ggml code it follows (llama.cpp 0c1e570,
//! `ggml/src/ggml-cpu/`). Where ggml's result depends on the SIMD width, we follow the
//! AVX-512 build (`GGML_AVX512=ON`), which made the llama.cpp fixtures; an AVX2-only build of
//! llama.cpp rounds a few of these differently (its `ggml_v_expf` and `ggml_vec_dot_f32` differ).
//!
//! [`Precision::Kernels`]: super::Precision::Kernels

use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::flash::KvBlocks;
#[cfg(test)]
use super::QMatrix;
use crate::gguf::GgmlType;
use crate::kernels::{Isa, KernelTable};
#[cfg(test)]
use crate::{Error, Result};

/// `ggml_v_expf` (vec.h, `__m512` variant) on one lane: ARM's optimized-routines polynomial,
/// `2^n · p(b)` with `n = round(x / ln 2)`, applied through `_mm512_scalef_ps`. Not correctly
/// rounded (≤ ~1.5 ulp), and different from `expf`.
#[inline]
pub fn expf(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(c(0x3fb8_aa3b), r); // x · log2(e) + r (fmadd)
    let n = z - r;
    // b = x − n·ln2_hi − n·ln2_lo (two fnmadds)
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x));
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // scalef: j · 2^n rounded once (exact in f64, then one rounding to f32)
    // (2^n built from its bits: |n| ≤ 192, so exact, as powi's would be, without a libcall)
    ((j as f64) * f64::from_bits(((n as i64 + 1023) as u64) << 52)) as f32
}

/// `_mm512_reduce_add_ps` as GCC expands it: halves added pairwise, 16 → 8 → 4 → 2 → 1.
#[inline]
pub fn reduce_add16(a: &[f32; 16]) -> f32 {
    let mut t8 = [0f32; 8];
    for i in 0..8 {
        t8[i] = a[i] + a[i + 8];
    }
    let t4 = [t8[0] + t8[4], t8[1] + t8[5], t8[2] + t8[6], t8[3] + t8[7]];
    (t4[0] + t4[2]) + (t4[1] + t4[3])
}

/// Four 16-lane accumulators (`GGML_F32_ARR`) folded as `GGML_F32x16_REDUCE` does:
/// `(a0 + a2) + (a1 + a3)`, then [`reduce_add16`].
#[inline]
pub fn reduce_add4x16(a: &[[f32; 16]; 4]) -> f32 {
    let mut s = [0f32; 16];
    for l in 0..16 {
        s[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
    }
    reduce_add16(&s)
}

/// `ggml_vec_dot_f32` (vec.cpp, AVX-512): lane `i % 16` of accumulator `(i / 16) % 4` takes
/// `x[i]·y[i]` by FMA over the first `n & !63` elements; the rest is a plain f32 sum after the
/// reduction.
/// Computed by the `ggml_dot_f32` C kernel; [`dot_f32_ref`] states it in Rust.
pub fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
    debug_assert_eq!(x.len(), y.len());
    crate::kernels::KernelTable::detect().ggml_dot_f32(x, y)
}

/// `acc[i] = x[i].mul_add(p, acc[i])` through the `ggml_fma_row` C kernel (the same bits;
/// `mul_add` alone is a libm call in a build without the `fma` target feature). This is
/// ggml_vec_mad_f32's lane operation, for attention's KQV accumulation (its owner wires it
/// in: `ggml::fma_row(row, v_at(t), p)` for the `mul_add` loop, 2-3x faster prefill).
pub fn fma_row(acc: &mut [f32], x: &[f32], p: f32) {
    debug_assert_eq!(acc.len(), x.len());
    crate::kernels::KernelTable::detect().ggml_fma_row(acc, x, p)
}

/// The Rust statement of [`dot_f32`] (the tests hold every ISA's kernel to it).
#[cfg(test)]
pub fn dot_f32_ref(x: &[f32], y: &[f32]) -> f32 {
    debug_assert_eq!(x.len(), y.len());
    let np = x.len() & !63;
    let mut acc = [[0f32; 16]; 4];
    for (cx, cy) in x[..np].chunks_exact(64).zip(y[..np].chunks_exact(64)) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, s) in a.iter_mut().enumerate() {
                *s = cx[16 * j + l].mul_add(cy[16 * j + l], *s);
            }
        }
    }
    let mut s = reduce_add4x16(&acc);
    for (a, b) in x[np..].iter().zip(&y[np..]) {
        s += a * b;
    }
    s
}

/// Softmax of one row as `ggml_compute_forward_soft_max_f32` computes it (scale 1):
/// `ggml_vec_soft_max_f32` (groups of 16 through [`expf`], each group summed with
/// [`reduce_add16`] and added to an f64 total; a tail of fewer than 16 through libm `expf`),
/// then every value times `(float)(1.0 / sum)`. The ggml row is `n_row` long: `skip` masked
/// (−∞) lanes, then `x`, then masked lanes. Masked lanes are zero and only decide where the
/// 16-lane groups fall (a row of the KQ matrix starts at cache cell 0 and is padded to 256).
pub fn soft_max(x: &mut [f32], skip: usize, n_row: usize) {
    debug_assert!(skip + x.len() <= n_row);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    let full = n_row & !15;
    let mut g = 0;
    while g < full.min(skip + x.len()) {
        let mut lanes = [0f32; 16];
        for (l, lane) in lanes.iter_mut().enumerate() {
            if let Some(v) = (g + l).checked_sub(skip).and_then(|i| x.get_mut(i)) {
                *v = expf(*v - max);
                *lane = *v;
            }
        }
        sum += reduce_add16(&lanes) as f64;
        g += 16;
    }
    if full < skip + x.len() {
        for v in x[full.saturating_sub(skip)..].iter_mut() {
            *v = (*v - max).exp();
            sum += *v as f64;
        }
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `ggml_gelu_f32` as compiled into the table (`0.5·x·(1 + tanhf(√(2/π)·x·(1 + a·x²)))`, with
/// GCC contracting `1 + (a·x)·x` into one FMA), the value behind ggml's f16 GELU table.
#[inline]
pub fn gelu_f32(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    #[allow(clippy::excessive_precision)]
    const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_355_879_892_119_868_76;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (GELU_COEF_A * x).mul_add(x, 1.0)).tanh())
}

/// Whether llama.cpp's tiled K-quant matmul (`ggml-cpu/tiled/`, on by default in the build that
/// made the fixtures) computes `w · x` for `n` activation rows: K-quant weights (of the types
/// emulated here) and at least 8 rows (`ggml_tiled_min_batch`). Fewer rows go through
/// `ggml_vec_dot_*` (the SIMD kernels).
pub fn tiled_takes(ty: GgmlType, n: usize) -> bool {
    n >= 8 && matches!(ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K)
}

#[cfg(test)]
/// One weight block unpacked the way the tiled kernel sees it: unsigned codes in element
/// order, an integer scale (and min) per sub-block, and the f32 block scales.
struct TiledBlock {
    q: [u8; 256],
    scales: [i32; 16],
    mins: [i32; 8],
    d: f32,
    dmin: f32,
}

#[cfg(test)]
impl TiledBlock {
    fn unpack(ty: GgmlType, b: &[u8], out: &mut TiledBlock) {
        let f16 = |i: usize| half::f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32();
        match ty {
            GgmlType::Q4K | GgmlType::Q5K => {
                out.d = f16(0);
                out.dmin = f16(2);
                let sc = &b[4..16];
                for j in 0..8 {
                    let (s, m) = get_scale_min_k4(j, sc);
                    out.scales[j] = s as i32;
                    out.mins[j] = m as i32;
                }
                let (qh, qs) = if ty == GgmlType::Q5K {
                    (Some(&b[16..48]), &b[48..176])
                } else {
                    (None, &b[16..144])
                };
                for j in 0..4 {
                    for l in 0..32 {
                        let v = qs[32 * j + l];
                        let (mut lo, mut hi) = (v & 15, v >> 4);
                        if let Some(qh) = qh {
                            lo |= ((qh[l] >> (2 * j)) & 1) << 4;
                            hi |= ((qh[l] >> (2 * j + 1)) & 1) << 4;
                        }
                        out.q[64 * j + l] = lo;
                        out.q[64 * j + 32 + l] = hi;
                    }
                }
            }
            _ => {
                // Q6_K: ql[128], qh[64], scales[16] (i8), d
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                out.d = f16(208);
                for (s, &v) in out.scales.iter_mut().zip(sc) {
                    *s = v as i8 as i32;
                }
                for h in 0..2 {
                    let (ql, qh, q) = (&ql[64 * h..], &qh[32 * h..], &mut out.q[128 * h..]);
                    for l in 0..32 {
                        q[l] = (ql[l] & 15) | (qh[l] & 3) << 4;
                        q[l + 32] = (ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4;
                        q[l + 64] = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                        q[l + 96] = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
/// `Σ a·b` over equal-length code slices, exact in i32.
#[inline]
fn idot(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as i32 * (y as i8) as i32)
        .sum()
}

#[cfg(test)]
/// The Rust statement of the `gemm_tiled_*` C kernels (which the matmul uses; the tests
/// below hold every ISA's kernel to this function bit for bit).
///
/// `out[t·n_out + r] = w_r · x_t` as llama.cpp's tiled kernel (`tiled_run_micro_vnni_8x16`,
/// AVX-512 VNNI) computes it from the q8_K rows `a` (`n` rows of `w.n_in / 256` blocks of 292
/// bytes): per 256-block, exact integers `s1 = Σ_s sc_s·(raw_s − BIAS·bsum_s)` and
/// `s2 = Σ_s m_s·bsum_s`, then `r = f32(s1)·d − dmin·f32(s2)` (one FMA) and
/// `acc = fma(r, d_x, acc)` (GCC contracts the kernel's `add(acc, mul(r, d_x))`), blocks in
/// order. Not the vec_dot sum: the block scales multiply in a different order.
pub fn tiled_matmul(w: &QMatrix, a: &[u8], n: usize, out: &mut [f32]) -> Result<()> {
    const Q8K: usize = 292;
    let (n_in, n_out) = (w.n_in, w.n_out);
    let nb = n_in / 256;
    let (sub, bias, has_min) = match w.ty {
        GgmlType::Q4K | GgmlType::Q5K => (32, 0, true),
        GgmlType::Q6K => (16, 32, false),
        t => return Err(Error::Kernel(format!("tiled matmul: no {t} emulation"))),
    };
    if n_in % 256 != 0 || a.len() < n * nb * Q8K || out.len() < n * n_out {
        return Err(Error::Kernel(format!(
            "tiled matmul {n_in}×{n_out} over {n} rows: bad sizes"
        )));
    }
    let mut by_row = vec![0f32; n_out * n];
    by_row.par_chunks_mut(n).enumerate().for_each_init(
        || TiledBlock {
            q: [0; 256],
            scales: [0; 16],
            mins: [0; 8],
            d: 0.0,
            dmin: 0.0,
        },
        |blk, (r, acc)| {
            let row = w.row(r);
            let bb = row.len() / nb;
            for ib in 0..nb {
                TiledBlock::unpack(w.ty, &row[ib * bb..(ib + 1) * bb], blk);
                for (t, acc) in acc.iter_mut().enumerate() {
                    let y = &a[(t * nb + ib) * Q8K..][..Q8K];
                    let dy = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
                    let (qs, bs) = (&y[4..260], &y[260..292]);
                    let bsum = |i: usize| i16::from_le_bytes([bs[2 * i], bs[2 * i + 1]]) as i32;
                    let (mut s1, mut s2) = (0i32, 0i32);
                    for s in 0..256 / sub {
                        let raw = idot(&blk.q[s * sub..(s + 1) * sub], &qs[s * sub..(s + 1) * sub]);
                        let bsum_s: i32 = (0..sub / 16).map(|u| bsum(s * sub / 16 + u)).sum();
                        s1 += blk.scales[s] * (raw - bias * bsum_s);
                        if has_min {
                            s2 += blk.mins[s] * bsum_s;
                        }
                    }
                    let mut res = s1 as f32 * blk.d;
                    if has_min {
                        res = (-blk.dmin).mul_add(s2 as f32, res);
                    }
                    *acc = res.mul_add(dy, *acc);
                }
            }
        },
    );
    for (r, col) in by_row.chunks_exact(n).enumerate() {
        for (t, &v) in col.iter().enumerate() {
            out[t * n_out + r] = v;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Flash attention (`ggml_compute_forward_flash_attn_ext_f16`, ops.cpp), F16 K/V cache: what
// llama.cpp runs by default on the CPU (`-fa auto` = on, `-ctk f16 -ctv f16`).
// ---------------------------------------------------------------------------------------------

/// `GGML_FA_TILE_Q`: a batch of at least this many query rows takes the tiled path.
pub const FA_TILE_Q: usize = 64;
/// `GGML_FA_TILE_KV`: keys per tile of the tiled path (tiles start at cell 0).
pub const FA_TILE_KV: usize = 64;
/// Query positions per work item (any grouping gives the same bits: rows are independent).
/// Small, so that the items (whose cost grows with their position) balance across threads.
const FA_ITEM_ROWS: usize = 8;

/// One `flash_attn_ext` call: `n` query rows at positions `p0..p0+n`, all their keys in the
/// cache (stored as F16, read back exactly as f32 through [`KvBlocks`]).
pub struct FlashAttnExt<'a> {
    /// `[n × n_head × head_dim]`, RoPE applied and already multiplied by the attention scale
    /// (llama.cpp's Gemma 3 graph scales Q; `kq_scale` = 1).
    pub q: &'a [f32],
    pub n: usize,
    pub p0: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Sliding window: a query sees itself and `window − 1` earlier keys.
    pub window: Option<usize>,
}

/// `ggml_vec_dot_f16` (vec.cpp, AVX-512): on AVX-512 the F16 dot reuses the F32 layout (four
/// 16-lane FMA accumulators over `n & !63`, [`reduce_add4x16`]), the total kept in f64 with the
/// leftovers added as f64 products. `x` and `y` hold F16 values (exact in f32).
pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let np = x.len() & !63;
    let mut s = dot_f32(&x[..np], &y[..np]) as f64;
    for (a, b) in x[np..].iter().zip(&y[np..]) {
        s += (a * b) as f64;
    }
    s as f32
}

/// Round to F16 and back (`GGML_CPU_FP32_TO_FP16`, round to nearest even).
#[inline]
fn f16r(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Running state of one query row.
#[derive(Default)]
struct FaRow {
    m: f32,
    s: f32,
    /// f32 accumulator (tiled path) or F16 values held in f32 (one-chunk path, `VKQ16`)
    vkq: Vec<f32>,
    /// one-chunk path: F16 staging row for rounding `vkq` (F16C when the CPU has it)
    h: Vec<half::f16>,
}

impl FaRow {
    /// A fresh row state of head dimension `hd`, reusing the buffers.
    fn reset(&mut self, hd: usize, tiled: bool) {
        self.m = f32::NEG_INFINITY;
        self.s = 0.0;
        self.vkq.clear();
        self.vkq.resize(hd, 0.0);
        self.h.clear();
        self.h.resize(if tiled { 0 } else { hd }, half::f16::ZERO);
    }

    /// `vkq ← f32(f16(vkq))`, round to nearest even like `_mm512_cvtps_ph(x, 0)`.
    fn round_f16(&mut self) {
        self.h.convert_from_f32_slice(&self.vkq);
        self.h.convert_to_f32_slice(&mut self.vkq);
    }
}

/// The kernels' `attn_axpy` where it is ggml's FMA chain bit for bit: F32 rows on the AVX-512
/// and AVX2 kernels over whole vectors (`n` a multiple of 32) are one `fma(p_j, V_j[i], acc)`
/// per row `j` in order, as [`fma_row`] (the scalar kernel rounds the product first).
fn fa_axpy() -> Option<&'static KernelTable> {
    let k = KernelTable::detect();
    matches!(k.isa(), Isa::Avx512 | Isa::Avx2).then_some(k)
}

/// `ggml_compute_forward_flash_attn_ext_tiled` for one query row and one KV tile of `m` keys
/// starting at position `c0` (`kt`: K transposed, `[hd × FA_TILE_KV]`; `v`: `[m × hd]`), keys
/// `first..=pos` visible.
#[cfg(test)]
fn fa_tiled_step(
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    c0: usize,
    first: usize,
    pos: usize,
    r: &mut FaRow,
) {
    let hd = q.len();
    let m = v.len() / hd;
    let acc = fa_tiled_scores(q, kt, m);
    fa_tiled_rest(&acc[..m], v, None, c0, first, pos, r);
}

/// simd_gemm's Q·K of one row: one FMA chain over d from 0 per key (the 64 keys' chains side
/// by side).
fn fa_tiled_scores(q: &[f32], kt: &[f32], m: usize) -> [f32; FA_TILE_KV] {
    let mut acc = [0f32; FA_TILE_KV];
    for (&qd, kd) in q.iter().zip(kt.chunks_exact(FA_TILE_KV)) {
        fma_row(&mut acc[..m], &kd[..m], qd);
    }
    acc
}

/// The rest of `fa_tiled_step` given the row's `m` scores `acc`: mask, online softmax, P·V.
/// `vb`: the same V rows as f32 bytes (4-aligned) for one `attn_axpy` call.
fn fa_tiled_rest(
    acc: &[f32],
    v: &[f32],
    vb: Option<(&KernelTable, &[u8])>,
    c0: usize,
    first: usize,
    pos: usize,
    r: &mut FaRow,
) {
    let hd = r.vkq.len();
    let m = acc.len();
    // ×scale (1) and + mask (0 / −inf)
    let mut kq = [[f32::NEG_INFINITY; 16]; FA_TILE_KV / 16];
    let vis = |j: usize| (first..=pos).contains(&(c0 + j));
    for j in (0..m).filter(|&j| vis(j)) {
        kq[j / 16][j % 16] = acc[j];
    }
    let tile_max = kq
        .iter()
        .flatten()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    if tile_max == f32::NEG_INFINITY {
        return;
    }
    let mnew = r.m.max(tile_max);
    if mnew > r.m {
        let ms = (r.m - mnew).exp(); // libm expf
        for x in r.vkq.iter_mut() {
            *x *= ms;
        }
        r.s *= ms;
    }
    r.m = mnew;
    // ggml_vec_soft_max_f32: ggml_v_expf per lane, each 16 reduced in f32, summed in f64
    let mut sum = 0f64;
    for g in kq.iter_mut() {
        for x in g.iter_mut() {
            *x = expf(*x - mnew);
        }
        sum += reduce_add16(g) as f64;
    }
    r.s = (r.s as f64 + sum) as f32;
    // simd_gemm: VKQ[d] = fma(p_j, V[j][d], VKQ[d]) for j in order (masked p_j = 0: skipped);
    // the visible keys of a tile are one run
    let (jlo, jhi) = (
        first.saturating_sub(c0).min(m),
        (pos + 1).saturating_sub(c0).min(m),
    );
    let p = kq.as_flattened();
    if let Some((k, vb)) = vb.filter(|_| hd % 32 == 0 && jlo < jhi) {
        let done = k.attn_axpy(
            GgmlType::F32,
            hd,
            jhi - jlo,
            &vb[4 * jlo * hd..],
            4 * hd,
            &p[jlo..jhi],
            FA_TILE_KV,
            1,
            &mut r.vkq,
            hd,
        );
        if done.is_ok() {
            return;
        }
    }
    for j in (0..m).filter(|&j| vis(j)) {
        fma_row(&mut r.vkq, &v[j * hd..(j + 1) * hd], p[j]);
    }
}

/// `len` bytes of `buf` from a 4-byte aligned start (grown as needed).
fn aligned4(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len + 4 {
        buf.resize(len + 4, 0);
    }
    let off = buf.as_ptr().align_offset(4).min(4);
    &mut buf[off..off + len]
}

/// f32 values into `out` as native-endian bytes.
fn put_f32(out: &mut [u8], x: &[f32]) {
    for (o, v) in out.chunks_exact_mut(4).zip(x) {
        o.copy_from_slice(&v.to_ne_bytes());
    }
}

/// `ggml_compute_forward_flash_attn_ext_f16_one_chunk` (F16 K and V) for one query row over
/// one KV tile: `q16` is Q rounded to F16, keys one at a time with a libm-`expf` online
/// softmax and an F16 `VKQ16` accumulator (`ggml_vec_scale_f16`, `ggml_vec_mad_f16`).
fn fa_chunk_step(
    q16: &[f32],
    k: &[f32],
    v: &[f32],
    c0: usize,
    first: usize,
    pos: usize,
    r: &mut FaRow,
) {
    let hd = q16.len();
    let m = k.len() / hd;
    for j in (0..m).filter(|&j| (first..=pos).contains(&(c0 + j))) {
        let s = dot_f16(&k[j * hd..(j + 1) * hd], q16);
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > r.m {
            let mold = r.m;
            r.m = s;
            ms = (mold - s).exp();
            for x in r.vkq.iter_mut() {
                *x *= ms;
            }
            r.round_f16();
        } else {
            vs = (s - r.m).exp();
        }
        fma_row(&mut r.vkq, &v[j * hd..(j + 1) * hd], vs);
        r.round_f16();
        // `S = S*ms + vs`: GCC contracts it to one FMA (gnu++17, -ffp-contract=fast; one
        // `vfmadd132ss` in the reference build's ops.cpp.o)
        r.s = r.s.mul_add(ms, vs);
    }
}

/// ggml's CPU flash attention over an F16 K/V cache, bit for bit (AVX-512 build): batches of
/// at least [`FA_TILE_Q`] rows take the tiled path (f32 Q, 64-key tiles, per-tile max,
/// [`expf`] probabilities), smaller batches and decode the one-chunk path (F16 Q, per-key
/// online softmax, F16 V accumulator). `out` is laid out like `q`.
///
/// Tiles are aligned on positions, as llama.cpp's cells are for a cache filled from position 0
/// without wrapping (always so for perplexity). Not emulated: llama.cpp's split-KV decode
/// (one query row over a KV view of ≥ 512 cells, i.e. past 256 cached positions), which sums
/// per-thread partials, and its cell order once a sliding-window ring wraps.
pub fn flash_attn_ext(kv: &dyn KvBlocks, f: &FlashAttnExt, out: &mut [f32]) {
    let hd = kv.head_dim();
    let nh = f.n_head;
    let item = FA_ITEM_ROWS * nh * hd;
    // later rows see more keys: hand out the costliest items first so the threads finish
    // together
    let mut items: Vec<(usize, &mut [f32])> =
        out[..f.n * nh * hd].chunks_mut(item).enumerate().collect();
    items.reverse();
    items.into_par_iter().with_max_len(1).for_each(|(ci, out)| {
        let t0 = ci * FA_ITEM_ROWS;
        FA_SCRATCH.with(|sc| match sc.try_borrow_mut() {
            Ok(mut sc) => fa_item(kv, f, t0, out, &mut sc),
            // (re-entered on this thread: fresh buffers)
            Err(_) => fa_item(kv, f, t0, out, &mut FaScratch::default()),
        })
    });
}

/// Per-thread buffers of [`flash_attn_ext`], kept from call to call (no allocation once warm).
#[derive(Default)]
struct FaScratch {
    kb: Vec<f32>,
    vb: Vec<f32>,
    kt: Vec<f32>,
    /// `[rows × hd]` queries of one KV head (F16-rounded on the one-chunk path)
    q: Vec<f32>,
    rows: Vec<FaRow>,
    /// the `attn_axpy` path: K tile transposed and V tile as f32 bytes, scores `[rows × 64]`
    ktb: Vec<u8>,
    vbb: Vec<u8>,
    kq: Vec<f32>,
}

/// [`fa_tiled_scores`] from the K tile held as f32 bytes.
fn fa_tiled_scores_bytes(q: &[f32], ktb: &[u8], m: usize) -> [f32; FA_TILE_KV] {
    let mut acc = [0f32; FA_TILE_KV];
    let mut kd = [0f32; FA_TILE_KV];
    for (&qd, row) in q.iter().zip(ktb.chunks_exact(4 * FA_TILE_KV)) {
        for (x, b) in kd.iter_mut().zip(row.chunks_exact(4)) {
            *x = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        }
        fma_row(&mut acc[..m], &kd[..m], qd);
    }
    acc
}

thread_local! {
    static FA_SCRATCH: std::cell::RefCell<FaScratch> = std::cell::RefCell::default();
}

/// Query rows `t0 .. t0 + out.len() / (n_head · hd)` of [`flash_attn_ext`].
fn fa_item(kv: &dyn KvBlocks, f: &FlashAttnExt, t0: usize, out: &mut [f32], sc: &mut FaScratch) {
    let hd = kv.head_dim();
    let (nh, group) = (f.n_head, f.n_head / f.n_kv_head);
    let tiled = f.n >= FA_TILE_Q;
    let first_of = |pos: usize| f.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let nt = out.len() / (nh * hd);
    let (lo, hi) = (first_of(f.p0 + t0), f.p0 + t0 + nt - 1);
    let nr = nt * group;
    let FaScratch {
        kb,
        vb,
        kt,
        q: qs,
        rows,
        ktb,
        vbb,
        kq,
    } = sc;
    // tiled path on AVX-512/AVX2: all scores of a tile in one attn_axpy call, P·V in one per row
    let axpy = fa_axpy().filter(|_| tiled);
    let ktb = aligned4(
        ktb,
        if axpy.is_some() {
            4 * FA_TILE_KV * hd
        } else {
            0
        },
    );
    let vbb = aligned4(
        vbb,
        if axpy.is_some() {
            4 * FA_TILE_KV * hd
        } else {
            0
        },
    );
    if axpy.is_some() && kq.len() < nr * FA_TILE_KV {
        kq.resize(nr * FA_TILE_KV, 0.0);
    }
    for b in [&mut *kb, &mut *vb] {
        if b.len() < FA_TILE_KV * hd {
            b.resize(FA_TILE_KV * hd, 0.0);
        }
    }
    if tiled && kt.len() < FA_TILE_KV * hd {
        kt.resize(FA_TILE_KV * hd, 0.0);
    }
    if qs.len() < nr * hd {
        qs.resize(nr * hd, 0.0);
    }
    if rows.len() < nr {
        rows.resize_with(nr, FaRow::default);
    }
    let (qs, rows) = (&mut qs[..nr * hd], &mut rows[..nr]);
    for g in 0..f.n_kv_head {
        // rows (t, head) of this KV head, and their Q (F16-rounded on the one-chunk path)
        for (i, (qv, r)) in qs.chunks_exact_mut(hd).zip(rows.iter_mut()).enumerate() {
            let (t, h) = (i / group, g * group + i % group);
            let at = ((t0 + t) * nh + h) * hd;
            qv.copy_from_slice(&f.q[at..at + hd]);
            if !tiled {
                qv.iter_mut().for_each(|x| *x = f16r(*x));
            }
            r.reset(hd, tiled);
        }
        let mut c0 = lo / FA_TILE_KV * FA_TILE_KV;
        while c0 <= hi {
            let m = FA_TILE_KV.min(hi + 1 - c0);
            kv.keys(g, c0, &mut kb[..m * hd]);
            kv.values(g, c0, &mut vb[..m * hd]);
            let (k, v) = (&kb[..m * hd], &vb[..m * hd]);
            if let Some(kern) = axpy {
                // K tile transposed (as ggml packs it for simd_gemm), as f32 bytes; columns
                // from m on hold an earlier tile's keys, whose scores are not read
                for (j, kr) in k.chunks_exact(hd).enumerate() {
                    for (d, &x) in kr.iter().enumerate() {
                        let at = 4 * (d * FA_TILE_KV + j);
                        ktb[at..at + 4].copy_from_slice(&x.to_ne_bytes());
                    }
                }
                put_f32(&mut vbb[..4 * m * hd], v);
                let kq = &mut kq[..nr * FA_TILE_KV];
                kq.fill(0.0);
                let scored = kern.attn_axpy(
                    GgmlType::F32,
                    FA_TILE_KV,
                    hd,
                    ktb,
                    4 * FA_TILE_KV,
                    qs,
                    hd,
                    nr,
                    kq,
                    FA_TILE_KV,
                );
                for (i, (qv, r)) in qs.chunks_exact(hd).zip(rows.iter_mut()).enumerate() {
                    let pos = f.p0 + t0 + i / group;
                    let own;
                    let acc = if scored.is_ok() {
                        &kq[i * FA_TILE_KV..i * FA_TILE_KV + m]
                    } else {
                        // (not reached: the sizes are right) the same chains through fma_row
                        own = fa_tiled_scores_bytes(qv, ktb, m);
                        &own[..m]
                    };
                    let vrows = Some((kern, &vbb[..4 * m * hd]));
                    fa_tiled_rest(acc, v, vrows, c0, first_of(pos), pos, r);
                }
            } else if tiled {
                // K tile transposed, as ggml packs it for simd_gemm
                for (j, kr) in k.chunks_exact(hd).enumerate() {
                    for (d, &x) in kr.iter().enumerate() {
                        kt[d * FA_TILE_KV + j] = x;
                    }
                }
                for (i, (qv, r)) in qs.chunks_exact(hd).zip(rows.iter_mut()).enumerate() {
                    let pos = f.p0 + t0 + i / group;
                    let acc = fa_tiled_scores(qv, &kt[..FA_TILE_KV * hd], m);
                    fa_tiled_rest(&acc[..m], v, None, c0, first_of(pos), pos, r);
                }
            } else {
                for (i, (qv, r)) in qs.chunks_exact(hd).zip(rows.iter_mut()).enumerate() {
                    let pos = f.p0 + t0 + i / group;
                    fa_chunk_step(qv, k, v, c0, first_of(pos), pos, r);
                }
            }
            c0 += FA_TILE_KV;
        }
        for (i, r) in rows.iter().enumerate() {
            let (t, h) = (i / group, g * group + i % group);
            let inv = if r.s == 0.0 { 0.0 } else { 1.0 / r.s };
            let o = &mut out[(t * nh + h) * hd..(t * nh + h + 1) * hd];
            for (o, x) in o.iter_mut().zip(&r.vkq) {
                *o = x * inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expf_is_close_to_exp() {
        // normal results only (x in [-87, 88])
        for i in -1740..=1760 {
            let x = i as f32 * 0.05;
            let (got, want) = (expf(x), (x as f64).exp());
            assert!(
                ((got as f64 - want) / want).abs() < 4e-7,
                "{x}: {got} vs {want}"
            );
        }
        for n in -192i64..=192 {
            assert_eq!(
                f64::from_bits(((n + 1023) as u64) << 52),
                2f64.powi(n as i32)
            );
        }
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(0.0), 1.0);
    }

    #[test]
    fn soft_max_sums_to_one_and_skips() {
        let mut x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        soft_max(&mut x, 5, 48);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x.iter().all(|&v| v > 0.0));
    }

    #[test]
    fn dot_matches_plain_sum() {
        let x: Vec<f32> = (0..200).map(|i| (i as f32).cos()).collect();
        let y: Vec<f32> = (0..200).map(|i| (i as f32 * 0.5).sin()).collect();
        let want: f64 = x.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!((dot_f32(&x, &y) as f64 - want).abs() < 1e-4);
    }

    /// Random K-quant rows: random code bytes, f16 scales of a realistic size (and some
    /// extremes) at the type's scale offsets.
    fn random_rows(ty: GgmlType, n_in: usize, n_out: usize, seed: &mut u64) -> Vec<u8> {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let bb = ty.row_bytes(256).unwrap() as usize;
        let mut v: Vec<u8> = (0..bb * n_in / 256 * n_out).map(|_| next() as u8).collect();
        let fields: &[usize] = match ty {
            GgmlType::Q6K => &[208],
            _ => &[0, 2],
        };
        for blk in v.chunks_exact_mut(bb) {
            for &o in fields {
                let r = next();
                let x = match r % 16 {
                    0 => 65504.0,
                    1 => 6.1e-5,
                    _ => ((r >> 8) % 2000) as f32 * 5e-5 - 0.05,
                };
                blk[o..o + 2].copy_from_slice(&half::f16::from_f32(x).to_le_bytes());
            }
        }
        v
    }

    /// Every ISA's `gemm_tiled` kernel gives the bits of [`tiled_matmul`].
    #[test]
    fn tiled_kernels_match_the_rust_statement() {
        use crate::kernels::{Isa, KernelTable};
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            for (n_in, n_out) in [(256, 3), (1024, 7), (2048, 5)] {
                let wb = random_rows(ty, n_in, n_out, &mut seed);
                let w = QMatrix::new(ty, n_in, n_out, &wb).unwrap();
                for n in [1, 3, 8, 9, 17] {
                    let kt = KernelTable::for_isa(Isa::Scalar).unwrap();
                    let a_row = GgmlType::Q8K.row_bytes(n_in as u64).unwrap() as usize;
                    // 4-aligned q8_K rows
                    let mut abuf = vec![0u8; n * a_row + 4];
                    let off = abuf.as_ptr().align_offset(4);
                    let a = &mut abuf[off..off + n * a_row];
                    for (t, dst) in a.chunks_exact_mut(a_row).enumerate() {
                        let x: Vec<f32> = (0..n_in)
                            .map(|i| ((i * 7 + t * 13) as f32 * 0.37).sin() * (1.0 + t as f32))
                            .collect();
                        kt.quantize_row(GgmlType::Q8K, &x, dst).unwrap();
                    }
                    let mut want = vec![0f32; n * n_out];
                    tiled_matmul(&w, a, n, &mut want).unwrap();
                    for isa in Isa::ALL {
                        let Some(k) = KernelTable::for_isa(*isa) else {
                            continue;
                        };
                        let mut got = vec![f32::NAN; n * n_out];
                        k.gemm_tiled(ty, n_in, &wb, n_out, a, n, &mut got, n_out)
                            .unwrap();
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(
                                g.to_bits(),
                                w.to_bits(),
                                "{ty} {isa} {n_in}x{n_out} n={n} [{i}]: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Every ISA's `ggml_dot_f32` gives the bits of [`dot_f32_ref`].
    #[test]
    fn ggml_dot_f32_kernels_match_the_rust_statement() {
        use crate::kernels::{Isa, KernelTable};
        for n in [0, 1, 63, 64, 65, 127, 256, 300, 512, 1000] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 31) as f32 * 0.173).sin() * 3.0)
                .collect();
            let y: Vec<f32> = (0..n)
                .map(|i| ((i * 17) as f32 * 0.291).cos() * 1e-3)
                .collect();
            let want = dot_f32_ref(&x, &y);
            for isa in Isa::ALL {
                if let Some(k) = KernelTable::for_isa(*isa) {
                    let got = k.ggml_dot_f32(&x, &y);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{isa} n={n}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Every ISA's `ggml_fma_row` gives the bits of `mul_add`.
    #[test]
    fn ggml_fma_row_kernels_match_mul_add() {
        use crate::kernels::{Isa, KernelTable};
        for n in [0, 1, 7, 16, 17, 256, 300] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 31) as f32 * 0.173).sin() * 3.0)
                .collect();
            let a0: Vec<f32> = (0..n).map(|i| ((i * 7) as f32 * 0.71).cos()).collect();
            let p = 0.123_456_79f32;
            let want: Vec<f32> = a0.iter().zip(&x).map(|(a, x)| x.mul_add(p, *a)).collect();
            for isa in Isa::ALL {
                if let Some(k) = KernelTable::for_isa(*isa) {
                    let mut got = a0.clone();
                    k.ggml_fma_row(&mut got, &x, p);
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!(g.to_bits(), w.to_bits(), "{isa} n={n}");
                    }
                }
            }
        }
    }

    /// K/V rows `[t × n_kv_head × hd]` held as F16 values.
    struct Rows {
        hd: usize,
        nkv: usize,
        k: Vec<f32>,
        v: Vec<f32>,
    }

    impl KvBlocks for Rows {
        fn head_dim(&self) -> usize {
            self.hd
        }
        fn keys(&self, g: usize, t0: usize, out: &mut [f32]) {
            for (j, o) in out.chunks_exact_mut(self.hd).enumerate() {
                let at = ((t0 + j) * self.nkv + g) * self.hd;
                o.copy_from_slice(&self.k[at..at + self.hd]);
            }
        }
        fn values(&self, g: usize, t0: usize, out: &mut [f32]) {
            for (j, o) in out.chunks_exact_mut(self.hd).enumerate() {
                let at = ((t0 + j) * self.nkv + g) * self.hd;
                o.copy_from_slice(&self.v[at..at + self.hd]);
            }
        }
    }

    /// Plain f64 softmax attention of query row `qv` at `pos` (KV head `g`).
    fn naive(r: &Rows, qv: &[f32], g: usize, first: usize, pos: usize) -> Vec<f64> {
        let hd = r.hd;
        let row = |x: &[f32], t: usize| {
            let at = (t * r.nkv + g) * hd;
            x[at..at + hd].to_vec()
        };
        let s: Vec<f64> = (first..=pos)
            .map(|t| {
                row(&r.k, t)
                    .iter()
                    .zip(qv)
                    .map(|(a, b)| (a * b) as f64)
                    .sum()
            })
            .collect();
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut out = vec![0f64; hd];
        for (t, p) in (first..=pos).zip(&e) {
            for (o, x) in out.iter_mut().zip(row(&r.v, t)) {
                *o += p / z * x as f64;
            }
        }
        out
    }

    fn check_flash(n: usize, p0: usize, window: Option<usize>, tol: f64) {
        let (hd, nh, nkv) = (64, 4, 2);
        let len = p0 + n;
        let val = |i: usize, f: f32| f16r(((i as f32) * f).sin());
        let r = Rows {
            hd,
            nkv,
            k: (0..len * nkv * hd).map(|i| val(i, 0.37)).collect(),
            v: (0..len * nkv * hd).map(|i| val(i, 0.11)).collect(),
        };
        let q: Vec<f32> = (0..n * nh * hd)
            .map(|i| ((i as f32) * 0.23).cos())
            .collect();
        let f = FlashAttnExt {
            q: &q,
            n,
            p0,
            n_head: nh,
            n_kv_head: nkv,
            window,
        };
        let mut out = vec![f32::NAN; n * nh * hd];
        flash_attn_ext(&r, &f, &mut out);
        for t in 0..n {
            let pos = p0 + t;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..nh {
                let at = (t * nh + h) * hd;
                let want = naive(&r, &q[at..at + hd], h / (nh / nkv), first, pos);
                for (d, (g, w)) in out[at..at + hd].iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() < tol,
                        "n {n} pos {pos} head {h} dim {d}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn flash_tiled_path_is_softmax_attention() {
        // 70 rows ≥ FA_TILE_Q: f32 accumulators, several 64-key tiles
        check_flash(70, 0, None, 1e-5);
        check_flash(70, 30, Some(40), 1e-5);
    }

    /// The tiled path as `flash_attn_ext` runs it (one `attn_axpy` for a tile's scores and one
    /// per row for P·V where the ISA allows) gives the bits of the `fma_row` statement.
    #[test]
    fn flash_tiled_path_gives_the_fma_row_bits() {
        let (hd, nh, nkv, n, p0, window) = (64, 4, 2, 70, 30, Some(50));
        let len = p0 + n;
        let val = |i: usize, f: f32| f16r(((i as f32) * f).sin());
        let r = Rows {
            hd,
            nkv,
            k: (0..len * nkv * hd).map(|i| val(i, 0.37)).collect(),
            v: (0..len * nkv * hd).map(|i| val(i, 0.11)).collect(),
        };
        let q: Vec<f32> = (0..n * nh * hd)
            .map(|i| ((i as f32) * 0.23).cos())
            .collect();
        let f = FlashAttnExt {
            q: &q,
            n,
            p0,
            n_head: nh,
            n_kv_head: nkv,
            window,
        };
        let mut got = vec![f32::NAN; n * nh * hd];
        flash_attn_ext(&r, &f, &mut got);
        let (mut kb, mut vb) = (vec![0f32; FA_TILE_KV * hd], vec![0f32; FA_TILE_KV * hd]);
        let mut kt = vec![0f32; FA_TILE_KV * hd];
        for t in 0..n {
            let pos = p0 + t;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..nh {
                let g = h / (nh / nkv);
                let at = (t * nh + h) * hd;
                let mut row = FaRow::default();
                row.reset(hd, true);
                let mut c0 = first / FA_TILE_KV * FA_TILE_KV;
                while c0 <= pos {
                    let m = FA_TILE_KV.min(pos + 1 - c0);
                    r.keys(g, c0, &mut kb[..m * hd]);
                    r.values(g, c0, &mut vb[..m * hd]);
                    for (j, kr) in kb[..m * hd].chunks_exact(hd).enumerate() {
                        for (d, &x) in kr.iter().enumerate() {
                            kt[d * FA_TILE_KV + j] = x;
                        }
                    }
                    let qv = &q[at..at + hd];
                    fa_tiled_step(qv, &kt, &vb[..m * hd], c0, first, pos, &mut row);
                    c0 += FA_TILE_KV;
                }
                for (d, (g, x)) in got[at..at + hd].iter().zip(&row.vkq).enumerate() {
                    let want = x * (1.0 / row.s);
                    assert_eq!(g.to_bits(), want.to_bits(), "pos {pos} head {h} dim {d}");
                }
            }
        }
    }

    #[test]
    fn flash_one_chunk_path_is_softmax_attention() {
        // under 64 rows and decode: F16 Q and an F16 accumulator (≈ 1e-3 relative)
        check_flash(5, 0, None, 2e-3);
        check_flash(1, 130, None, 2e-3);
        check_flash(3, 100, Some(20), 2e-3);
    }

    #[test]
    fn dot_f16_adds_leftovers_in_f64() {
        let x: Vec<f32> = (0..70).map(|i| f16r((i as f32).cos())).collect();
        let y: Vec<f32> = (0..70).map(|i| f16r((i as f32 * 0.5).sin())).collect();
        let head = dot_f32(&x[..64], &y[..64]) as f64;
        let tail: f64 = x[64..]
            .iter()
            .zip(&y[64..])
            .map(|(a, b)| (a * b) as f64)
            .sum();
        assert_eq!(dot_f16(&x, &y), (head + tail) as f32);
    }
}
