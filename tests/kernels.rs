//! Kernel tests: every available ISA against the scalar C reference, the scalar reference
//! against a double-precision dot of its own dequantized values, its dequantizers against
//! gguf-py (tests/fixtures/kernels, see tests/fixtures/README.md), quantizers bit-exact.
//!
//! Error budgets (relative to mag = sum |w_i * a_i| of the dequantized values):
//! - SIMD vs scalar: the integer block dots are exact in every kernel; only the float
//!   accumulation of per-block (or per-lane) partial sums is reordered, so 1e-5 * mag.
//!   Results are not bitwise equal (lane-wise vs sequential float sums).
//! - scalar vs double dot of dequantized values: float rounding of scales and of the
//!   per-block products, see `scalar_budget`.
//! - gemm vs vec_dot on the same ISA: bitwise equal (same per-column arithmetic).
//! - AVX-512 vs AVX2 for quantized weights: bitwise equal (both keep ggml's AVX2 float order,
//!   which is what lode's llama.cpp parity rests on).
//! - quantize_row on every ISA: bytes equal to scalar.

mod common;

use common::rng::Rng;
use lode::gguf::GgmlType;
use lode::kernels::{dequantize_row_scalar, Isa, KernelTable};

const TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::IQ4NL,
    GgmlType::MXFP4,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::IQ4XS,
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
];

/// Byte offsets of the f16 scale fields in one block (ggml-common.h layouts).
fn f16_fields(t: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match t {
        Q4_0 | Q5_0 | Q8_0 | IQ4NL | IQ4XS => &[0],
        Q4_1 | Q5_1 | Q4K | Q5K => &[0, 2],
        Q2K => &[80, 82],
        Q3K => &[108],
        Q6K => &[208],
        _ => &[],
    }
}

const F16_MAX: u16 = 0x7bff; // 65504
const F16_MIN_NORMAL: u16 = 0x0400; // 6.1e-5

/// How a test weight row is filled.
#[derive(Clone, Copy, Debug)]
enum Fill {
    /// random quants, random moderate scales
    Random,
    /// every byte zero
    Zero,
    /// all quant bits set, scales f16 max
    MaxQuantsMaxScale,
    /// random quants, scales at the smallest normal f16
    MinNormalScale,
    /// random quants, each block's scales randomly one of {max, min normal, random}
    MixedScales,
}

