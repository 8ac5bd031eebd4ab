//! Issue #4's bad-input list through the built binary, on every subcommand that takes that
//! input and on both architectures (the real Gemma 3 270M and the tiny Gemma 4): one
//! `lode: error:` line on stderr (and, where no status line precedes it, nothing else), exit
//! code 1, never a panic. tests/cli.rs has the first case of each; this file covers the rest.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use common::cli::{fails_alone, fails_with, fails_with_os, tmp_dir, with_value, without_tensor};
use lode::gguf::Value;

const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf"
);
const PPL_TEXT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gemma3-270m/ppl_text.txt"
);

fn gemma3() -> String {
    common::gemma3_270m_path().to_str().unwrap().to_string()
}

fn renamed_arch(src: &str, dst: &std::path::Path, arch: &str) {
    with_value(src, dst, "general.architecture", Value::String(arch.into()));
}

#[test]
fn unsupported_architecture_everywhere() {
    let d = tmp_dir("arch-all");
    let p = d.join("mamba.gguf");
    renamed_arch(TINY, &p, "mamba");
    let m = p.to_str().unwrap();
    let out = d.join("l.npy");
    let o = out.to_str().unwrap();
    for args in [
        vec!["run", "-m", m, "-p", "hi", "-n", "1"],
        vec!["run", "-m", m, "-p", "hi", "-n", "1", "--chat"],
        vec!["logits", "-m", m, "--tokens", "2,3", "--out", o],
        vec!["perplexity", "-m", m, "-f", PPL_TEXT, "--ctx", "64"],
        vec!["chat", "-m", m],
    ] {
        fails_alone(&args, &["unsupported architecture", "mamba"]);
    }
    assert!(!out.exists());
}

/// Gemma 3's loader (a different file from Gemma 4's) names the tensor too; so does every
/// subcommand that loads weights.
#[test]
fn missing_tensor_gemma3_and_every_loader() {
    let d = tmp_dir("tensor-all");
    let g3 = d.join("gemma3-no-attn-k.gguf");
    without_tensor(&gemma3(), &g3, "blk.5.attn_k.weight");
    let m = g3.to_str().unwrap();
    let out = d.join("l.npy");
    let o = out.to_str().unwrap();
    for args in [
        vec!["run", "-m", m, "-p", "hi", "-n", "1"],
        vec!["logits", "-m", m, "--tokens", "2,3", "--out", o],
        vec!["perplexity", "-m", m, "-f", PPL_TEXT, "--ctx", "64"],
        vec!["chat", "-m", m],
    ] {
        fails_alone(&args, &["blk.5.attn_k.weight"]);
    }
    std::fs::remove_file(&g3).unwrap();

    let g4 = d.join("gemma4-no-router.gguf");
    without_tensor(TINY, &g4, "blk.0.ffn_gate_inp.weight");
    let m = g4.to_str().unwrap();
    for args in [
        vec!["logits", "-m", m, "--tokens", "2,3", "--out", o],
        vec!["perplexity", "-m", m, "-f", PPL_TEXT, "--ctx", "64"],
    ] {
        fails_with(&args, &["blk.0.ffn_gate_inp.weight"]);
    }
    assert!(!out.exists());
}

#[test]
fn prompt_longer_than_context_everywhere() {
    let g3 = gemma3();
    // The chat prompt for "hello" is 10 tokens on Gemma 3 (llama.cpp's template ids).
    fails_alone(
        &[
            "run", "-m", &g3, "-p", "hello", "--chat", "--ctx", "8", "-n", "1",
        ],
        // the library's error names no flag; the binary adds the one that helps
        &[
            "the prompt is 10 tokens",
            "context holds 8",
            "; raise --ctx",
        ],
    );
    fails_alone(
        &["run", "-m", &g3, "-f", PPL_TEXT, "--ctx", "64", "-n", "1"],
        &["the prompt is 1195 tokens", "context holds 64"],
    );
    let d = tmp_dir("ctx-all");
    let out = d.join("l.npy");
    fails_alone(
        &[
            "logits",
            "-m",
            &g3,
            "--tokens",
            "2,818,5279,529,7001",
            "--ctx",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        &["5 tokens", "context holds 4"],
    );
    assert!(!out.exists());
    // Perplexity needs two chunks of the context: checked before the model loads, so the
    // error is the only line (no "perplexity over 0 chunks" status first).
    fails_alone(
        &["perplexity", "-m", &g3, "-f", PPL_TEXT, "--ctx", "4096"],
        &["at least 8192 tokens", "the text has 1195"],
    );
    fails_alone(
        &["perplexity", "-m", &g3, "-f", PPL_TEXT, "--ctx", "1"],
        &[
            "a context of 1 tokens is too small (at least 4)",
            "raise --ctx",
        ],
    );
}

#[test]
fn token_ids_out_of_range_or_malformed() {
    let g3 = gemma3();
    let d = tmp_dir("ids-all");
    let out = d.join("l.npy");
    let o = out.to_str().unwrap();
    // Gemma 3's vocabulary has 262144 tokens: the first id past it.
    fails_alone(
        &["logits", "-m", &g3, "--tokens", "2,262144", "--out", o],
        &["262144", "out of range", "0..262143"],
    );
    fails_alone(
        &["logits", "-m", &g3, "--tokens", "999999", "--out", o],
        &["999999", "out of range"],
    );
    for bad in ["-1", "4294967296", "1.5", "0x10"] {
        let ids = format!("2,{bad}");
        fails_alone(
            &["logits", "-m", &g3, "--tokens", &ids, "--out", o],
            &[&format!("`{bad}` is not a token id")],
        );
    }
    fails_alone(
        &["logits", "-m", &g3, "--tokens", " , ", "--out", o],
        &["no token ids"],
    );
    assert!(!out.exists());
}

#[test]
fn non_utf8_prompt_file_and_arguments() {
    let g3 = gemma3();
    let d = tmp_dir("utf8-all");
    let p = d.join("latin1.txt");
    std::fs::write(&p, b"na\xefve caf\xe9").unwrap(); // Latin-1, not UTF-8
    let f = p.to_str().unwrap();
    for args in [
        vec!["run", "-m", &g3, "-f", f, "-n", "1"],
        vec!["run", "-m", &g3, "-f", f, "-n", "1", "--chat"],
        vec!["perplexity", "-m", &g3, "-f", f],
    ] {
        fails_alone(&args, &["latin1.txt", "not valid UTF-8", "offset 2"]);
    }
    // A truncated multi-byte character at the very end.
    std::fs::write(&p, "ok \u{e9}".as_bytes().split_last().unwrap().1).unwrap();
    fails_alone(
        &["run", "-m", &g3, "-f", f, "-n", "1"],
        &["not valid UTF-8", "offset 3"],
    );
    // The same text given on the command line: one line too, not clap's usage block.
    let os = |s: &str| OsString::from(s);
    let bad = OsString::from_vec(b"caf\xe9".to_vec());
    let (line, stderr) = fails_with_os(
        &[
            os("run"),
            os("-m"),
            os(&g3),
            os("-p"),
            bad.clone(),
            os("-n"),
            os("1"),
        ],
        &["prompt", "not valid UTF-8", "offset 3"],
    );
    assert_eq!(stderr.trim_end(), line);
    let (line, stderr) = fails_with_os(
        &[os("tokenize"), os("-m"), os(&g3), bad],
        &["TEXT", "not valid UTF-8", "offset 3"],
    );
    assert_eq!(stderr.trim_end(), line);
}
