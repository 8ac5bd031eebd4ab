//! `lode inspect` as a user runs it (the built binary): its JSON against the gguf-py dumps, its
//! error line on bad files, and the parameter/byte accounting of a 26B-A4B-shaped sparse file
//! against docs/gemma4.md §1.3/§1.4.

mod common;

use common::cli::inspect_json;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as J;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
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
    let dir = common::tmp_dir("inspect-bad");
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

mod synth_gemma4 {
    use super::*;
    use lode::synth::gemma4::Gemma4Shape;
    use lode::synth::Recipe;

    /// The tiny spec against the tiny fixture files, which llama.cpp's converter (F32) and
    /// llama-quantize (Q4_K_M) made: same names, order, shapes, per-tensor types, offsets.
    #[test]
    fn tiny_spec_matches_llama_cpp_files() {
        for (recipe, file) in [
            (Recipe::F32, "gemma4-tiny-public-f32"),
            (Recipe::Q4KM, "gemma4-tiny-public-q4_k_m"),
        ] {
            let spec = Gemma4Shape::tiny().spec(recipe).unwrap();
            let dump: J = serde_json::from_str(
                &std::fs::read_to_string(fixtures().join(format!("gguf-dumps/{file}.json")))
                    .unwrap(),
            )
            .unwrap();
            let mut want: Vec<&J> = dump["tensors"].as_array().unwrap().iter().collect();
            assert_eq!(spec.tensors.len(), want.len(), "{file}");
            // llama-quantize writes the global tensors, then each layer's sorted by name; the
            // converter's F32 file keeps Hugging Face's order, so compare it by name.
            let sorted = recipe == Recipe::Q4KM;
            if !sorted {
                let pos = |n: &str| {
                    spec.tensors
                        .iter()
                        .position(|t| t.name == n)
                        .unwrap_or(usize::MAX)
                };
                want.sort_by_key(|w| pos(w["name"].as_str().unwrap()));
            }
            let mut offset = 0u64;
            for (t, w) in spec.tensors.iter().zip(want) {
                assert_eq!(t.name, w["name"].as_str().unwrap(), "{file}: order");
                let shape = common::json_u64s(&w["shape"]);
                assert_eq!(t.dims, shape, "{file}: {}", t.name);
                assert_eq!(
                    t.ty.name(),
                    w["type"].as_str().unwrap(),
                    "{file}: type of {}",
                    t.name
                );
                if sorted {
                    assert_eq!(
                        offset,
                        w["offset"].as_u64().unwrap(),
                        "{file}: offset of {}",
                        t.name
                    );
                }
                offset = (offset + t.n_bytes).div_ceil(32) * 32;
            }
            // Every architecture key of the real file, with the same value.
            for m in dump["metadata"].as_array().unwrap() {
                let key = m["key"].as_str().unwrap();
                if key.starts_with("gemma4.") {
                    let got = spec
                        .metadata
                        .get(key)
                        .unwrap_or_else(|| panic!("spec lacks `{key}`"));
                    assert_eq!(got.type_name(), m["type"].as_str().unwrap(), "`{key}`");
                    let (g, w) = (got.to_json(), &m["value"]);
                    let same = match (g.as_f64(), w.as_f64()) {
                        (Some(a), Some(b)) => a as f32 == b as f32,
                        _ => &g == w,
                    };
                    assert!(same, "`{key}`: spec {g}, file {w}");
                }
            }
        }
    }

    /// docs/gemma4.md §1.3: 25,233,142,046 parameters, ≈3.82 B active per token (incl. the tied LM
    /// head); §1.4: ≈2.57 GB read per token with the Q4_K_M recipe.
    #[test]
    fn sparse_26b_a4b_inspect_reports_25b_total_3_8b_active() {
        let dir = common::tmp_dir("inspect-26b");
        let path = dir.join("gemma4-26b-a4b-q4_k_m-sparse.gguf");
        let spec = Gemma4Shape::b26_a4b().spec(Recipe::Q4KM).unwrap();
        spec.write_sparse(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        {
            use std::os::unix::fs::MetadataExt;
            let on_disk = meta.blocks() * 512;
            eprintln!(
                "sparse file: {} bytes long, {} bytes on disk",
                meta.len(),
                on_disk
            );
            assert!(meta.len() > 15_000_000_000);
            assert!(on_disk < 64 << 20, "not sparse: {on_disk} bytes on disk");
        }

        let j = inspect_json(&path, &["--ctx", "32768"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            j["tensors"].as_array().unwrap().len(),
            658,
            "docs/gemma4.md §2.2 tensor count"
        );
        assert_eq!(j["file_type"], "MOSTLY_Q4_K_M");
        let p = &j["params"];
        let b = &j["bytes"];
        let get = |v: &J, k: &str| v[k].as_u64().unwrap();
        let (total, active) = (get(p, "total"), get(p, "active_per_token"));
        eprintln!(
            "params: total {total}, always active {}, experts {}, active/token {active}",
            get(p, "always_active"),
            get(p, "experts")
        );
        eprintln!(
            "bytes: total {}, always active {}, experts {}, active/token {}",
            get(b, "total"),
            get(b, "always_active"),
            get(b, "experts"),
            get(b, "active_per_token")
        );
        let within = |got: u64, want: f64, tol: f64| ((got as f64 - want) / want).abs() <= tol;
        assert!(within(total, 25_233_142_046.0, 0.01), "total {total}");
        assert!(within(active, 3.82e9, 0.01), "active {active}");
        // One expert = 5,947,392 params × 128 × 30 layers (§1.3), exactly.
        assert_eq!(get(p, "experts"), 22_837_985_280);
        // §1.4: ≈2.57 GB per token for the default Q4_K_M recipe (its router is BF16 there,
        // F32 here: +0.02 GB), and a 16.8 GB file.
        let per_token = get(b, "active_per_token") as f64;
        assert!(
            (2.5e9..2.7e9).contains(&per_token),
            "bytes per token {per_token}"
        );
        assert!(
            within(get(b, "total"), 16.8e9, 0.03),
            "file bytes {}",
            get(b, "total")
        );
        // §4: f16 KV at 32 K = 20,480·T + 204,800·1024 bytes.
        assert_eq!(
            j["kv_cache"]["bytes"].as_u64().unwrap(),
            20_480 * 32_768 + 204_800 * 1024
        );
        let s = &j["summary"];
        assert_eq!(
            s["global"]["layers"],
            serde_json::json!([5, 11, 17, 23, 29])
        );
        assert_eq!(
            (
                s["sliding"]["n_head_kv"].as_u64(),
                s["global"]["n_head_kv"].as_u64()
            ),
            (Some(8), Some(2))
        );
        assert_eq!(
            (
                s["sliding"]["head_dim_k"].as_u64(),
                s["global"]["head_dim_k"].as_u64()
            ),
            (Some(256), Some(512))
        );
        assert_eq!(s["vocab_size"], 262_144);
        assert_eq!(s["chat_template"], true);
    }
}
