//! Bad input through the built binary: each case must end with one clear `lode: error: ...`
//! line on stderr and a non-zero exit, never a panic. Uses the tiny Gemma 4 fixture (fast) and
//! broken copies of it written by `common::cli::rewrite` (through lode's own GGUF writer).

mod common;

use std::process::Command;

use common::cli::{fails_with, tmp_dir, with_value, without_tensor};
use lode::gguf::Value;

const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-f32.gguf"
);

// ---- the cases ----

#[test]
fn missing_model_file() {
    fails_with(
        &["run", "-m", "/nonexistent/model.gguf", "-p", "hi"],
        &["/nonexistent/model.gguf"],
    );
    fails_with(
        &["tokenize", "-m", "/nonexistent/model.gguf", "hi"],
        &["/nonexistent/model.gguf"],
    );
}

#[test]
fn not_a_gguf_file() {
    let d = tmp_dir("notgguf");
    let p = d.join("x.gguf");
    std::fs::write(&p, b"definitely not a gguf file").unwrap();
    fails_with(&["run", "-m", p.to_str().unwrap(), "-p", "hi"], &["x.gguf"]);
}

#[test]
fn non_utf8_prompt_file() {
    let d = tmp_dir("utf8");
    let p = d.join("prompt.txt");
    std::fs::write(&p, b"caf\xe9 au lait").unwrap(); // Latin-1, not UTF-8
    fails_with(
        &["run", "-m", TINY, "-f", p.to_str().unwrap()],
        &["prompt.txt", "not valid UTF-8", "offset 3"],
    );
    fails_with(
        &["perplexity", "-m", TINY, "-f", p.to_str().unwrap()],
        &["not valid UTF-8"],
    );
}

#[test]
fn unsupported_architecture() {
    let d = tmp_dir("arch");
    let p = d.join("llama.gguf");
    with_value(
        TINY,
        &p,
        "general.architecture",
        Value::String("llama".into()),
    );
    fails_with(
        &["run", "-m", p.to_str().unwrap(), "-p", "hi", "-n", "1"],
        &["unsupported architecture", "llama"],
    );
}

#[test]
fn missing_tensor() {
    let d = tmp_dir("tensor");
    let p = d.join("broken.gguf");
    without_tensor(TINY, &p, "blk.1.attn_q.weight");
    fails_with(
        &["run", "-m", p.to_str().unwrap(), "-p", "hi", "-n", "1"],
        &["blk.1.attn_q.weight"],
    );
}

#[test]
fn prompt_longer_than_context() {
    let prompt = "one two three four five six seven eight nine ten eleven twelve";
    let line = fails_with(
        &["run", "-m", TINY, "-p", prompt, "-n", "1", "--ctx", "8"],
        &["context holds 8"],
    );
    // Both numbers: the prompt's length too.
    assert!(line.contains("the prompt is "), "{line}");
}

#[test]
fn token_id_out_of_range() {
    let d = tmp_dir("range");
    let out = d.join("l.npy");
    fails_with(
        &[
            "logits",
            "-m",
            TINY,
            "--tokens",
            "2,999999",
            "--out",
            out.to_str().unwrap(),
        ],
        &["999999", "out of range", "512"],
    );
    assert!(!out.exists());
    fails_with(
        &[
            "logits",
            "-m",
            TINY,
            "--tokens",
            "2,x7",
            "--out",
            out.to_str().unwrap(),
        ],
        &["x7"],
    );
}

#[test]
fn bad_sampling_values() {
    fails_with(
        &["run", "-m", TINY, "-p", "hi", "--top-p", "1.5"],
        &["top-p"],
    );
}

/// `lode logits` on the tiny F32 model vs transformers' logits (fixture sequence 1), fed in
/// batches of 3 so the chunked prefill is exercised too. Tolerance: the fixture's suggested
/// bound for f32 weights with ggml-style arithmetic (max 0.05).
#[test]
fn logits_match_transformers_on_the_tiny_model() {
    let d = tmp_dir("logits");
    let out = d.join("l.npy");
    let st = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(["logits", "-m", TINY, "--batch", "3"])
        .args(["--tokens", "2,433,497,101,208,167,475"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let got = lode::npy::read_f32(&out).unwrap();
    let want = lode::npy::read_f32(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gemma4-tiny/ref/hf_logits_s1.npy"
    ))
    .unwrap();
    assert_eq!(got.shape, [7, 512]);
    assert_eq!(got.shape, want.shape);
    let max = got
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 0.05, "max |lode - transformers| = {max}");
}
