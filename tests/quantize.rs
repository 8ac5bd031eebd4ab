//! `lode quantize` against the gemma4-tiny fixtures: the F32 model quantized to q4_k_m must
//! get llama-quantize's types (the fixture's Q4_K_M file, made by llama-quantize) and a
//! weight RMSE against F32 no worse than 1.05× that file's.

use lode::gguf::Gguf;
use lode::quant::model::{convert, plan_types};
use lode::quant::{dequantize_tensor, Target};
use std::path::PathBuf;

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