fn f16_bits(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// A weight row of `n` elements of type `t`.
fn weight_row(t: GgmlType, n: usize, fill: Fill, rng: &mut Rng) -> Vec<u8> {
    let bytes = t.row_bytes(n as u64).unwrap() as usize;
    match t {
        GgmlType::F32 => {
            return (0..n)
                .flat_map(|_| {
                    match fill {
                        Fill::Zero => 0f32,
                        Fill::MaxQuantsMaxScale => 6.0e4,
                        _ => rng.uniform(-2.0, 2.0),
                    }
                    .to_le_bytes()
                })
                .collect()
        }
        GgmlType::F16 | GgmlType::BF16 => {
            return (0..n)
                .flat_map(|_| {
                    let v = match fill {
                        Fill::Zero => 0.0,
                        Fill::MaxQuantsMaxScale => 65504.0,
                        Fill::MinNormalScale => 6.1e-5,
                        _ => rng.uniform(-2.0, 2.0),
                    };
                    let bits = if t == GgmlType::F16 {
                        f16_bits(v)
                    } else {
                        half::bf16::from_f32(v).to_bits()
                    };
                    bits.to_le_bytes()
                })
                .collect()
        }
        _ => {}
    }
    let bb = t.block_bytes();
    let mut row: Vec<u8> = match fill {
        Fill::Zero => vec![0; bytes],
        Fill::MaxQuantsMaxScale => vec![0xff; bytes],
        _ => (0..bytes).map(|_| rng.byte()).collect(),
    };
    for block in row.chunks_exact_mut(bb) {
        if t == GgmlType::MXFP4 {
            block[0] = match fill {
                Fill::Zero => 0,
                Fill::MaxQuantsMaxScale => 150,
                Fill::MinNormalScale => 1,
                _ => 110 + rng.byte() % 30,
            };
            continue;
        }
        for &off in f16_fields(t) {
            let bits = match fill {
                Fill::Zero => 0,
                Fill::MaxQuantsMaxScale => F16_MAX,
                Fill::MinNormalScale => F16_MIN_NORMAL | ((rng.byte() as u16 & 1) << 15),
                Fill::Random => f16_bits(rng.uniform(-0.05, 0.05)),
                Fill::MixedScales => match rng.byte() % 3 {
                    0 => F16_MAX,
                    1 => F16_MIN_NORMAL,
                    _ => f16_bits(rng.uniform(-1.0, 1.0)),
                },
            };
            block[off..off + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
    row
}

/// An activation row of `n` f32 values, quantized to `act` with the scalar quantizer.
fn activation_row(act: GgmlType, n: usize, zero: bool, rng: &mut Rng) -> Vec<u8> {
    let x: Vec<f32> = (0..n)
        .map(|_| if zero { 0.0 } else { rng.uniform(-3.0, 3.0) })
        .collect();
    let mut out = vec![0u8; act.row_bytes(n as u64).unwrap() as usize];
    KernelTable::for_isa(Isa::Scalar)
        .unwrap()
        .quantize_row(act, &x, &mut out)
        .unwrap();
    out
}

/// Element counts to test for a type: 1 block, odd block counts, the Gemma rows.
fn sizes(t: GgmlType) -> Vec<usize> {
    let bl = t.block_len();
    let mut v: Vec<usize> = if bl == 256 {
        vec![256, 3 * 256, 11 * 256, 2816, 640 * 4]
    } else if bl == 32 {
        vec![32, 3 * 32, 11 * 32, 22 * 32, 66 * 32, 640, 704, 2112, 2816]
    } else {
        vec![1, 3, 7, 15, 16, 17, 33, 100, 640, 704, 2112, 2816]
    };
    v.retain(|n| n % bl == 0);
    v
}

const FILLS: &[Fill] = &[
    Fill::Random,
    Fill::Zero,
    Fill::MaxQuantsMaxScale,
    Fill::MinNormalScale,
    Fill::MixedScales,
];

fn act_type(t: GgmlType) -> GgmlType {
    KernelTable::vec_dot_type(t).unwrap()
}

/// Calls `check(n, fill, weights, activations)` on a row pair of type `t` for every size, fill
/// and `zero_acts` entry (an all-zero activation row or not), each pair drawn from `rng` in that
/// order.
fn for_each_row_pair(
    t: GgmlType,
    zero_acts: &[bool],
    rng: &mut Rng,
    mut check: impl FnMut(usize, Fill, &[u8], &[u8]),
) {
    let act = act_type(t);
    for n in sizes(t) {
        for &fill in FILLS {
            for &zero_act in zero_acts {
                let w = weight_row(t, n, fill, rng);
                let a = activation_row(act, n, zero_act, rng);
                check(n, fill, &w, &a);
            }
        }
    }
}

/// (double dot, sum |w_i a_i|) of the scalar-dequantized rows.
fn double_dot(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> (f64, f64) {
    let wd = dequantize_row_scalar(t, n, w).unwrap();
    let act = act_type(t);
    let ad: Vec<f32> = if act == GgmlType::F32 {
        a.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        dequantize_row_scalar(act, n, a).unwrap()
    };
    let mut dot = 0f64;
    let mut mag = 0f64;
    for (x, y) in wd.iter().zip(&ad) {
        dot += *x as f64 * *y as f64;
        mag += (*x as f64 * *y as f64).abs();
    }
    (dot, mag)
}

/// Budget of the scalar reference against the double dot, relative to mag.
/// Q-types round each block's scale product and partial sum to f32 (a few ulp per block);
/// types with mins (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) subtract a min term that can cancel
/// against the scale term, so their budget is relative to terms larger than |w_i a_i|.
fn scalar_budget(t: GgmlType) -> f64 {
    use GgmlType::*;
    match t {
        F32 | F16 | BF16 => 1e-6,
        Q4_1 | Q5_1 | Q2K | Q4K | Q5K => 2e-5,
        _ => 1e-5,
    }
}

const SIMD_BUDGET: f64 = 1e-5;

fn tables() -> Vec<&'static KernelTable> {
    Isa::ALL
        .iter()
        .filter_map(|&i| KernelTable::for_isa(i))
        .collect()
}

#[test]
fn scalar_matches_double_dot_of_dequantized() {
    let k = KernelTable::for_isa(Isa::Scalar).unwrap();
    let mut rng = Rng(0x5eed);
    for &t in TYPES {
        for_each_row_pair(t, &[false], &mut rng, |n, fill, w, a| {
            let got = k.vec_dot(t, n, w, a).unwrap() as f64;
            let (want, mag) = double_dot(t, n, w, a);
            let tol = scalar_budget(t) * mag + 1e-30;
            assert!(
                (got - want).abs() <= tol,
                "{t} n={n} {fill:?}: scalar {got} vs double {want} (mag {mag}, tol {tol})"
            );
        });
    }
}

#[test]
fn every_isa_matches_scalar() {
    let reference = KernelTable::for_isa(Isa::Scalar).unwrap();
    let mut rng = Rng(0xc0ffee);
    let mut checked = 0;
    for k in tables() {
        for &t in TYPES {
            for_each_row_pair(t, &[false, true], &mut rng, |n, fill, w, a| {
                let want = reference.vec_dot(t, n, w, a).unwrap() as f64;
                let got = k.vec_dot(t, n, w, a).unwrap() as f64;
                let (_, mag) = double_dot(t, n, w, a);
                let tol = SIMD_BUDGET * mag;
                assert!(
                    (got - want).abs() <= tol,
                    "{t} {} n={n} {fill:?}: {got} vs scalar {want} (mag {mag})",
                    k.isa()
                );
                checked += 1;
            });
        }
    }
    assert!(checked > 0);
}

#[test]
fn every_isa_has_a_simd_kernel_for_every_type() {
    for k in tables().into_iter().filter(|k| k.isa() != Isa::Scalar) {
        for &t in TYPES {
            assert!(k.has_simd(t), "{t} has no {} kernel", k.isa());
        }
    }
}

/// The AVX-512 kernels do integer work in 512-bit registers but accumulate floats in 8 lanes
/// in ggml's AVX2 order, so they must equal the AVX2 kernels bit for bit on every input.
#[test]
fn avx512_equals_avx2_bit_for_bit() {
    let (Some(avx2), Some(avx512)) = (
        KernelTable::for_isa(Isa::Avx2),
        KernelTable::for_isa(Isa::Avx512),
    ) else {
        return; // not an AVX-512 machine
    };
    let mut rng = Rng(0xa512);
    for &t in TYPES.iter().filter(|t| act_type(**t) != GgmlType::F32) {
        for_each_row_pair(t, &[false, true], &mut rng, |n, fill, w, a| {
            let want = avx2.vec_dot(t, n, w, a).unwrap();
            let got = avx512.vec_dot(t, n, w, a).unwrap();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{t} n={n} {fill:?}: avx512 {got} vs avx2 {want}"
            );
        });
    }
}

#[test]
fn gemm_and_matvec_equal_vec_dot() {
    let mut rng = Rng(0x6e33);
    for k in tables() {
        for &t in TYPES {
            let act = act_type(t);
            // an odd block count, so pairwise kernels run their tail
            let n = 21 * t.block_len().max(32);
            let nrows = 7;
            let w: Vec<u8> = (0..nrows)
                .flat_map(|_| weight_row(t, n, Fill::Random, &mut rng))
                .collect();
            let wb = w.len() / nrows;
            for ncols in [1usize, 2, 3, 4, 5, 8, 9] {
                let a: Vec<u8> = (0..ncols)
                    .flat_map(|_| activation_row(act, n, false, &mut rng))
                    .collect();
                let ab = a.len() / ncols;
                let stride = nrows + 3;
                let mut out = vec![f32::NAN; stride * ncols];
                k.gemm(t, n, &w, nrows, &a, ncols, &mut out, stride)
                    .unwrap();
                for c in 0..ncols {
                    for r in 0..nrows {
                        let want = k
                            .vec_dot(t, n, &w[r * wb..][..wb], &a[c * ab..][..ab])
                            .unwrap();
                        let got = out[c * stride + r];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{t} {} gemm r={r} c={c}/{ncols}: {got} vs vec_dot {want}",
                            k.isa()
                        );
                    }
                    for r in nrows..stride {
                        assert!(out[c * stride + r].is_nan(), "gemm wrote past nrows");
                    }
                }
            }
            let a = activation_row(act, n, false, &mut rng);
            let mut out = vec![0f32; nrows];
            k.matvec(t, n, &w, nrows, &a, &mut out).unwrap();
            for (r, got) in out.iter().enumerate() {
                let want = k.vec_dot(t, n, &w[r * wb..][..wb], &a).unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "{t} {} matvec", k.isa());
            }
        }
    }
}

#[test]
fn quantizers_are_bit_identical_across_isas() {
    let reference = KernelTable::for_isa(Isa::Scalar).unwrap();
    let mut rng = Rng(0x9a11);
    let mut rows: Vec<Vec<f32>> = vec![
        vec![0.0; 2816],
        (0..2816).map(|i| (i as f32 - 1408.0) * 0.5).collect(), // many exact ties
        (0..2816).map(|_| rng.uniform(-1e4, 1e4)).collect(),
        (0..2816).map(|_| rng.uniform(-1e-6, 1e-6)).collect(),
    ];
    for _ in 0..8 {
        rows.push((0..2816).map(|_| rng.uniform(-3.0, 3.0)).collect());
    }
    let mut neg_max = vec![0.25f32; 2816];
    neg_max[5] = -7.0; // the max-abs element negative
    rows.push(neg_max);
    for k in tables() {
        for act in [GgmlType::Q8_0, GgmlType::Q8K, GgmlType::F32] {
            for x in &rows {
                let n = 2816 / 256 * 256;
                let x = &x[..n];
                let len = act.row_bytes(n as u64).unwrap() as usize;
                let (mut want, mut got) = (vec![0u8; len], vec![0u8; len]);
                reference.quantize_row(act, x, &mut want).unwrap();
                k.quantize_row(act, x, &mut got).unwrap();
                assert_eq!(got, want, "{act} quantizer on {}", k.isa());
            }
        }
    }
}

fn read_u32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// Fixture made by gguf-py: (n, block bytes, dequantized values).
fn fixture(t: GgmlType) -> (usize, Vec<u8>, Vec<f32>) {
    let path = format!(
        "{}/tests/fixtures/kernels/{}.bin",
        env!("CARGO_MANIFEST_DIR"),
        t.name().to_lowercase()
    );
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (n, nb) = (read_u32(&b, 0), read_u32(&b, 4));
    let raw = b[8..8 + nb].to_vec();
    let y = b[8 + nb..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect::<Vec<_>>();
    assert_eq!(y.len(), n, "{path}");
    (n, raw, y)
}

#[test]
fn scalar_dequantization_matches_gguf_py() {
    for &t in TYPES.iter().filter(|&&t| t != GgmlType::F32) {
        let (n, raw, want) = fixture(t);
        let got = dequantize_row_scalar(t, n, &raw).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // gguf-py may round d*scale and the min term in another order: 1e-6 relative to
            // the block's largest value.
            let bl = t.block_len().max(32);
            let scale = want[i / bl * bl..][..bl]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                (g - w).abs() <= 1e-6 * scale,
                "{t} element {i}: lode {g} vs gguf-py {w}"
            );
        }
    }
}

