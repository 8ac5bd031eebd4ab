//! `lode quantize` against the gemma4-tiny fixtures: the F32 model quantized to q4_k_m must
//! get llama-quantize's types (the fixture's Q4_K_M file, made by llama-quantize) and a
//! weight RMSE against F32 no worse than 1.05× that file's.

use lode::gguf::Gguf;
use lode::quant::model::{convert, plan_types};
use lode::quant::{dequantize_tensor, Target};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gemma4-tiny/gguf")
        .join(name)
}

fn sq_err(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum()
}

/// Σ over quantized tensors of the squared error against F32, for lode's bytes and for the
/// llama-quantize file's bytes, and the element count.
fn weight_errors(
    f32_model: &Gguf,
    reference: &Gguf,
    lode_bytes: &dyn Fn(&str) -> Vec<u8>,
) -> (f64, f64, f64) {
    let (mut ours, mut theirs, mut n) = (0.0, 0.0, 0.0);
    for t in reference.tensors() {
        let src = f32_model.require(&t.name).unwrap();
        if t.ty == src.ty {
            continue;
        }
        let ne = t.n_elements() as usize;
        let x = dequantize_tensor(src.ty, f32_model.tensor_data(src), ne).unwrap();
        let y_ref = dequantize_tensor(t.ty, reference.tensor_data(t), ne).unwrap();
        let y_lode = dequantize_tensor(t.ty, &lode_bytes(&t.name), ne).unwrap();
        ours += sq_err(&x, &y_lode);
        theirs += sq_err(&x, &y_ref);
        n += ne as f64;
    }
    (ours, theirs, n)
}

#[test]
fn q4_k_m_types_and_rmse_match_llama_quantize_in_memory() {
    let f32_model = Gguf::open(fixture("gemma4-tiny-public-f32.gguf")).unwrap();
    let reference = Gguf::open(fixture("gemma4-tiny-public-q4_k_m.gguf")).unwrap();
    let types = plan_types(&f32_model, Target::Q4KM).unwrap();
    for (t, ty) in f32_model.tensors().iter().zip(&types) {
        assert_eq!(*ty, reference.require(&t.name).unwrap().ty, "{}", t.name);
    }
    let bytes = |name: &str| {
        let (i, t) = f32_model
            .tensors()
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == name)
            .unwrap();
        convert(t, f32_model.tensor_data(t), types[i]).unwrap()
    };
    let (ours, theirs, n) = weight_errors(&f32_model, &reference, &bytes);
    let (ours, theirs) = ((ours / n).sqrt(), (theirs / n).sqrt());
    eprintln!("weight RMSE vs F32: lode {ours:.6e}, llama-quantize {theirs:.6e}");
    assert!(
        ours <= 1.05 * theirs,
        "lode {ours} vs llama-quantize {theirs}"
    );
}

#[test]
fn already_quantized_input_is_refused() {
    let q = Gguf::open(fixture("gemma4-tiny-public-q4_k_m.gguf")).unwrap();
    let e = plan_types(&q, Target::Q8_0).unwrap_err().to_string();
    assert!(e.contains("already quantized"), "{e}");
}

/// `lode quantize INPUT OUT TYPE`.
fn quantize(input: &Path, out: &Path, ty: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lode"))
        .arg("quantize")
        .args([input, out])
        .arg(ty)
        .output()
        .unwrap()
}

#[test]
fn lode_quantize_writes_the_q4_k_m_mix_with_llama_quantize_quality() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tiny-lode-q4_k_m.gguf");
    let f32_path = fixture("gemma4-tiny-public-f32.gguf");
    let o = quantize(&f32_path, &out, "q4_k_m");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = Gguf::open(&out).unwrap();
    let f32_model = Gguf::open(&f32_path).unwrap();
    let reference = Gguf::open(fixture("gemma4-tiny-public-q4_k_m.gguf")).unwrap();
    // same tensors and types as llama-quantize's file
    assert_eq!(ours.tensors().len(), reference.tensors().len());
    for t in reference.tensors() {
        let o = ours.require(&t.name).unwrap();
        assert_eq!((o.ty, &o.dims), (t.ty, &t.dims), "{}", t.name);
    }
    // metadata equal to the F32 input except file_type (and quantization_version = 2)
    let (mi, mo) = (f32_model.metadata(), ours.metadata());
    assert_eq!(mo.u32("general.file_type").unwrap(), 15);
    assert_eq!(mo.u32("general.quantization_version").unwrap(), 2);
    assert_eq!(
        mo.u32("general.file_type").unwrap(),
        reference.metadata().u32("general.file_type").unwrap()
    );
    assert_eq!(mi.len(), mo.len());
    for (k, v) in mi.iter() {
        if k != "general.file_type" && k != "general.quantization_version" {
            assert_eq!(mo.get(k), Some(v), "{k}");
        }
    }
    let bytes = |name: &str| ours.tensor_data(ours.require(name).unwrap()).to_vec();
    let (a, b, n) = weight_errors(&f32_model, &reference, &bytes);
    let (a, b) = ((a / n).sqrt(), (b / n).sqrt());
    assert!(a <= 1.05 * b, "lode {a} vs llama-quantize {b}");
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn lode_quantize_rejects_quantized_input_and_unknown_types() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = dir.join("never-written.gguf");
    let q = fixture("gemma4-tiny-public-q4_k_m.gguf");
    let o = quantize(&q, &out, "q8_0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("already quantized"),
        "{err}"
    );
    let f = fixture("gemma4-tiny-public-f32.gguf");
    let o = quantize(&f, &out, "q3_k_xl");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    for t in ["q4_0", "q8_0", "q4_k_m", "q5_k_m", "q6_k"] {
        assert!(err.contains(t), "error does not list {t}: {err}");
    }
    assert!(!out.exists());
}
