//! `lode synth`: synthetic weights have the intended statistics (checked by dequantizing
//! them with lode's reference dequantizers, which tests/quant.rs checks against the `gguf`
//! Python package), for the tensor list and Q4_K_M type mix of the gemma4-tiny fixture.

use lode::gguf::{GgmlType, Gguf, TensorInfo};
use lode::quant::{dequantize_tensor, TensorDesc};
use lode::synth::weights::{Plan, Routing, SynthOptions, EMBD_RMS, OUTPUT_NORM_MEAN};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gemma4-tiny/gguf")
        .join(name)
}

fn mean_std(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn desc(t: &TensorInfo) -> TensorDesc<'_> {
    TensorDesc {
        name: &t.name,
        ne: &t.dims,
        ty: t.ty,
    }
}

/// Checks every tensor of a synthesized model against the statistics the synth design
/// promises; `get` returns the dequantized tensor.
fn check_statistics(
    tensors: &[TensorInfo],
    n_embd: usize,
    n_common: usize,
    get: impl Fn(&TensorInfo) -> Vec<f32>,
) {
    for t in tensors {
        let y = get(t);
        assert!(
            y.iter().all(|v| v.is_finite()) || t.name == "rope_freqs.weight",
            "{}",
            t.name
        );
        let ne0 = t.dims[0] as usize;
        let name = t.name.as_str();
        let (mean, std) = mean_std(&y);
        if name == "token_embd.weight" {
            // token part: centred, RMS 0.2 after √d; common part identical in every row
            let sigma = EMBD_RMS as f64 / (n_embd as f64).sqrt();
            let token: Vec<f32> = y.chunks(ne0).flat_map(|r| r[n_common..].to_vec()).collect();
            let (m, s) = mean_std(&token);
            assert!(m.abs() < 0.05 * sigma, "{name}: mean {m}");
            assert!((s / sigma - 1.0).abs() < 0.1, "{name}: std {s} vs {sigma}");
            let first = &y[..n_common];
            for r in y.chunks(ne0) {
                assert_eq!(
                    &r[..n_common],
                    first,
                    "{name}: common part differs between rows"
                );
            }
            let rms = (first.iter().map(|v| v * v).sum::<f32>() / n_common as f32).sqrt();
            assert!(
                (rms * (n_embd as f32).sqrt() - 1.0).abs() < 0.05,
                "{name}: common rms {rms}"
            );
        } else if name.ends_with("ffn_gate_inp.weight") {
            // router: the token-dependent part gives logits of std ≈ π/√6 for unit input
            let noise: Vec<f32> = y.chunks(ne0).flat_map(|r| r[n_common..].to_vec()).collect();
            let (m, s) = mean_std(&noise);
            assert!(m.abs() < 0.1 * s, "{name}: mean {m}");
            assert!(s > 1.0 && s < 2.0, "{name}: std {s}");
        } else if t.dims.len() >= 2 && t.dims[1] > 1 {
            let target = 1.0 / (ne0 as f64).sqrt();
            assert!(
                mean.abs() < 0.02 * target,
                "{name}: mean {mean} (std target {target})"
            );
            assert!(
                (std / target - 1.0).abs() < 0.1,
                "{name}: std {std}, target {target}"
            );
        } else if name == "output_norm.weight" {
            assert!(
                (mean / OUTPUT_NORM_MEAN as f64 - 1.0).abs() < 0.05,
                "{name}: {mean}"
            );
        } else if name.ends_with("attn_q_norm.weight") || name.ends_with("attn_k_norm.weight") {
            let target = (ne0 as f64).powf(-0.25);
            assert!(
                (mean / target - 1.0).abs() < 0.05,
                "{name}: {mean} vs {target}"
            );
        } else if name.ends_with("post_attention_norm.weight")
            || name.ends_with("post_ffw_norm.weight")
        {
            assert!(
                y[..n_common].iter().all(|&v| v == 0.0),
                "{name}: writes the common part"
            );
            let (m, _) = mean_std(&y[n_common..]);
            assert!((m - 1.0).abs() < 0.05, "{name}: {m}");
        } else if name == "rope_freqs.weight" {
            assert!(
                y[..ne0 / 4].iter().all(|&v| v == 1.0) && y[ne0 / 4..].iter().all(|&v| v > 1e29)
            );
        } else {
            assert!((mean - 1.0).abs() < 0.15, "{name}: mean {mean}");
        }
    }
}

