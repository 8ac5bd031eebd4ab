//! lode's view of real GGUF files against dumps made by the Python `gguf` package
//! (`scripts/fixtures/dump_gguf.py`, committed under tests/fixtures/gguf-dumps/).
//!
//! Every metadata key (in file order, with its type) and value, every tensor's name, type,
//! shape and data offset must agree. Arrays longer than the dump's threshold are compared by the
//! sha256 of their canonical JSON (Python's `json.dumps(v, separators=(",", ":"),
//! ensure_ascii=False)`), which this file re-creates byte for byte from lode's values.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use lode::gguf::{Array, Gguf, Value};
use serde_json::Value as J;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load_dump(name: &str) -> J {
    let p = fixtures().join("gguf-dumps").join(format!("{name}.json"));
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}

/// Python's `repr(float)`: shortest round-trip digits, scientific when the decimal exponent is
/// below -4 or at least 16, exponent with a sign and at least two digits, `.0` on integers.
fn py_float_repr(x: f64) -> String {
    assert!(x.is_finite(), "non-finite float {x} has no JSON form");
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{x:e}"); // e.g. "-1.5e3", "1e-6"
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let m = if digits.len() == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        let es = if exp < 0 { "-" } else { "+" };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    let s = if exp < 0 {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else if exp + 1 >= n {
        format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
    } else {
        let p = (exp + 1) as usize;
        format!("{}.{}", &digits[..p], &digits[p..])
    };
    format!("{sign}{s}")
}

/// Python's `json.dumps(a, ensure_ascii=False, separators=(",", ":"))` for a metadata array.
/// Strings: serde_json escapes exactly what Python's does without `ensure_ascii` (`"`, `\\`,
/// and the control characters below U+0020, as `\n`-style or lowercase `\u00xx` escapes).
fn canonical_json(a: &Array) -> String {
    let items: Vec<String> = match (a.to_i128_vec(), a) {
        (Some(ints), _) => ints.iter().map(i128::to_string).collect(),
        (None, Array::Bool(v)) => v.iter().map(bool::to_string).collect(),
        (None, Array::F32(v)) => v.iter().map(|&x| py_float_repr(x as f64)).collect(),
        (None, Array::F64(v)) => v.iter().map(|&x| py_float_repr(x)).collect(),
        (None, Array::String(v)) => v
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect(),
        (None, _) => panic!("arrays of arrays are not in the dumps"),
    };
    format!("[{}]", items.join(","))
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum (coreutils) is needed for the hashed-array comparison");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// One JSON scalar from the dump against lode's value (floats compared as the stored width).
fn scalar_eq(key: &str, want: &J, got: &Value) {
    let ok = match got {
        Value::F32(x) => want.as_f64().map(|w| w as f32) == Some(*x),
        Value::F64(x) => want.as_f64() == Some(*x),
        Value::Bool(b) => want.as_bool() == Some(*b),
        Value::String(s) => want.as_str() == Some(s.as_str()),
        v => {
            let i = v.as_i128().unwrap();
            want.as_i64().map(|w| w as i128) == Some(i)
                || want.as_u64().map(|w| w as i128) == Some(i)
        }
    };
    assert!(ok, "`{key}`: gguf-py has {want}, lode has {got}");
}

fn array_items(a: &Array) -> Vec<Value> {
    match a {
        Array::U8(v) => v.iter().map(|&x| Value::U8(x)).collect(),
        Array::I8(v) => v.iter().map(|&x| Value::I8(x)).collect(),
        Array::U16(v) => v.iter().map(|&x| Value::U16(x)).collect(),
        Array::I16(v) => v.iter().map(|&x| Value::I16(x)).collect(),
        Array::U32(v) => v.iter().map(|&x| Value::U32(x)).collect(),
        Array::I32(v) => v.iter().map(|&x| Value::I32(x)).collect(),
        Array::U64(v) => v.iter().map(|&x| Value::U64(x)).collect(),
        Array::I64(v) => v.iter().map(|&x| Value::I64(x)).collect(),
        Array::F32(v) => v.iter().map(|&x| Value::F32(x)).collect(),
        Array::F64(v) => v.iter().map(|&x| Value::F64(x)).collect(),
        Array::Bool(v) => v.iter().map(|&x| Value::Bool(x)).collect(),
        Array::String(v) => v.iter().map(|x| Value::String(x.clone())).collect(),
        Array::Array(v) => v.iter().map(|x| Value::Array(x.clone())).collect(),
    }
}

fn compare(path: &Path, dump: &J) -> (usize, usize, usize) {
    let g = Gguf::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.display();
    assert_eq!(
        g.version() as u64,
        dump["version"].as_u64().unwrap(),
        "{name}: version"
    );
    assert_eq!(
        g.alignment(),
        dump["alignment"].as_u64().unwrap(),
        "{name}: alignment"
    );
    assert_eq!(
        g.files()[0].data_offset,
        dump["data_offset"].as_u64().unwrap(),
        "{name}: data section offset"
    );

    // Metadata: same keys, same order, same types, same values.
    let want_md = dump["metadata"].as_array().unwrap();
    let got_md: Vec<(&str, &Value)> = g.metadata().iter().collect();
    let want_keys: Vec<&str> = want_md.iter().map(|m| m["key"].as_str().unwrap()).collect();
    let got_keys: Vec<&str> = got_md.iter().map(|(k, _)| *k).collect();
    assert_eq!(got_keys, want_keys, "{name}: metadata keys");
    let mut hashed = 0;
    for (m, (key, v)) in want_md.iter().zip(&got_md) {
        assert_eq!(
            v.type_name(),
            m["type"].as_str().unwrap(),
            "{name}: type of `{key}`"
        );
        let Value::Array(a) = v else {
            scalar_eq(key, &m["value"], v);
            continue;
        };
        assert_eq!(
            a.elem_type_name(),
            m["elem_type"].as_str().unwrap(),
            "`{key}` elements"
        );
        assert_eq!(a.len() as u64, m["len"].as_u64().unwrap(), "`{key}` length");
        if let Some(h) = m.get("sha256") {
            let got = sha256_hex(canonical_json(a).as_bytes());
            assert_eq!(
                got,
                h.as_str().unwrap(),
                "{name}: sha256 of `{key}`'s canonical JSON"
            );
            hashed += 1;
        } else {
            let want = m["value"].as_array().unwrap();
            for (i, (w, item)) in want.iter().zip(array_items(a)).enumerate() {
                scalar_eq(&format!("{key}[{i}]"), w, &item);
            }
        }
    }

    // Tensors: same order, names, types, shapes (ne0 first), offsets and sizes.
    let want_t = dump["tensors"].as_array().unwrap();
    assert_eq!(g.tensors().len(), want_t.len(), "{name}: tensor count");
    for (t, w) in g.tensors().iter().zip(want_t) {
        assert_eq!(t.name, w["name"].as_str().unwrap(), "{name}: tensor order");
        assert_eq!(
            t.ty.name(),
            w["type"].as_str().unwrap(),
            "{name}: type of {}",
            t.name
        );
        let shape = common::json_u64s(&w["shape"]);
        assert_eq!(t.dims, shape, "{name}: shape of {}", t.name);
        assert_eq!(
            t.offset,
            w["offset"].as_u64().unwrap(),
            "{name}: offset of {}",
            t.name
        );
        assert_eq!(
            t.n_bytes,
            w["n_bytes"].as_u64().unwrap(),
            "{name}: bytes of {}",
            t.name
        );
        assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
    }
    (got_md.len(), g.tensors().len(), hashed)
}

#[test]
fn py_float_repr_matches_python() {
    // Values checked against CPython 3.11 `repr`.
    for (x, want) in [
        (-1000.0, "-1000.0"),
        (1e-6f32 as f64, "9.999999974752427e-07"),
        (1e6, "1000000.0"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (-0.5, "-0.5"),
        (123.456, "123.456"),
        (-2.5e-10, "-2.5e-10"),
    ] {
        assert_eq!(py_float_repr(x), want, "{x}");
    }
}

#[test]
fn tiny_gemma4_files_match_gguf_py() {
    let dir = fixtures().join("gemma4-tiny/gguf");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "gguf") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            let (keys, tensors, _) = compare(&p, &load_dump(&stem));
            assert!(
                keys > 30 && tensors > 100,
                "{stem}: {keys} keys, {tensors} tensors"
            );
            n += 1;
        }
    }
    assert_eq!(n, 5, "expected the five gemma4-tiny GGUFs");
}