/// ggml's run-time q8_0 activation quantizer on x86 (ggml-cpu arch/x86/quants.c), written out
/// here from its definition: d = amax/127 stored as f16, q = x·(127/amax) rounded to nearest,
/// ties to even. (The weight quantizer `quantize_row_q8_0_ref`, which gguf-py ports, uses 1/d
/// and roundf instead; llama.cpp's logits come from the run-time one.)
fn ggml_x86_q8_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for blk in x.chunks_exact(32) {
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
        out.extend(blk.iter().map(|&v| (v * id).round_ties_even() as i8 as u8));
    }
    out
}

#[test]
fn q8_0_quantizer_matches_ggml_runtime() {
    let path = format!(
        "{}/tests/fixtures/kernels/q8_0_quant.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let b = std::fs::read(&path).unwrap();
    let n = read_u32(&b, 0);
    let x: Vec<f32> = b[4..4 + 4 * n]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let nb = read_u32(&b, 4 + 4 * n);
    let reference = &b[8 + 4 * n..8 + 4 * n + nb];
    let want = ggml_x86_q8_0(&x);
    assert_eq!(want.len(), nb);
    // The fixture (gguf-py's port of the reference quantizer) has the same scales and quants
    // within one step: the two roundings only part on ties and on the 127/amax multiplier.
    for (blk_want, blk_ref) in want.chunks_exact(34).zip(reference.chunks_exact(34)) {
        assert_eq!(blk_want[..2], blk_ref[..2], "scale");
        for (a, r) in blk_want[2..].iter().zip(&blk_ref[2..]) {
            assert!((*a as i8 as i32 - *r as i8 as i32).abs() <= 1);
        }
    }
    for k in tables() {
        let mut got = vec![0u8; nb];
        k.quantize_row(GgmlType::Q8_0, &x, &mut got).unwrap();
        assert_eq!(got, want, "{}", k.isa());
        // Ties: x·127/amax landing on .5 must go to the even neighbour.
        let mut tie = vec![0f32; 32];
        tie[0] = 127.0;
        tie[1] = 2.5;
        tie[2] = -3.5;
        tie[3] = 0.5;
        let mut q = vec![0u8; 34];
        k.quantize_row(GgmlType::Q8_0, &tie, &mut q).unwrap();
        assert_eq!(&q[2..6], &[127u8, 2, (-4i8) as u8, 0], "{}", k.isa());
    }
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let k = KernelTable::detect();
    let w = vec![0u8; 144];
    let a = vec![0u8; 292];
    assert!(k.vec_dot(GgmlType::Q4K, 256, &w, &a).is_ok());
    assert!(k.vec_dot(GgmlType::Q4K, 255, &w, &a).is_err());
    assert!(k.vec_dot(GgmlType::Q4K, 256, &w[..143], &a).is_err());
    assert!(k.vec_dot(GgmlType::Q4K, 512, &w, &a).is_err());
    assert!(k.vec_dot(GgmlType::IQ2XXS, 256, &w, &a).is_err());
    let mut out = vec![0f32; 1];
    assert!(k
        .gemm(GgmlType::Q4K, 256, &w, 1, &a, 2, &mut out, 1)
        .is_err());
    assert!(k.matvec(GgmlType::Q4K, 256, &w, 2, &a, &mut out).is_err());
    assert!(k
        .quantize_row(GgmlType::Q4K, &[0.0; 256], &mut [0u8; 144])
        .is_err());
    assert!(k
        .quantize_row(GgmlType::Q8_0, &[0.0; 33], &mut [0u8; 34])
        .is_err());
}

#[test]
fn isa_names_round_trip() {
    for &isa in Isa::ALL {
        assert_eq!(isa.to_string().parse::<Isa>().unwrap(), isa);
    }
    assert!("sse9".parse::<Isa>().is_err());
    assert!(KernelTable::for_isa(Isa::Scalar).is_some());
    assert!(TYPES.iter().all(|&t| KernelTable::supports(t)));
    assert!(!KernelTable::supports(GgmlType::Q8K));
}

/// `attn_axpy` (the P·V of a key tile): every ISA against the scalar kernel, and the scalar
/// kernel against a double-precision sum over the scalar-dequantized rows. Rows are strided
/// (one head of a wider cache cell), several heads, odd key counts, a tail past the SIMD width
/// for the float types. Budget: |got − want| ≤ 1e-5 · Σ_j |p_j| · |V_j[i]| (float reordering
/// of one FMA chain per element).
#[test]
fn attn_axpy_every_isa_matches_scalar_and_double() {
    let reference = KernelTable::for_isa(Isa::Scalar).unwrap();
    let mut rng = Rng(0xa77e);
    let mut checked = 0;
    for t in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0] {
        for (n, nk, nh) in [
            (32, 1, 1),
            (64, 5, 2),
            (256, 64, 2),
            (512, 17, 8),
            (96, 3, 5),
        ] {
            let n = if t == GgmlType::Q8_0 { n } else { n + 3 };
            let rb = t.row_bytes(n as u64).unwrap() as usize;
            // rows live inside cells of three heads; this head is the second one
            let stride = 3 * rb + 2 * (rb % 2);
            let mut cells = vec![0u8; nk * stride + 16];
            let off = cells.as_ptr().align_offset(4);
            let mut rows = Vec::new();
            for j in 0..nk {
                let r = weight_row(t, n, Fill::Random, &mut rng);
                cells[off + j * stride + rb..][..rb].copy_from_slice(&r);
                rows.push(dequantize_row_scalar(t, n, &r).unwrap());
            }
            let v = &cells[off + rb..off + (nk - 1) * stride + 2 * rb];
            let p_stride = nk + 2;
            let p: Vec<f32> = (0..nh * p_stride).map(|_| rng.uniform(0.0, 1.0)).collect();
            let acc_stride = n + 1;
            let acc0: Vec<f32> = (0..nh * acc_stride)
                .map(|_| rng.uniform(-1.0, 1.0))
                .collect();
            let mut want = acc0.clone();
            reference
                .attn_axpy(t, n, nk, v, stride, &p, p_stride, nh, &mut want, acc_stride)
                .unwrap();
            for h in 0..nh {
                for i in 0..n {
                    let (mut s, mut mag) = (acc0[h * acc_stride + i] as f64, 0f64);
                    for (j, r) in rows.iter().enumerate() {
                        let x = p[h * p_stride + j] as f64 * r[i] as f64;
                        s += x;
                        mag += x.abs();
                    }
                    let got = want[h * acc_stride + i] as f64;
                    assert!(
                        (got - s).abs() <= 1e-5 * (mag + 1.0),
                        "{t} scalar n={n} nk={nk} h={h} i={i}: {got} vs double {s}"
                    );
                }
            }
            for k in tables() {
                let mut got = acc0.clone();
                k.attn_axpy(t, n, nk, v, stride, &p, p_stride, nh, &mut got, acc_stride)
                    .unwrap();
                for h in 0..nh {
                    for i in 0..n {
                        let mag: f64 = rows
                            .iter()
                            .enumerate()
                            .map(|(j, r)| (p[h * p_stride + j] * r[i]).abs() as f64)
                            .sum();
                        let (g, w) = (got[h * acc_stride + i], want[h * acc_stride + i]);
                        assert!(
                            ((g - w) as f64).abs() <= 1e-5 * (mag + 1.0),
                            "{t} {} n={n} nk={nk} h={h} i={i}: {g} vs scalar {w}",
                            k.isa()
                        );
                    }
                }
                // the padding between heads is never written
                for h in 0..nh {
                    assert_eq!(got[h * acc_stride + n], acc0[h * acc_stride + n]);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

/// `gemm_strided` over rows a cache cell apart equals `gemm` over the same rows packed.
#[test]
fn gemm_strided_equals_packed_gemm() {
    let mut rng = Rng(0x5171de);
    for k in tables() {
        for t in [GgmlType::F16, GgmlType::Q8_0, GgmlType::F32] {
            let (n, nrows, ncols) = (256, 13, 4);
            let rb = t.row_bytes(n as u64).unwrap() as usize;
            let stride = 2 * rb + 4;
            let mut cells = vec![0u8; nrows * stride + 16];
            let off = cells.as_ptr().align_offset(4);
            let mut packed = vec![0u8; nrows * rb + 16];
            let poff = packed.as_ptr().align_offset(4);
            for r in 0..nrows {
                let w = weight_row(t, n, Fill::Random, &mut rng);
                cells[off + r * stride..][..rb].copy_from_slice(&w);
                packed[poff + r * rb..][..rb].copy_from_slice(&w);
            }
            let act = act_type(t);
            let a: Vec<u8> = (0..ncols)
                .flat_map(|_| activation_row(act, n, false, &mut rng))
                .collect();
            let mut want = vec![0f32; ncols * 16];
            let mut got = vec![0f32; ncols * 16];
            k.gemm(
                t,
                n,
                &packed[poff..poff + nrows * rb],
                nrows,
                &a,
                ncols,
                &mut want,
                16,
            )
            .unwrap();
            let w = &cells[off..off + (nrows - 1) * stride + rb];
            k.gemm_strided(t, n, w, stride, nrows, &a, ncols, &mut got, 16)
                .unwrap();
            assert_eq!(got, want, "{t} {}", k.isa());
            // short rows, an odd stride and an overlapping output are errors, not panics
            let short = &w[..w.len() - 1];
            assert!(k
                .gemm_strided(t, n, short, stride, nrows, &a, ncols, &mut got, 16)
                .is_err());
            assert!(k
                .gemm_strided(t, n, w, stride + 1, nrows - 1, &a, ncols, &mut got, 16)
                .is_err());
            assert!(k
                .gemm_strided(t, n, w, stride, nrows, &a, ncols, &mut got, 8)
                .is_err());
        }
    }
    let k = KernelTable::for_isa(Isa::Scalar).unwrap();
    let mut acc = vec![0f32; 64];
    let v = vec![0u8; 128];
    assert!(k
        .attn_axpy(GgmlType::F16, 64, 2, &v, 64, &[1.0; 2], 2, 1, &mut acc, 64)
        .is_err());
    assert!(k
        .attn_axpy(GgmlType::Q4K, 256, 1, &v, 64, &[1.0], 1, 1, &mut acc, 64)
        .is_err());
}

/// `ggml_round_f16_row` on every ISA is `half`'s round to nearest even, there and back:
/// every f16 value, the midpoints between neighbours (ties go to the even one) and the values
/// just either side of them, subnormals, overflow past 65504, and a sweep of f32 bit patterns.
#[test]
fn round_f16_row_is_round_to_nearest_even_on_every_isa() {
    let mut xs: Vec<f32> = Vec::new();
    for h in 0..=u16::MAX {
        let v = half::f16::from_bits(h);
        if v.is_nan() {
            continue;
        }
        let f = v.to_f32();
        xs.push(f);
        let next = half::f16::from_bits(h.wrapping_add(1));
        if !next.is_nan() && h & 0x7fff != 0x7fff && (h & 0x7fff) < 0x7c00 {
            let mid = (f as f64 + next.to_f32() as f64) / 2.0;
            let m = mid as f32;
            xs.extend([
                m,
                f32::from_bits(m.to_bits() + 1),
                f32::from_bits(m.to_bits() - 1),
            ]);
        }
    }
    xs.extend((0..1u32 << 20).map(|i| f32::from_bits(i.wrapping_mul(4099))));
    xs.retain(|x| !x.is_nan());
    let want: Vec<u32> = xs
        .iter()
        .map(|&x| half::f16::from_f32(x).to_f32().to_bits())
        .collect();
    for k in tables() {
        let mut got = xs.clone();
        k.ggml_round_f16_row(&mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                *w,
                "{}: f16 round of {:e} ({:#x})",
                k.isa(),
                xs[i],
                xs[i].to_bits()
            );
        }
    }
}

/// `ggml_f16_to_f32_row` on every ISA is `half`'s exact conversion for every binary16 value
/// (NaNs stay NaN), read from an odd address.
#[test]
fn f16_to_f32_row_is_exact_on_every_isa() {
    let mut bytes = vec![0u8];
    bytes.extend((0..=u16::MAX).flat_map(|h| h.to_ne_bytes()));
    let x = &bytes[1..];
    for k in tables() {
        let mut y = vec![0f32; 65536];
        k.ggml_f16_to_f32_row(x, &mut y);
        for (h, v) in (0..=u16::MAX).zip(&y) {
            let want = half::f16::from_bits(h).to_f32();
            if want.is_nan() {
                assert!(v.is_nan(), "{}: f16 {h:#x} gave {v}", k.isa());
            } else {
                assert_eq!(v.to_bits(), want.to_bits(), "{}: f16 {h:#x}", k.isa());
            }
        }
    }
}
