//! ggml's CPU arithmetic, reproduced bit for bit in scalar Rust for [`Precision::Kernels`]
//! (llama.cpp parity). Each function names the ggml code it follows (llama.cpp 0c1e570,
//! `ggml/src/ggml-cpu/`). Where ggml's result depends on the SIMD width, we follow the
//! AVX-512 build (`GGML_AVX512=ON`), which made the llama.cpp fixtures; an AVX2-only build of
//! llama.cpp rounds a few of these differently (its `ggml_v_expf` and `ggml_vec_dot_f32` differ).
//!
//! [`Precision::Kernels`]: super::Precision::Kernels

#[cfg(test)]
use rayon::prelude::*;

#[cfg(test)]
use super::QMatrix;
use crate::gguf::GgmlType;
#[cfg(test)]
use crate::{Error, Result};

mod flash_attn;
pub use flash_attn::{flash_attn_ext, FlashAttnExt};

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
}