#[test]
fn gemma3_270m_matches_gguf_py() {
    let path = common::gemma3_270m_path();
    let (keys, tensors, hashed) = compare(path, &load_dump("gemma3-270m-q4_k_m"));
    assert_eq!((keys, tensors), (33, 236));
    assert_eq!(
        hashed, 3,
        "tokens, scores and token types are compared by hash"
    );
}

mod writer {
    use super::*;
    use lode::gguf::{GgmlType, GgufWriter, Metadata, TensorDesc};

    fn every_value_type() -> Metadata {
        let mut md = Metadata::default();
        let items: Vec<(&str, Value)> = vec![
            ("general.architecture", Value::String("test".into())),
            ("t.u8", Value::U8(200)),
            ("t.i8", Value::I8(-100)),
            ("t.u16", Value::U16(60000)),
            ("t.i16", Value::I16(-30000)),
            ("t.u32", Value::U32(4_000_000_000)),
            ("t.i32", Value::I32(-2_000_000_000)),
            ("t.u64", Value::U64(u64::MAX)),
            ("t.i64", Value::I64(i64::MIN)),
            ("t.f32", Value::F32(-1.5e-7)),
            ("t.f64", Value::F64(std::f64::consts::PI)),
            ("t.bool", Value::Bool(true)),
            ("t.string", Value::String("héllo ▁ \n \u{0}".into())),
            ("t.empty_string", Value::String(String::new())),
            ("t.a.u8", Value::Array(Array::U8(vec![0, 255]))),
            ("t.a.i8", Value::Array(Array::I8(vec![-128, 127]))),
            ("t.a.u16", Value::Array(Array::U16(vec![1, 65535]))),
            ("t.a.i16", Value::Array(Array::I16(vec![-1, 2]))),
            ("t.a.u32", Value::Array(Array::U32(vec![7; 3]))),
            ("t.a.i32", Value::Array(Array::I32(vec![-7, 8]))),
            ("t.a.u64", Value::Array(Array::U64(vec![u64::MAX]))),
            ("t.a.i64", Value::Array(Array::I64(vec![i64::MIN, 0]))),
            (
                "t.a.f32",
                Value::Array(Array::F32(vec![1.0, -0.0, f32::MAX])),
            ),
            ("t.a.f64", Value::Array(Array::F64(vec![1e-300]))),
            (
                "t.a.bool",
                Value::Array(Array::Bool(vec![true, false, true])),
            ),
            (
                "t.a.string",
                Value::Array(Array::String(vec!["a".into(), String::new(), "ü".into()])),
            ),
            ("t.a.empty", Value::Array(Array::F32(vec![]))),
            (
                "t.a.nested",
                Value::Array(Array::Array(vec![
                    Array::U32(vec![1, 2]),
                    Array::String(vec!["x".into()]),
                    Array::Array(vec![Array::Bool(vec![true]), Array::I64(vec![])]),
                    Array::Array(vec![]),
                ])),
            ),
        ];
        for (k, v) in items {
            assert!(md.insert(k.to_string(), v));
        }
        md
    }

