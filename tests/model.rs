//! Forward pass vs oracle logits: the tiny random Gemma 4 MoE (tests/fixtures/gemma4-tiny,
//! made by transformers and llama.cpp) and the real Gemma 3 270M (llama.cpp top-5 logits).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::npy;
use lode::gguf::Gguf;
use lode::model::gemma4::Gemma4;
use lode::model::{self, Logits, ModelOptions, Precision};
use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn manifest() -> Value {
    let s = std::fs::read_to_string(fixture("gemma4-tiny/manifest.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn tiny(q: &str) -> Arc<Gguf> {
    let p = fixture(&format!("gemma4-tiny/gguf/gemma4-tiny-public-{q}.gguf"));
    Arc::new(Gguf::open(p).unwrap())
}

fn tokens(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// max |a − b|, mean |a − b|.
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let mut max = 0f32;
    let mut sum = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += d as f64;
    }
    (max, (sum / a.len() as f64) as f32)
}

struct Bound {
    max_abs: f32,
    mean_abs: f32,
}

/// Runs every manifest sequence through a fresh model from `q`, compares all positions with
/// `ref/<prefix>_s<i>.npy`, and checks the argmax where transformers' top-1 margin exceeds
/// `margin`. Returns the worst (max, mean) seen.
fn check_sequences(q: &str, precision: Precision, prefix: &str, b: Bound, margin: f32) {
    let m = manifest();
    let g = tiny(q);
    let mut worst = (0f32, 0f32);
    for s in m["sequences"].as_array().unwrap() {
        let i = s["index"].as_u64().unwrap();
        let toks = tokens(&s["tokens"]);
        let mut model = model::load_with(g.clone(), &ModelOptions::default(), precision).unwrap();
        let got = model.forward(&toks, Logits::All).unwrap();
        let want = npy::read(fixture(&format!("gemma4-tiny/ref/{prefix}_s{i}.npy")));
        assert_eq!(want.shape, vec![toks.len(), model.n_vocab()]);
        let (max, mean) = diff(&got, &want.data);
        eprintln!("{q} {precision:?} vs {prefix} s{i}: max {max:.3e} mean {mean:.3e}");
        assert!(
            max <= b.max_abs && mean <= b.mean_abs,
            "{q} vs {prefix} s{i}: max {max} (≤ {}), mean {mean} (≤ {})",
            b.max_abs,
            b.mean_abs
        );
        worst = (worst.0.max(max), worst.1.max(mean));
        let nv = model.n_vocab();
        let margins = s["hf_top1_margin"].as_array().unwrap();
        for (t, mg) in margins.iter().enumerate() {
            if mg.as_f64().unwrap() as f32 > margin {
                let w = argmax(&want.data[t * nv..(t + 1) * nv]);
                let a = argmax(&got[t * nv..(t + 1) * nv]);
                assert_eq!(a, w, "{q} s{i} position {t}: argmax {a}, reference {w}");
            }
        }
    }
    eprintln!(
        "{q} vs {prefix}: worst max {:.3e} mean {:.3e}",
        worst.0, worst.1
    );
}

#[test]
fn f32_matches_transformers() {
    check_sequences(
        "f32",
        Precision::Exact,
        "hf_logits",
        Bound {
            max_abs: 0.005,
            mean_abs: 0.0005,
        },
        0.05,
    );
}

#[test]
fn f32_hidden_states_match_transformers() {
    let m = manifest();
    let s = &m["sequences"][3];
    let toks = tokens(&s["tokens"]);
    let mut model = Gemma4::load(tiny("f32"), &ModelOptions::default(), Precision::Exact).unwrap();
    let got = model.hidden_states(&toks).unwrap();
    let want = npy::read(fixture("gemma4-tiny/ref/hf_hidden_s3.npy"));
    let (n_rows, n, d) = (want.shape[0], want.shape[1], want.shape[2]);
    assert_eq!(n, toks.len());
    assert_eq!(got.len(), want.data.len());
    for r in 0..n_rows {
        let a = &got[r * n * d..(r + 1) * n * d];
        let b = &want.data[r * n * d..(r + 1) * n * d];
        let (max, mean) = diff(a, b);
        let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max);
        eprintln!("hidden row {r}: max {max:.3e} mean {mean:.3e} (|ref| ≤ {scale:.2})");
        assert!(max <= 1e-4 * scale.max(1.0), "hidden row {r}: max {max}");
    }
}

