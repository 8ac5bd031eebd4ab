#![allow(dead_code)]
pub mod cli;
pub mod gguf_writer;
pub mod mutate;
pub mod rng;
pub mod tiny;

/// A JSON array of token ids (the fixtures' `prompt_ids`, `greedy48_ids`, ...).
pub fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    json_u64s(v).into_iter().map(|x| x as u32).collect()
}

/// A JSON array of unsigned integers (tensor shapes, nanosecond samples).
pub fn json_u64s(v: &serde_json::Value) -> Vec<u64> {
    let a = v.as_array().unwrap();
    a.iter().map(|x| x.as_u64().unwrap()).collect()
}

/// A JSON array of numbers.
pub fn json_f64s(v: &serde_json::Value) -> Vec<f64> {
    let a = v.as_array().unwrap();
    a.iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The real Gemma 3 270M Q4_K_M GGUF, the path `scripts/fetch-model.sh` prints (the script honours
/// `LODE_MODEL_CACHE` and `XDG_CACHE_HOME`, and fetches the model if the cache lacks it), asked
/// once per test binary. A test that needs the model fails when it cannot be had: it never skips
/// (`scripts/test.sh` fetches the model before running the tests).
pub fn gemma3_270m_path() -> &'static std::path::Path {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-model.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .output()
            .expect("could not run scripts/fetch-model.sh");
        assert!(
            out.status.success(),
            "scripts/fetch-model.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let path = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(
            path.is_file(),
            "scripts/fetch-model.sh printed {path:?}, which is not a file"
        );
        path
    })
}

/// Whether the kernels in use reproduce llama.cpp's x86 CPU arithmetic op for op (AVX2 /
/// AVX-512 in ggml's lane order), as the fixtures were made. Other kernel sets (NEON on
/// aarch64, scalar) sum in another order: their results equal the fixtures' up to rounding, so
/// greedy text is compared up to the fixture's first near-tie and numbers within the spread
/// rounding gives.
pub fn ggml_x86_arithmetic() -> bool {
    use lode::kernels::{Isa, KernelTable};
    matches!(KernelTable::detect().isa(), Isa::Avx2 | Isa::Avx512)
}

/// The top-5 logit bound (Gemma 3 270M, against llama.cpp's x86 run) for kernel sets that sum
/// in another order than llama.cpp's x86 ones (see [`ggml_x86_arithmetic`]).
///
/// Taken from the reference alone: llama.cpp's own two runs of each prompt in generation.json
/// (`precise`: F32 K/V, no flash attention; `default`: F16 K/V, flash attention) put their
/// rounding in different places and disagree by up to 0.4838 on the same top-5 logits (chat
/// "Q: What is 12 * 7?", top-1). A kernel set with another summation order is a change of the
/// same kind: if each correct run is within that gap of the exact value, two correct runs are
/// within twice the gap of each other. So: 2 × 0.4838 = 0.968, computed here from the fixture.
pub fn other_isa_top5_bound() -> f32 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gemma3-270m/generation.json"
    );
    let gen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = |run: &str| gen["runs"][run]["cases"].as_array().unwrap().clone();
    let top5 = |case: &serde_json::Value| -> Vec<(u64, f64)> {
        case["top5_last_prompt_position"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_u64().unwrap(), t["logit"].as_f64().unwrap()))
            .collect()
    };
    let mut gap = 0f64;
    for (a, b) in cases("default").iter().zip(&cases("precise")) {
        assert_eq!(
            a["prompt_text"], b["prompt_text"],
            "generation.json: case order"
        );
        let b = top5(b);
        for (id, la) in top5(a) {
            if let Some(&(_, lb)) = b.iter().find(|&&(i, _)| i == id) {
                gap = gap.max((la - lb).abs());
            }
        }
    }
    assert!(gap > 0.0, "generation.json: no top-5 id in both runs");
    (2.0 * gap) as f32
}