    fn descs() -> Vec<TensorDesc> {
        vec![
            TensorDesc::new("a.weight", GgmlType::F32, &[3]).unwrap(),
            TensorDesc::new("b.weight", GgmlType::Q4K, &[256, 2, 3]).unwrap(),
            TensorDesc::new("c.weight", GgmlType::Q5_0, &[64, 5]).unwrap(),
            TensorDesc::new("d.weight", GgmlType::F16, &[1, 1, 1, 7]).unwrap(),
        ]
    }

    fn tmp(name: &str) -> PathBuf {
        common::tmp_dir(&format!("gguf-writer-{name}"))
    }

    /// A fresh temp dir `name`, the path `file` in it, and the metadata of every value type.
    fn writer_case(name: &str, file: &str) -> (PathBuf, PathBuf, Metadata) {
        let dir = tmp(name);
        let path = dir.join(file);
        (dir, path, every_value_type())
    }

    #[test]
    fn round_trip_every_value_type_and_tensor() {
        let dir = tmp("rt");
        let md = every_value_type();
        for alignment in [32u64, 64, 1] {
            let path = dir.join(format!("rt-{alignment}.gguf"));
            let ts = descs();
            let mut w = GgufWriter::create(&path, &md, &ts, alignment).unwrap();
            let datas: Vec<Vec<u8>> = ts
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    (0..t.n_bytes)
                        .map(|b| (b as u8).wrapping_mul(31).wrapping_add(i as u8))
                        .collect()
                })
                .collect();
            for (t, d) in ts.iter().zip(&datas) {
                w.write_tensor(&t.name, d).unwrap();
            }
            w.finish().unwrap();

