//! lode::quant against oracle data in tests/fixtures/quant/ (made by
//! scripts/fixtures/make_quant_fixtures.py from the `gguf` Python package and from
//! llama.cpp-quantized files; see tests/fixtures/README.md).

mod common;
use common::rng::Rng;

use lode::gguf::{GgmlType, Gguf};
use lode::quant::{
    dequantize_row, dequantize_tensor, quantize_row, quantize_tensor, ModelDesc, Recipe, Target,
    TensorDesc,
};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/quant")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    (s / a.len() as f64).sqrt()
}

#[test]
fn dequantize_matches_gguf_python_bit_for_bit() {
    for &ty in lode::quant::DEQUANT_TYPES {
        let src = fixture(&format!("dequant_{}.bin", ty.name()));
        let want = f32s(&fixture(&format!("dequant_{}.f32", ty.name())));
        // whole fixture as one row, and block by block through dequantize_tensor
        let mut got = vec![0.0f32; want.len()];
        dequantize_row(ty, &src, &mut got).unwrap();
        let mut mismatches = 0;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if g.to_bits() != w.to_bits() {
                if mismatches < 5 {
                    eprintln!(
                        "{ty} element {i}: got {g:e} ({:#x}), want {w:e} ({:#x})",
                        g.to_bits(),
                        w.to_bits()
                    );
                }
                mismatches += 1;
            }
        }
        assert_eq!(
            mismatches,
            0,
            "{ty}: {mismatches} of {} elements differ",
            want.len()
        );
        let per_tensor = dequantize_tensor(ty, &src, want.len()).unwrap();
        assert!(
            per_tensor
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits()),
            "{ty}"
        );
    }
}

#[test]
fn quantizers_match_reference_bit_for_bit() {
    // Q4_0..Q8_0 vs gguf.quants.quantize (a port of ggml's *_ref); Q8_K vs a numpy
    // emulation of quantize_row_q8_K_ref.
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8K,
    ] {
        let x = f32s(&fixture(&format!("quant_{}.in", ty.name())));
        let want = fixture(&format!("quant_{}.bin", ty.name()));
        let got = quantize_tensor(ty, &x, 256).unwrap();
        assert_eq!(got.len(), want.len(), "{ty}");
        let bb = ty.block_bytes();
        let bad: Vec<usize> = (0..got.len() / bb)
            .filter(|&i| got[i * bb..(i + 1) * bb] != want[i * bb..(i + 1) * bb])
            .collect();
        assert!(bad.is_empty(), "{ty}: blocks {bad:?} differ");
        // and row by row
        let mut row = vec![0u8; ty.row_bytes(256).unwrap() as usize];
        quantize_row(ty, &x[..256], &mut row).unwrap();
        assert_eq!(row, want[..row.len()], "{ty}");
    }
}

