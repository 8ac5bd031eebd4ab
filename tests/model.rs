//! Forward pass vs oracle logits: the tiny random Gemma 4 MoE (tests/fixtures/gemma4-tiny,
//! made by transformers and llama.cpp) and the real Gemma 3 270M (llama.cpp top-5 logits).

mod common;

use common::tiny::{argmax, diff, fixture, manifest, tiny, tokens, top1_margin};

use std::sync::Arc;

use common::gguf_writer;
use lode::gguf::Gguf;
use lode::gguf::Value as Value2;
use lode::model::gemma4::Gemma4;
use lode::model::{self, KvType, Logits, ModelOptions, Precision};
use lode::npy;

/// The references were made with an f32 K/V cache (transformers; llama.cpp "precise"); lode's
/// default f16 cache is checked against them in tests/long_context.rs.
fn f32_kv() -> ModelOptions {
    ModelOptions {
        kv_type: KvType::F32,
        ..ModelOptions::default()
    }
}

struct Bound {
    max_abs: f32,
    mean_abs: f32,
}

/// Runs every manifest sequence through a fresh model from `q`, compares all positions with
/// `ref/<prefix>_s<i>.npy`, and checks the argmax where transformers' top-1 margin exceeds
/// `margin`. Max bound per sequence, mean bound over all positions of all sequences.
fn check_sequences(q: &str, precision: Precision, prefix: &str, b: Bound, margin: f32) {
    let m = manifest();
    let g = tiny(q);
    let mut worst = (0f32, 0f32);
    let (mut sum_abs, mut n_vals) = (0f64, 0usize);
    for s in m["sequences"].as_array().unwrap() {
        let i = s["index"].as_u64().unwrap();
        let toks = tokens(&s["tokens"]);
        let mut model = model::load_with(g.clone(), &f32_kv(), precision).unwrap();
        let got = model.forward(&toks, Logits::All).unwrap();
        let want = npy::read_f32(fixture(&format!("gemma4-tiny/ref/{prefix}_s{i}.npy"))).unwrap();
        assert_eq!(want.shape, vec![toks.len(), model.n_vocab()]);
        let (max, mean) = diff(&got, &want.data);
        eprintln!("{q} {precision:?} vs {prefix} s{i}: max {max:.3e} mean {mean:.3e}");
        assert!(
            max <= b.max_abs,
            "{q} vs {prefix} s{i}: max {max} (≤ {})",
            b.max_abs
        );
        worst.0 = worst.0.max(max);
        sum_abs += mean as f64 * got.len() as f64;
        n_vals += got.len();
        let nv = model.n_vocab();
        // argmax must agree wherever the reference's own top-1 margin exceeds `margin`
        for t in 0..toks.len() {
            let w = &want.data[t * nv..(t + 1) * nv];
            let top = argmax(w);
            if top1_margin(w) > margin {
                let a = argmax(&got[t * nv..(t + 1) * nv]);
                assert_eq!(a, top, "{q} s{i} position {t}: argmax {a}, reference {top}");
            }
        }
    }
    // the mean bound is over all positions of all sequences, as the fixture's statistics are
    worst.1 = (sum_abs / n_vals as f64) as f32;
    eprintln!(
        "{q} vs {prefix}: max {:.3e}, mean over all positions {:.3e}",
        worst.0, worst.1
    );
    assert!(
        worst.1 <= b.mean_abs,
        "{q} vs {prefix}: mean {} (≤ {})",
        worst.1,
        b.mean_abs
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
    let mut model = Gemma4::load(tiny("f32"), &f32_kv(), Precision::Exact).unwrap();
    let got = model.hidden_states(&toks).unwrap();
    let want = npy::read_f32(fixture("gemma4-tiny/ref/hf_hidden_s3.npy")).unwrap();
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
        let mut model = model::load_with(g.clone(), &f32_kv(), Precision::Exact).unwrap();
        let nv = model.n_vocab();
        let got = model.forward(&toks, Logits::All).unwrap();
        let first = s["last128_first_position"].as_u64().unwrap() as usize;
        let want =
            npy::read_f32(fixture(&format!("gemma4-tiny/ref/hf_long_logits_l{i}.npy"))).unwrap();
        let (max, mean) = diff(&got[first * nv..], &want.data);
        eprintln!(
            "long l{i} ({} tokens) last 128: max {max:.3e} mean {mean:.3e}",
            toks.len()
        );
        assert!(
            max <= 0.01 && mean <= 0.001,
            "long l{i}: max {max} mean {mean}"
        );
        // every position: skip near-tie routing and the window after it
        let margin = s["hf_top1_margin"].as_array().unwrap();
        let hf_argmax = s["hf_argmax"].as_array().unwrap();
        let gap = s["hf_router_kth_logit_gap_min_over_layers"]
            .as_array()
            .unwrap();
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
    let want = npy::read_f32(fixture("gemma4-tiny/ref/hf_long_logits_l0.npy")).unwrap();
    let mut model = model::load_with(tiny("f32"), &f32_kv(), Precision::Exact).unwrap();
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
    let got = model
        .forward(&toks[toks.len() - 100..], Logits::All)
        .unwrap();
    let (max, _) = diff(&got, &want.data[28 * nv..]);
    assert!(max <= 0.01, "after truncate: max {max}");
    // rewinding past what the sliding cache still holds is an error, not garbage
    assert!(model.truncate(10).is_err());
    model.truncate(0).unwrap();
    assert_eq!(model.n_past(), 0);
}

/// Top-5 (id, logit) at the last prompt position vs llama.cpp (`precise`: F32 K/V cache,
/// no flash attention), held as `common::Top5Rule` says for these kernels, and the greedy
/// continuation on the fixture's `compare_prefix_len` (up to its first near-tie, top-2 margin
/// < 0.1: past one, two correct runtimes may diverge).
fn check_gemma3(precision: Precision, rule: common::Top5Rule) {
    let g = Arc::new(Gguf::open(common::gemma3_270m_path()).unwrap());
    let gen = common::gemma3_generation();
    let opts = ModelOptions {
        n_ctx: 512,
        ..f32_kv()
    };
    let mut model = model::load_with(g, &opts, precision).unwrap();
    let mut worst = 0f32;
    let mut n_greedy = 0;
    for case in gen["runs"]["precise"]["cases"].as_array().unwrap() {
        let prompt = tokens(&case["prompt_ids"]);
        model.truncate(0).unwrap();
        let logits = model.forward(&prompt, Logits::Last).unwrap();
        let top5 = common::top5(case);
        let err = rule.error(&logits, &top5);
        worst = worst.max(err);
        assert!(
            err <= rule.bound,
            "{:?}: top-5 logits {err} from llama.cpp's ({}); lode {:?}, llama.cpp {top5:?}",
            case["prompt_text"],
            rule.describe(),
            top5.iter().map(|&(id, _)| logits[id]).collect::<Vec<_>>()
        );
        let n = case["compare_prefix_len"].as_u64().unwrap() as usize;
        let want = tokens(&case["greedy48_ids"]);
        let mut next = argmax(&logits) as u32;
        for (i, &want) in want.iter().enumerate().take(n) {
            assert_eq!(next, want, "{:?} greedy token {i}", case["prompt_text"]);
            n_greedy += 1;
            next = argmax(&model.forward(&[next], Logits::Last).unwrap()) as u32;
        }
    }
    eprintln!(
        "gemma3 {precision:?}: top-5 logits within {worst:.4} of llama.cpp ({}); {n_greedy} greedy tokens equal",
        rule.describe()
    );
}

/// Precision::Kernels reproduces llama.cpp's x86 CPU arithmetic op for op (ggml's AVX2/AVX-512
/// lane order, its tiled K-quant matmul, its expf and RoPE), so the logits agree to the
/// fixture's 4 decimals. Other kernel sets (NEON, scalar) sum in another order: their top-5
/// logits measured from the top-1 within twice the gap between llama.cpp's own two runs of
/// these prompts (`common::Top5Rule`: 2 × 0.577 from generation.json).
#[test]
fn gemma3_matches_llamacpp_top5() {
    check_gemma3(Precision::Kernels, common::Top5Rule::for_these_kernels());
}

/// ggml-style arithmetic (q8_0 / q8_K activations in the SIMD kernels, float16 GELU table)
/// reproduces llama.cpp's logits for each quantized file.
#[test]
fn quantized_kernels_match_llamacpp() {
    for q in ["q8_0", "q4_0", "q4_k_m"] {
        check_sequences(
            q,
            Precision::Kernels,
            &format!("llamacpp_{q}_precise"),
            Bound {
                max_abs: 1.0,
                mean_abs: 0.05,
            },
            1.0,
        );
    }
}

/// Writes an edited copy of the tiny F32 model and tries to load it.
fn load_edited(
    tag: &str,
    edit: impl FnOnce(&mut Vec<(String, Value2)>, &mut Vec<gguf_writer::Tensor>),
) -> lode::Result<Box<dyn model::Model>> {
    let (mut kv, mut tensors) = gguf_writer::copy(&tiny("f32"));
    edit(&mut kv, &mut tensors);
    let dir = common::tmp_dir("model-test");
    let path = dir.join(format!("{tag}.gguf"));
    gguf_writer::write(&path, &kv, &tensors);
    let g = Arc::new(Gguf::open(&path).unwrap());
    let r = model::load(g, &f32_kv());
    std::fs::remove_file(&path).ok();
    r
}

/// Loading an edited copy (`load_edited(tag, edit)`) fails with an error matching the pattern.
macro_rules! assert_load_fails {
    ($tag:expr, $edit:expr, $($pattern:tt)+) => {{
        let e = load_edited($tag, $edit).err().unwrap();
        assert!(matches!(e, $($pattern)+), "{e}");
    }};
}

#[test]
fn bad_models_are_errors() {
    // the unedited copy loads (the writer itself is sound)
    assert!(load_edited("same", |_, _| {}).is_ok());

    assert_load_fails!(
        "arch",
        |kv, _| {
            for (k, v) in kv.iter_mut() {
                if k == "general.architecture" {
                    *v = Value2::String("llama".into());
                }
            }
        },
        lode::Error::UnsupportedArch(ref a) if a == "llama"
    );
    assert_load_fails!(
        "missing",
        |_, ts| ts.retain(|t| t.name != "blk.1.attn_q.weight"),
        lode::Error::MissingTensor(ref n) if n == "blk.1.attn_q.weight"
    );
    assert_load_fails!(
        "shape",
        |_, ts| {
            let t = ts
                .iter_mut()
                .find(|t| t.name == "blk.0.attn_k.weight")
                .unwrap();
            t.dims = vec![256, 64];
            t.data.truncate(256 * 64 * 4);
        },
        lode::Error::Shape { ref name, .. } if name == "blk.0.attn_k.weight"
    );
    assert_load_fails!(
        "experts",
        |_, ts| ts.retain(|t| t.name != "blk.3.ffn_gate_up_exps.weight"),
        lode::Error::MissingTensor(_)
    );
}

#[test]
fn bad_input_is_an_error_and_leaves_the_cache_alone() {
    let opts = ModelOptions {
        n_ctx: 16,
        ..f32_kv()
    };
    let mut m = model::load_with(tiny("f32"), &opts, Precision::Exact).unwrap();
    assert_eq!(m.n_ctx(), 16);
    m.forward(&[2, 10, 11], Logits::Last).unwrap();
    let e = m.forward(&[5, 512], Logits::Last).err().unwrap();
    assert!(matches!(e, lode::Error::Input(_)), "{e}");
    assert!(e.to_string().contains("512"), "{e}");
    assert!(m.forward(&[], Logits::Last).is_err());
    let e = m.forward(&[7; 14], Logits::All).err().unwrap();
    assert!(e.to_string().contains("context full"), "{e}");
    assert_eq!(m.n_past(), 3);
    assert!(m.truncate(4).is_err());
    // 13 more fit exactly
    let out = m.forward(&[7; 13], Logits::All).unwrap();
    assert_eq!(out.len(), 13 * m.n_vocab());
    assert!(m.forward(&[7], Logits::Last).is_err());
}
