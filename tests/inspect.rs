//! `lode inspect` as a user runs it (the built binary): its JSON against the gguf-py dumps, its
//! error line on bad files, and the parameter/byte accounting of a 26B-A4B-shaped sparse file
//! against gemma4.md §1.3/§1.4.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as J;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn inspect_json(path: &Path, extra: &[&str]) -> J {
    let out = Command::new(env!("CARGO_BIN_EXE_lode"))
        .arg("inspect")
        .arg("--json")
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lode inspect {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_matches_gguf_py_dump() {
    for name in ["gemma4-tiny-public-q4_k_m", "gemma4-tiny-public-f16"] {
        let path = fixtures().join(format!("gemma4-tiny/gguf/{name}.gguf"));
        let got = inspect_json(&path, &[]);
        let dump: J = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("gguf-dumps/{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(got["architecture"], "gemma4");
        let md = got["metadata"].as_object().unwrap();
        let want_md = dump["metadata"].as_array().unwrap();
        assert_eq!(md.len(), want_md.len(), "{name}: key count");
        for m in want_md {
            let key = m["key"].as_str().unwrap();
            let v = &md[key];
            let w = &m["value"];
            // Floats: compare at f32 precision (both sides hold the same f32, widened).
            let same = match (v, w) {
                (J::Number(a), J::Number(b)) if m["type"] == "FLOAT32" => {
                    a.as_f64().unwrap() as f32 == b.as_f64().unwrap() as f32
                }
                (J::Array(a), J::Array(b)) if m["elem_type"] == "FLOAT32" => a
                    .iter()
                    .zip(b)
                    .all(|(x, y)| x.as_f64().unwrap() as f32 == y.as_f64().unwrap() as f32),
                _ => v == w,
            };
            assert!(same, "{name}: `{key}`: lode {v}, gguf-py {w}");
        }
        let t = got["tensors"].as_array().unwrap();
        let wt = dump["tensors"].as_array().unwrap();
        assert_eq!(t.len(), wt.len());
        for (a, b) in t.iter().zip(wt) {
            for (ka, kb) in [
                ("name", "name"),
                ("type", "type"),
                ("shape", "shape"),
                ("offset", "offset"),
                ("bytes", "n_bytes"),
            ] {
                assert_eq!(a[ka], b[kb], "{name}: {} {ka}", b["name"]);
            }
        }
        let want_ft = if name.ends_with("f16") {
            "MOSTLY_F16"
        } else {
            "MOSTLY_Q4_K_M"
        };
        assert_eq!(got["file_type"], want_ft);
        let total: u64 = wt.iter().map(|t| t["n_bytes"].as_u64().unwrap()).sum();
        assert_eq!(got["bytes"]["total"].as_u64().unwrap(), total);
        // The tiny model: hidden 256, 8 experts, top-2 (tests/fixtures/gemma4-tiny/README.md).
        assert_eq!(got["summary"]["n_expert"], 8);
        assert_eq!(got["summary"]["n_expert_used"], 2);
        assert_eq!(
            got["summary"]["global"]["layers"],
            serde_json::json!([2, 4])
        );
    }
}

#[test]
fn bad_files_give_one_error_line() {
    let dir = std::env::temp_dir().join(format!("lode-inspect-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes =
        std::fs::read(fixtures().join("gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.gguf", bytes[..bytes.len() / 2].to_vec()),
        ("not-gguf.gguf", b"hello world, not a model".to_vec()),
    ];
    for (name, data) in cases {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_lode"))
            .args(["inspect"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}: exit status {}", out.status);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("lode: error: "), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(
            err.contains(name) && err.contains("at byte"),
            "{name}: {err}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(["inspect"])
        .arg(dir.join("missing.gguf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