/// Deterministic standard normal samples: the tests' generator through Box-Muller.
fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut next = move || ((rng.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (u, v) = (next(), next());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

#[test]
fn round_trip_rmse_on_gaussian_rows() {
    // Bounds for unit Gaussian data, a little above what ggml's reference quantizers reach
    // (test-quantize-fns uses a comparable per-type budget): the error of a b-bit scalar
    // quantizer over roughly ±3σ is about 6σ / 2^b / √12.
    let budgets = [
        (GgmlType::Q4_0, 0.115),
        (GgmlType::Q4_1, 0.100),
        (GgmlType::Q5_0, 0.058),
        (GgmlType::Q5_1, 0.050),
        (GgmlType::Q8_0, 0.0075),
        (GgmlType::Q4K, 0.085),
        (GgmlType::Q5K, 0.043),
        (GgmlType::Q6K, 0.022),
        (GgmlType::Q8K, 0.0080),
        (GgmlType::F16, 0.0003),
        (GgmlType::BF16, 0.0025),
    ];
    let x = gaussian(64 * 256, 0xC0FFEE);
    for (ty, budget) in budgets {
        let q = quantize_tensor(ty, &x, 1024).unwrap();
        let y = dequantize_tensor(ty, &q, x.len()).unwrap();
        let e = rmse(&x, &y);
        eprintln!("{ty}: rmse {e:.5} (budget {budget})");
        assert!(e <= budget, "{ty}: rmse {e} > {budget}");
    }
}

/// The gemma4-tiny GGUFs copied from the shared oracle (tests/fixtures/gemma4-tiny/): an F32
/// file and the Q8_0, Q4_0 and Q4_K_M files llama-quantize (no imatrix) made from it.
fn tiny(which: &str) -> Gguf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gemma4-tiny/gguf")
        .join(format!("gemma4-tiny-public-{which}.gguf"));
    Gguf::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn recipe_reproduces_llama_quantize_choices() {
    let f32_file = tiny("f32");
    let md = f32_file.metadata();
    let model = ModelDesc {
        arch: md.architecture().unwrap().to_string(),
        n_layer: md.usize("gemma4.block_count").unwrap(),
        n_expert: md.usize("gemma4.expert_count").unwrap(),
    };
    for target in [Target::Q4KM, Target::Q4_0, Target::Q8_0] {
        let theirs = tiny(target.name());
        let names = f32_file.tensors().iter().map(|t| t.name.as_str());
        let recipe = Recipe::new(target, model.clone(), names);
        let mut wrong = Vec::new();
        for t in f32_file.tensors() {
            let desc = TensorDesc {
                name: &t.name,
                ne: &t.dims,
                ty: t.ty,
            };
            let got = recipe.tensor_type(&desc).unwrap();
            let want = theirs.require(&t.name).unwrap().ty;
            if got != want {
                wrong.push(format!(
                    "{} {:?}: got {got}, llama.cpp {want}",
                    t.name, t.dims
                ));
            }
        }
        assert_eq!(f32_file.tensors().len(), 111);
        assert!(wrong.is_empty(), "{target}:\n{}", wrong.join("\n"));
    }
}

#[test]
fn quantizers_match_llama_quantize_on_every_tensor() {
    // Every quantized tensor of the Q8_0, Q4_0 and Q4_K_M files, re-made from the F32 file's
    // exact weights. Acceptance criterion: our RMSE ≤ 1.05 × llama.cpp's, per tensor. Both run
    // ggml's reference algorithms, so in practice the bytes are identical, and we check that too.
    let f32_file = tiny("f32");
    let mut checked = std::collections::BTreeMap::<GgmlType, usize>::new();
    for which in ["q8_0", "q4_0", "q4_k_m"] {
        let theirs = tiny(which);
        for t in theirs
            .tensors()
            .iter()
            .filter(|t| lode::quant::is_quantized(t.ty))
        {
            let src = f32_file.require(&t.name).unwrap();
            assert_eq!(src.ty, GgmlType::F32);
            let x = f32s(f32_file.tensor_data(src));
            let their_bytes = theirs.tensor_data(t);
            let ours = quantize_tensor(t.ty, &x, t.row_len()).unwrap();
            let n = x.len();
            let (our_y, their_y) = (
                dequantize_tensor(t.ty, &ours, n).unwrap(),
                dequantize_tensor(t.ty, their_bytes, n).unwrap(),
            );
            let (e_ours, e_theirs) = (rmse(&x, &our_y), rmse(&x, &their_y));
            assert!(
                e_ours <= 1.05 * e_theirs,
                "{which} {} {}: rmse {e_ours:e} > 1.05 × llama.cpp {e_theirs:e}",
                t.name,
                t.ty
            );
            assert!(
                ours == their_bytes,
                "{which} {} {}: bytes differ",
                t.name,
                t.ty
            );
            *checked.entry(t.ty).or_default() += 1;
        }
    }
    eprintln!("bit-identical to llama-quantize: {checked:?}");
    // q8_0: 44 Q8_0; q4_0: 35 Q4_0, 8 Q8_0, 1 Q6_K; q4_k_m: 20 Q4_K, 5 Q5_K, 1 Q6_K, 6 Q5_0, 12 Q8_0
    let want = [
        (GgmlType::Q4_0, 35),
        (GgmlType::Q5_0, 6),
        (GgmlType::Q8_0, 64),
        (GgmlType::Q4K, 20),
        (GgmlType::Q5K, 5),
        (GgmlType::Q6K, 2),
    ];
    assert_eq!(checked, want.into_iter().collect());
}
