//! lode's view of real GGUF files against dumps made by the Python `gguf` package
//! (`scripts/fixtures/dump_gguf.py`, committed under tests/fixtures/gguf-dumps/).
//!
//! Every metadata key (in file order, with its type) and value, every tensor's name, type,
//! shape and data offset must agree. Arrays longer than the dump's threshold are compared by the
//! sha256 of their canonical JSON (Python's `json.dumps(v, separators=(",", ":"),
//! ensure_ascii=False)`), which this file re-creates byte for byte from lode's values.

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

/// Python's `json.dumps(s, ensure_ascii=False)` for a string.
fn py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn canonical_json(a: &Array) -> String {
    let mut out = String::from("[");
    let sep = |out: &mut String, i: usize| {
        if i > 0 {
            out.push(',')
        }
    };
    macro_rules! ints {
        ($v:expr) => {
            for (i, x) in $v.iter().enumerate() {
                sep(&mut out, i);
                out.push_str(&x.to_string());
            }
        };
    }
    match a {
        Array::U8(v) => ints!(v),
        Array::I8(v) => ints!(v),
        Array::U16(v) => ints!(v),
        Array::I16(v) => ints!(v),
        Array::U32(v) => ints!(v),
        Array::I32(v) => ints!(v),
        Array::U64(v) => ints!(v),
        Array::I64(v) => ints!(v),
        Array::Bool(v) => ints!(v),
        Array::F32(v) => {
            for (i, x) in v.iter().enumerate() {
                sep(&mut out, i);
                out.push_str(&py_float_repr(*x as f64));
            }
        }
        Array::F64(v) => {
            for (i, x) in v.iter().enumerate() {
                sep(&mut out, i);
                out.push_str(&py_float_repr(*x));
            }
        }
        Array::String(v) => {
            for (i, s) in v.iter().enumerate() {
                sep(&mut out, i);
                py_json_str(s, &mut out);
            }
        }
        Array::Array(_) => panic!("arrays of arrays are not in the dumps"),
    }
    out.push(']');
    out
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
        let shape: Vec<u64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-model.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/fetch-model.sh failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let (keys, tensors, hashed) = compare(&path, &load_dump("gemma3-270m-q4_k_m"));
    assert_eq!((keys, tensors), (33, 236));
    assert_eq!(
        hashed, 3,
        "tokens, scores and token types are compared by hash"
    );
}