#[test]
fn weights_for_the_tiny_q4_k_m_mix_have_the_intended_statistics() {
    // The fixture's tensor list and llama-quantize's Q4_K_M types (Q4_K, Q5_K, Q6_K, Q5_0,
    // Q8_0, F32), filled in memory.
    let g = Gguf::open(fixture("gemma4-tiny-public-q4_k_m.gguf")).unwrap();
    let descs: Vec<TensorDesc> = g.tensors().iter().map(desc).collect();
    for routing in [Routing::Uniform, Routing::Zipf(1.0)] {
        let plan = Plan::new(g.metadata(), &descs, SynthOptions { routing, seed: 42 }).unwrap();
        check_statistics(g.tensors(), 256, plan.n_common(), |t| {
            let mut bytes = vec![0u8; t.n_bytes as usize];
            plan.fill(&desc(t), &mut bytes).unwrap();
            dequantize_tensor(t.ty, &bytes, t.n_elements() as usize).unwrap()
        });
    }
    let types: std::collections::BTreeSet<_> = g.tensors().iter().map(|t| t.ty.name()).collect();
    assert!(
        types.len() >= 5 && types.contains(GgmlType::Q5K.name()),
        "{types:?}"
    );
}

/// The fixture's metadata and tensor list (llama-quantize's Q4_K_M mix) as a synth spec.
fn tiny_spec() -> (lode::gguf::Metadata, Vec<lode::gguf::TensorDesc>) {
    let g = Gguf::open(fixture("gemma4-tiny-public-q4_k_m.gguf")).unwrap();
    let tensors = g
        .tensors()
        .iter()
        .map(|t| lode::gguf::TensorDesc::new(t.name.clone(), t.ty, &t.dims).unwrap())
        .collect();
    (g.metadata().clone(), tensors)
}

#[test]
fn written_tiny_model_reopens_with_the_spec_tensors_and_statistics() {
    let (md, spec) = tiny_spec();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synth-tiny-zipf.gguf");
    let opts = SynthOptions {
        routing: Routing::Zipf(1.0),
        seed: 7,
    };
    let report = lode::synth::write_model(&md, &spec, None, &out, opts, None).unwrap();
    assert_eq!(report.n_tensors, spec.len());
    let g = Gguf::open(&out).unwrap();
    assert_eq!(g.tensors().len(), spec.len());
    for (t, s) in g.tensors().iter().zip(&spec) {
        assert_eq!((&t.name, t.ty, &t.dims), (&s.name, s.ty, &s.dims));
    }
    for (k, v) in md.iter() {
        assert_eq!(g.metadata().get(k), Some(v), "{k}");
    }
    let n_common = 16; // n_embd / 16
    check_statistics(g.tensors(), 256, n_common, |t| {
        dequantize_tensor(t.ty, g.tensor_data(t), t.n_elements() as usize).unwrap()
    });
    // --layers 2: fewer blocks, per-layer arrays cut, same types for the kept layers
    let out2 = out.with_file_name("synth-tiny-2.gguf");
    lode::synth::write_model(&md, &spec, Some(2), &out2, opts, None).unwrap();
    let g2 = Gguf::open(&out2).unwrap();
    assert_eq!(g2.metadata().u32("gemma4.block_count").unwrap(), 2);
    assert_eq!(
        g2.metadata()
            .array("gemma4.attention.sliding_window_pattern")
            .unwrap()
            .len(),
        2
    );
    assert!(g2.tensors().iter().all(|t| !t.name.starts_with("blk.2.")));
    assert!(g2.tensor("blk.1.ffn_down_exps.weight").is_some());
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&out2).unwrap();
}