            let g = Gguf::open(&path).unwrap();
            assert_eq!(g.version(), 3);
            assert_eq!(g.alignment(), alignment);
            let got: Vec<(&str, &Value)> = g
                .metadata()
                .iter()
                .filter(|(k, _)| *k != "general.alignment")
                .collect();
            let want: Vec<(&str, &Value)> = md.iter().collect();
            assert_eq!(got.len(), want.len());
            for ((gk, gv), (wk, wv)) in got.iter().zip(&want) {
                assert_eq!(gk, wk);
                // -0.0 == 0.0 under PartialEq; compare the bits of floats through Debug.
                assert_eq!(format!("{gv:?}"), format!("{wv:?}"), "`{gk}`");
            }
            assert_eq!(g.metadata().contains("general.alignment"), alignment != 32);
            assert_eq!(g.tensors().len(), ts.len());
            for ((t, d), want) in g.tensors().iter().zip(&datas).zip(&ts) {
                assert_eq!(
                    (&t.name, t.ty, &t.dims, t.n_bytes),
                    (&want.name, want.ty, &want.dims, want.n_bytes)
                );
                assert_eq!(t.offset % alignment, 0);
                assert_eq!(g.tensor_data(t), &d[..], "{}", t.name);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn skipped_tensors_are_zero_holes() {
        let (dir, path, md) = writer_case("sparse", "s.gguf");
        // 64 MiB of F32 left as a hole, then a small written tensor, then a trailing hole.
        let ts = vec![
            TensorDesc::new("big", GgmlType::F32, &[4096, 4096]).unwrap(),
            TensorDesc::new("small", GgmlType::F32, &[4]).unwrap(),
            TensorDesc::new("tail", GgmlType::Q8_0, &[4096, 1024]).unwrap(),
        ];
        let mut w = GgufWriter::create(&path, &md, &ts, 32).unwrap();
        w.skip_tensor("big").unwrap();
        w.write_tensor("small", &[1u8; 16]).unwrap();
        w.skip_rest().unwrap();
        w.finish().unwrap();
        let g = Gguf::open(&path).unwrap();
        let big = g.require("big").unwrap();
        assert!(g.tensor_data(big).iter().step_by(4099).all(|&b| b == 0));
        assert_eq!(g.tensor_data(g.require("small").unwrap()), &[1u8; 16]);
        assert_eq!(
            g.tensor_data(g.require("tail").unwrap()).len(),
            4096 * 1024 / 32 * 34
        );
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&path).unwrap();
        assert!(m.len() > 64 << 20);
        assert!(
            m.blocks() * 512 < 8 << 20,
            "not sparse: {} bytes allocated",
            m.blocks() * 512
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn misuse_is_an_error_and_drop_cleans_up() {
        let (dir, path, md) = writer_case("misuse", "m.gguf");
        let ts = descs();
        assert!(TensorDesc::new("x", GgmlType::Q4K, &[100]).is_err());
        assert!(TensorDesc::new("x", GgmlType::F32, &[0]).is_err());
        assert!(TensorDesc::new("x", GgmlType::F32, &[1, 1, 1, 1, 1]).is_err());
        assert!(GgufWriter::create(&path, &md, &ts, 48).is_err());
        let mut twice = ts.clone();
        twice.push(ts[0].clone());
        assert!(GgufWriter::create(&path, &md, &twice, 32).is_err());

        let mut w = GgufWriter::create(&path, &md, &ts, 32).unwrap();
        let err = w.write_tensor("b.weight", &[]).unwrap_err().to_string();
        assert!(err.contains("a.weight"), "{err}");
        assert!(w.write_tensor("a.weight", &[0; 5]).is_err());
        w.write_tensor("a.weight", &[0; 12]).unwrap();
        let tmp_files = || std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(tmp_files(), 1, "the temp file exists while writing");
        drop(w);
        assert_eq!(tmp_files(), 0, "drop without finish removes the temp file");
        assert!(!path.exists());

        let mut w = GgufWriter::create(&path, &md, &ts, 32).unwrap();
        w.write_tensor("a.weight", &[0; 12]).unwrap();
        assert!(w.finish().is_err(), "finish before every tensor is written");
        assert_eq!(tmp_files(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
