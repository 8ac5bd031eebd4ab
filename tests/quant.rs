//! lode::quant against oracle data in tests/fixtures/quant/ (made by
//! scripts/fixtures/make_quant_fixtures.py from the `gguf` Python package and from
//! llama.cpp-quantized files; see tests/fixtures/README.md).

use lode::gguf::GgmlType;
use lode::quant::{dequantize_row, dequantize_tensor, quantize_row, quantize_tensor};
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

/// Deterministic standard normal samples (xorshift + Box-Muller): no rand dependency.
fn gaussian(n: usize, mut seed: u64) -> Vec<f32> {
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
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

#[derive(serde::Deserialize)]
struct KqEntry {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    ne: Vec<usize>,
    llamacpp_rmse: f64,
    f32: String,
    quant: String,
}

#[test]
fn k_quants_match_llama_quantize() {
    // gemma4-tiny tensors quantized by llama-quantize (no imatrix) from the F32 file's exact
    // weights: our RMSE must be ≤ 1.05× llama.cpp's (the acceptance criterion); in practice
    // the bytes are identical, since both run ggml's *_ref algorithms.
    let entries: Vec<KqEntry> = serde_json::from_slice(&fixture("kq.json")).unwrap();
    assert_eq!(entries.len(), 3);
    for e in entries {
        let ty = GgmlType::from_name(&e.ty).unwrap();
        let x = f32s(&fixture(&e.f32));
        let theirs = fixture(&e.quant);
        assert_eq!(x.len(), e.ne.iter().product::<usize>());
        let ours = quantize_tensor(ty, &x, e.ne[0]).unwrap();
        let their_y = dequantize_tensor(ty, &theirs, x.len()).unwrap();
        let our_y = dequantize_tensor(ty, &ours, x.len()).unwrap();
        let (ours_rmse, theirs_rmse) = (rmse(&x, &our_y), rmse(&x, &their_y));
        assert!((theirs_rmse - e.llamacpp_rmse).abs() <= 1e-6 * e.llamacpp_rmse.max(1e-9) + 1e-9);
        let bb = ty.block_bytes();
        let same = ours
            .chunks(bb)
            .zip(theirs.chunks(bb))
            .filter(|(a, b)| a == b)
            .count();
        eprintln!(
            "{} {ty}: rmse ours {ours_rmse:.6e} llama.cpp {theirs_rmse:.6e}, identical blocks {same}/{}",
            e.name,
            ours.len() / bb
        );
        assert!(
            ours_rmse <= 1.05 * theirs_rmse,
            "{}: {ours_rmse} > 1.05 × {theirs_rmse}",
            e.name
        );
        assert_eq!(
            same,
            ours.len() / bb,
            "{}: bytes differ from llama-quantize",
            e.name
        );
    }
}

#[derive(serde::Deserialize)]
struct RecipeFixture {
    arch: String,
    n_layer: usize,
    n_expert: usize,
    tensors: Vec<(String, Vec<u64>, String)>,
}

#[test]
fn recipe_reproduces_llama_quantize_choices() {
    use lode::quant::{ModelDesc, Recipe, Target, TensorDesc};
    for target in [Target::Q4KM, Target::Q4_0, Target::Q8_0] {
        let fx: RecipeFixture =
            serde_json::from_slice(&fixture(&format!("recipe_{}.json", target.name()))).unwrap();
        assert!(fx.tensors.len() > 100);
        let model = ModelDesc {
            arch: fx.arch.clone(),
            n_layer: fx.n_layer,
            n_expert: fx.n_expert,
        };
        let recipe = Recipe::new(target, model, fx.tensors.iter().map(|t| t.0.as_str()));
        let mut wrong = Vec::new();
        for (name, ne, want) in &fx.tensors {
            // the source file is all F32
            let t = TensorDesc {
                name,
                ne,
                ty: GgmlType::F32,
            };
            let got = recipe.tensor_type(&t).unwrap();
            if got.name() != want {
                wrong.push(format!("{name} {ne:?}: got {got}, llama.cpp {want}"));
            }
        }
        assert!(wrong.is_empty(), "{target}:\n{}", wrong.join("\n"));
    }
}
