#![allow(dead_code)]
pub mod cli;
pub mod gguf_writer;
pub mod mutate;
pub mod tiny;

/// The real Gemma 3 270M Q4_K_M GGUF, fetched (or found in the cache) by scripts/fetch-model.sh.
pub fn gemma3_270m_path() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/fetch-model.sh"))
        .output()
        .expect("could not run scripts/fetch-model.sh");
    assert!(
        out.status.success(),
        "scripts/fetch-model.sh failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!path.is_empty(), "scripts/fetch-model.sh printed no path");
    std::path::PathBuf::from(path)
}