/// Dequantized weights with f32 dot products reproduce transformers run on the same
/// dequantized weights (the exact answer for each file).
#[test]
fn quantized_exact_math_matches_transformers_on_dequantized_weights() {
    for q in ["f16", "q8_0", "q4_0", "q4_k_m"] {
        check_sequences(
            q,
            Precision::Exact,
            &format!("hf_dequant_{q}"),
            Bound {
                max_abs: 0.005,
                mean_abs: 0.0005,
            },
            0.05,
        );
    }
}

/// 2,048 and 4,096 tokens (window 8): the ring-buffer caches and batching over many
/// ubatches. Last 128 rows vs transformers; argmax at every position where it is clear.
#[test]
fn f32_long_sequences_match_transformers() {
    let m = manifest();
    let long = &m["long_sequences"];
    let g = tiny("f32");
    let window = 8;
    for s in long["sequences"].as_array().unwrap() {
        let i = s["index"].as_u64().unwrap();
        let toks = tokens(&s["tokens"]);
        let mut model = model::load_with(g.clone(), &ModelOptions::default(), Precision::Exact).unwrap();
        let nv = model.n_vocab();
        let got = model.forward(&toks, Logits::All).unwrap();
        let first = s["last128_first_position"].as_u64().unwrap() as usize;
        let want = npy::read(fixture(&format!("gemma4-tiny/ref/hf_long_logits_l{i}.npy")));
        let (max, mean) = diff(&got[first * nv..], &want.data);
        eprintln!("long l{i} ({} tokens) last 128: max {max:.3e} mean {mean:.3e}", toks.len());
        assert!(max <= 0.01 && mean <= 0.001, "long l{i}: max {max} mean {mean}");
        // every position: skip near-tie routing and the window after it
        let margin = s["hf_top1_margin"].as_array().unwrap();
        let hf_argmax = s["hf_argmax"].as_array().unwrap();
        let gap = s["hf_router_kth_logit_gap_min_over_layers"].as_array().unwrap();
        let mut skip_until = 0;
        let (mut checked, mut agree) = (0, 0);
        for t in 0..toks.len() {
            if gap[t].as_f64().unwrap() < 0.005 {
                skip_until = t + window;
            }
            if t <= skip_until && skip_until > 0 || margin[t].as_f64().unwrap() <= 0.05 {
                continue;
            }
            checked += 1;
            let a = argmax(&got[t * nv..(t + 1) * nv]);
            if a == hf_argmax[t].as_u64().unwrap() as usize {
                agree += 1;
            }
        }
        eprintln!("long l{i}: argmax agrees at {agree}/{checked} clear positions");
        assert_eq!(agree, checked, "long l{i}");
    }
}

/// Decode one token at a time past the ring buffer's wrap point (l0: 2,048 tokens, the
/// sliding caches hold 263 cells), and rewind with `truncate`.
#[test]
fn f32_tokenwise_decode_and_truncate_match_transformers() {
    let m = manifest();
    let s = &m["long_sequences"]["sequences"][0];
    let toks = tokens(&s["tokens"]);
    let first = s["last128_first_position"].as_u64().unwrap() as usize;
    let want = npy::read(fixture("gemma4-tiny/ref/hf_long_logits_l0.npy"));
    let mut model = model::load_with(tiny("f32"), &ModelOptions::default(), Precision::Exact).unwrap();
    let nv = model.n_vocab();
    model.forward(&toks[..first], Logits::Last).unwrap();
    let mut worst = 0f32;
    for (r, &tok) in toks[first..].iter().enumerate() {
        let got = model.forward(&[tok], Logits::Last).unwrap();
        worst = worst.max(diff(&got, &want.data[r * nv..(r + 1) * nv]).0);
    }
    eprintln!("tokenwise decode, last 128: max {worst:.3e}");
    assert!(worst <= 0.01, "tokenwise decode: max {worst}");
    assert_eq!(model.n_past(), toks.len());

    // rewind 100 positions (inside the ring's slack) and recompute the tail as one batch
    model.truncate(toks.len() - 100).unwrap();
    let got = model.forward(&toks[toks.len() - 100..], Logits::All).unwrap();
    let (max, _) = diff(&got, &want.data[28 * nv..]);
    assert!(max <= 0.01, "after truncate: max {max}");
    // rewinding past what the sliding cache still holds is an error, not garbage
    assert!(model.truncate(10).is_err());
    model.truncate(0).unwrap();
    assert_eq!(model.n_past(), 0);
}
