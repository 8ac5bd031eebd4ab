#![allow(dead_code)]
pub mod cli;
pub mod gguf_writer;
pub mod mutate;
pub mod rng;
pub mod tiny;

/// A JSON array of token ids (the fixtures' `prompt_ids`, `greedy48_ids`, ...).
pub fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
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
