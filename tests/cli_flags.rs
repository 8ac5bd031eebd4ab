//! llama.cpp's flag spellings: each must do exactly what lode's own flag does. Every pair runs
//! the same greedy generation on the tiny Gemma 4 fixture and must print the same text; the
//! flags that change nothing on a CPU (`-ngl`) must say so in one line and change nothing.

mod common;

use std::process::{Command, Output};

use common::cli::run_with_input;
use common::tiny::fixture;

fn tiny() -> String {
    fixture("gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf")
        .to_string_lossy()
        .into_owned()
}

fn lode(args: &[&str], stdin: Option<&str>) -> Output {
    let input = stdin.unwrap_or("").as_bytes();
    run_with_input(Command::new(env!("CARGO_BIN_EXE_lode")).args(args), input)
}

/// stdout of a successful run; stderr in the panic message otherwise.
fn ok(args: &[&str], stdin: Option<&str>) -> (String, String) {
    let out = lode(args, stdin);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "lode {args:?}:\n{se}");
    (so, se)
}

const PROMPT: &str = "The capital of France is";

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// lode's own spelling of the reference run.
fn reference(m: &str) -> Vec<String> {
    [
        "run", "-m", m, "-p", PROMPT, "-n", "12", "--temp", "0", "-c", "128", "-t", "1", "-b", "16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `reference` with `from` (the flag and its value, as lode spells it) replaced by `to`.
fn respell(m: &str, from: &[&str], to: &[&str]) -> Vec<String> {
    let r = reference(m);
    let at = r
        .windows(from.len())
        .position(|w| w.iter().zip(from).all(|(a, b)| a == b))
        .unwrap_or_else(|| panic!("{from:?} not in {r:?}"));
    let mut out = r[..at].to_vec();
    out.extend(to.iter().map(|s| s.to_string()));
    out.extend_from_slice(&r[at + from.len()..]);
    out
}

#[test]
fn llama_cpp_spellings_do_what_lodes_flags_do() {
    let m = tiny();
    let r = reference(&m);
    let (want, _) = ok(&strs(&r), None);
    assert!(!want.is_empty());
    let cases: &[(&[&str], &[&str])] = &[
        (&["-m", &m], &["--model", &m]),
        (&["-c", "128"], &["--ctx-size", "128"]),
        (&["--temp", "0"], &["--temperature", "0"]),
        // llama.cpp: a temperature at or below 0 is greedy; -1 is a value, not a flag
        (&["--temp", "0"], &["--temp", "-1"]),
        (&["-n", "12"], &["--n-predict", "12"]),
        (&["-n", "12"], &["--predict", "12"]),
        (&["-t", "1"], &["--threads", "1"]),
        (&["-b", "16"], &["--batch-size", "16"]),
        (&["-p", PROMPT], &["-f", "-"]),
        (&["-p", PROMPT], &["--file", "-"]),
    ];
    for (from, to) in cases {
        let args = respell(&m, from, to);
        let stdin = to.contains(&"-").then_some(PROMPT);
        let (got, err) = ok(&strs(&args), stdin);
        assert_eq!(got, want, "{to:?} differs from {from:?}; stderr:\n{err}");
    }
    // -ngl / --n-gpu-layers: accepted, one note, same output
    for to in [["-ngl", "99"], ["--n-gpu-layers", "99"]] {
        let mut args = reference(&m);
        args.extend(to.iter().map(|s| s.to_string()));
        let (got, err) = ok(&strs(&args), None);
        assert_eq!(got, want, "{to:?}");
        let notes: Vec<&str> = err.lines().filter(|l| l.contains("CPU only")).collect();
        assert_eq!(notes.len(), 1, "{err}");
        assert!(notes[0].contains("-ngl 99"), "{err}");
    }
}

#[test]
fn chat_run_and_system_prompt_spellings() {
    let m = tiny();
    let base = [
        "run", "-m", &m, "-p", "Hi", "-n", "6", "--temp", "0", "-t", "1", "--chat",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        ok(&a, None).0
    };
    assert_eq!(
        with(&["--system", "Be brief."]),
        with(&["--system-prompt", "Be brief."])
    );
}

#[test]
fn inspect_takes_the_model_as_m_or_positional() {
    let m = tiny();
    let (a, _) = ok(&["inspect", "--json", &m], None);
    let (b, _) = ok(&["inspect", "--json", "-m", &m], None);
    let (c, _) = ok(&["inspect", "--json", "--model", &m], None);
    assert_eq!(a, b);
    assert_eq!(a, c);
    // and not both at once, and not neither
    assert!(!lode(&["inspect", &m, "-m", &m], None).status.success());
    assert!(!lode(&["inspect"], None).status.success());
}

#[test]
fn prefetch_is_one_switch_in_run_and_bench() {
    let m = tiny();
    for sub in ["run", "bench"] {
        let help = ok(&[sub, "--help"], None).0;
        let line = help
            .lines()
            .find(|l| l.contains("--prefetch"))
            .unwrap_or_else(|| panic!("{sub} --help has no --prefetch:\n{help}"));
        assert!(line.contains("on|off"), "{sub}: {line}");
    }
    // bare, on and off parse in both
    for v in [&[][..], &["on"][..], &["off"][..]] {
        let mut a = vec!["bench", "-m", &m, "--dry-run", "--bandwidth-size", "1MiB"];
        a.push("--prefetch");
        a.extend_from_slice(v);
        ok(&a, None);
        let mut a = reference(&m);
        a.push("--prefetch".into());
        a.extend(v.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&a, None);
    }
}

#[test]
fn help_texts_agree_with_the_defaults() {
    for sub in ["run", "chat", "serve"] {
        let help = ok(&[sub, "--help"], None).0;
        let ctx = help
            .lines()
            .skip_while(|l| !l.contains("--ctx"))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(ctx.contains("--ctx-size"), "{sub}: {ctx}");
        assert!(ctx.contains("the model's"), "{sub}: {ctx}");
        assert!(!ctx.contains("[default: 0]"), "{sub}: {ctx}");
        // one sampling block for all three (issue #17): the same flags with the same defaults
        for flag in [
            "--temp <T>",
            "[default: 0.8]",
            "--presence-penalty",
            "--frequency-penalty",
            "--top-k <K>",
            "--seed <S>",
        ] {
            assert!(help.contains(flag), "{sub} --help lacks {flag}");
        }
    }
}

#[test]
fn version_names_commit_profile_and_isa() {
    let (v, _) = ok(&["--version"], None);
    assert!(v.starts_with("lode "), "{v}");
    for part in ["commit ", " build", "ISA "] {
        assert!(v.contains(part), "{v}");
    }
}

#[test]
fn stats_json_and_summary_have_the_load_time() {
    let m = tiny();
    let dir = common::tmp_dir("flags");
    let json = dir.join("stats.json");
    let mut args = reference(&m);
    args.extend([
        "--stats-json".to_string(),
        json.to_string_lossy().into_owned(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, err) = ok(&a, None);
    assert!(err.contains("lode: load "), "{err}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let secs = j["load_secs"].as_f64().unwrap();
    assert!(secs > 0.0 && secs < 60.0, "{j}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `lode logits --precision exact` on the F32 tiny Gemma 4 reproduces transformers within the
/// fixture's exact-math tolerance (max 0.005), on every position of every sequence.
#[test]
fn logits_precision_exact_matches_transformers() {
    use common::tiny::{diff, manifest, tokens};
    let m = manifest();
    let f32_model = fixture("gemma4-tiny/gguf/gemma4-tiny-public-f32.gguf");
    let dir = common::tmp_dir("exact");
    let mut worst_exact = 0f32;
    let mut worst_kernels = 0f32;
    for (i, s) in m["sequences"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<String> = tokens(&s["tokens"]).iter().map(u32::to_string).collect();
        let ids = ids.join(",");
        let want =
            lode::npy::read_f32(fixture(&format!("gemma4-tiny/ref/hf_logits_s{i}.npy"))).unwrap();
        for precision in ["exact", "kernels"] {
            let out = dir.join(format!("s{i}-{precision}.npy"));
            ok(
                &[
                    "logits",
                    "-m",
                    f32_model.to_str().unwrap(),
                    "--tokens",
                    &ids,
                    "--out",
                    out.to_str().unwrap(),
                    "--kv-type",
                    "f32",
                    "--precision",
                    precision,
                ],
                None,
            );
            let got = lode::npy::read_f32(&out).unwrap();
            assert_eq!(got.shape, want.shape);
            let (max, _) = diff(&got.data, &want.data);
            if precision == "exact" {
                worst_exact = worst_exact.max(max);
            } else {
                worst_kernels = worst_kernels.max(max);
            }
        }
    }
    eprintln!("max |lode − transformers|: exact {worst_exact:.2e}, kernels {worst_kernels:.2e}");
    assert!(worst_exact <= 0.005, "exact: max {worst_exact}");
    // the flag reaches the model: the default (ggml's f16 GELU table) is measurably further
    assert!(
        worst_kernels > worst_exact,
        "{worst_kernels} vs {worst_exact}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of `src` without `tokenizer.chat_template` (a base model's file), via lode's writer.
fn without_chat_template(src: &std::path::Path, dst: &std::path::Path) {
    use lode::gguf::{Gguf, GgufWriter, Metadata, TensorDesc, DEFAULT_ALIGNMENT};
    let g = Gguf::open(src).unwrap();
    let mut md = Metadata::default();
    for (k, v) in g.metadata().iter() {
        if k != "general.alignment" && k != "tokenizer.chat_template" {
            md.insert(k.to_string(), v.clone());
        }
    }
    let descs: Vec<TensorDesc> = g
        .tensors()
        .iter()
        .map(|t| TensorDesc::new(t.name.clone(), t.ty, &t.dims).unwrap())
        .collect();
    let mut w = GgufWriter::create(dst, &md, &descs, DEFAULT_ALIGNMENT).unwrap();
    for t in g.tensors() {
        w.write_tensor(&t.name, g.tensor_data(t)).unwrap();
    }
    w.finish().unwrap();
}

/// A model without a chat template still chats (lode's built-in template for the
/// architecture), but says so once instead of silently; one with a template says nothing.
#[test]
fn missing_chat_template_is_a_warning() {
    let dir = common::tmp_dir("notmpl");
    let base = dir.join("base.gguf");
    without_chat_template(
        &fixture("gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf"),
        &base,
    );
    let base = base.to_str().unwrap();
    let m = tiny();
    for (model, warned) in [(base, true), (m.as_str(), false)] {
        let (_, err) = ok(
            &[
                "run", "-m", model, "-p", "Hi", "-n", "2", "--temp", "0", "--chat",
            ],
            None,
        );
        assert_eq!(
            err.contains("has no chat template"),
            warned,
            "{model}: {err}"
        );
        let (_, err) = ok(
            &["chat", "-m", model, "-n", "2", "--temp", "0"],
            Some("Hi\n"),
        );
        assert_eq!(
            err.contains("has no chat template"),
            warned,
            "{model}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
