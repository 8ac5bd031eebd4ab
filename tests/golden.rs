//! The real Gemma 3 270M Q4_K_M against llama.cpp (tests/fixtures/gemma3-270m):
//! greedy continuations token for token and perplexity chunk by chunk, with lode's defaults
//! (F16 K/V + ggml flash attention) against llama.cpp's defaults and with `--kv-type f32` against
//! llama.cpp's F32 K/V, no flash attention.
//! The model comes from `scripts/fetch-model.sh` (cached after the first download).

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{ggml_x86_arithmetic, json_ids};
use lode::chat::ChatTemplate;
use lode::engine::{prompt, GenerateOptions, Session};
use lode::gguf::Gguf;
use lode::model::{self, KvType, Logits, ModelOptions};
use lode::sample::{Sampler, SamplerConfig};
use lode::tokenizer::Tokenizer;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gemma3-270m");

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Greedy continuations of the fixture's 6 prompts (n_ctx 512) with `kv` against llama.cpp's
/// run `config` of generation.json. Where the kernels are x86's (`common::ggml_x86_arithmetic`)
/// every case must match on all 48 tokens (the same arithmetic as that run, op by op), not only
/// on the fixture's shorter `compare_prefix_len`; other kernel sets on `compare_prefix_len`.
fn greedy_vs_llama_cpp(config: &str, kv: KvType) {
    let gguf = Arc::new(Gguf::open(common::gemma3_270m_path()).unwrap());
    let tokenizer = Arc::new(Tokenizer::from_gguf(gguf.metadata()).unwrap());
    let template = ChatTemplate::from_gguf_or_builtin(gguf.metadata()).unwrap();
    // generation.json was made with n_ctx 512.
    let model = model::load(
        gguf.clone(),
        &ModelOptions {
            n_ctx: 512,
            kv_type: kv,
            ..Default::default()
        },
    )
    .unwrap();
    let mut session = Session::new(
        model,
        tokenizer.clone(),
        Sampler::new(SamplerConfig::greedy()),
    );
    let gen = fixture("generation.json");
    let cases = gen["runs"][config]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    let mut failures = Vec::new();
    for case in cases {
        let kind = case["kind"].as_str().unwrap();
        let user = case["user_text"].as_str().unwrap();
        let (prompt_text, prompt) = match kind {
            "raw" => (user.to_string(), prompt::encode_raw(&tokenizer, user)),
            "chat" => {
                let (text, ids) = prompt::single_turn(&template, &tokenizer, None, user).unwrap();
                // The template writes `<bos>`; llama.cpp's built-in `gemma` format leaves it to
                // the tokenizer. The ids below check that BOS still comes exactly once.
                (text.strip_prefix("<bos>").unwrap().to_string(), ids)
            }
            k => panic!("unknown case kind {k}"),
        };
        assert_eq!(prompt_text, case["prompt_text"].as_str().unwrap());
        assert_eq!(
            prompt,
            json_ids(&case["prompt_ids"]),
            "{kind} {user:?}: prompt ids"
        );

        let want = json_ids(&case["greedy48_ids"]);
        let need = if ggml_x86_arithmetic() {
            want.len()
        } else {
            case["compare_prefix_len"].as_u64().unwrap() as usize
        };
        session.model.truncate(0).unwrap();
        let mut got = Vec::new();
        let opts = GenerateOptions {
            // Only the compared tokens: past `need` nothing is checked (what it saves
            // matters under qemu, scripts/arm-test.sh).
            max_tokens: need,
            batch: 512,
            // The fixture's greedy run is plain argmax, not stopped at end-of-generation.
            ignore_eos: true,
        };
        session
            .generate(&prompt, &opts, |s| {
                if let Some(t) = s.token {
                    got.push(t);
                }
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .unwrap();
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        eprintln!(
            "{kind} {user:?}: {same}/{need} tokens equal to llama.cpp {config} (all required; the fixture has {})\n  lode {got:?}\n  llama.cpp {want:?}",
            want.len()
        );
        if same < need {
            failures.push(format!("{kind} {user:?}: {same} of {need} equal"));
        }
    }
    assert!(
        failures.is_empty(),
        "greedy mismatch vs llama.cpp {config}: {failures:?}"
    );
}

/// Top-5 logits at the last prompt position (prompts under 64 tokens: ggml's one-chunk flash
/// attention with F16 Q and an F16 V accumulator) with lode's defaults vs llama.cpp's defaults:
/// equal to the fixture's 4 decimals; other kernel sets (NEON, scalar) measured from the top-1
/// logit, within twice the gap between llama.cpp's own two runs (`common::Top5Rule`: 1.154).
#[test]
fn default_top5_logits_match_llama_cpp_default() {
    let gguf = Arc::new(Gguf::open(common::gemma3_270m_path()).unwrap());
    let opts = ModelOptions {
        n_ctx: 512,
        ..Default::default()
    };
    let mut m = model::load(gguf, &opts).unwrap();
    let gen = fixture("generation.json");
    let rule = common::Top5Rule::for_these_kernels();
    let mut worst = 0f32;
    for case in gen["runs"]["default"]["cases"].as_array().unwrap() {
        m.truncate(0).unwrap();
        let logits = m
            .forward(&json_ids(&case["prompt_ids"]), Logits::Last)
            .unwrap();
        worst = worst.max(rule.error(&logits, &common::top5(case)));
    }
    eprintln!(
        "top-5 logits within {worst:.5} of llama.cpp's default run ({})",
        rule.describe()
    );
    assert!(
        worst <= rule.bound,
        "top-5 logits {worst} from llama.cpp default ({})",
        rule.describe()
    );
}

/// lode's defaults (F16 K/V cache, ggml's flash attention emulated in `Precision::Kernels`)
/// against llama.cpp's defaults: the same arithmetic, so all 48 tokens of every case.
#[test]
fn greedy_matches_llama_cpp_default() {
    greedy_vs_llama_cpp("default", KvType::default());
}

/// `--kv-type f32` (no flash attention) against llama.cpp's F32 K/V, flash attention off.
#[test]
fn greedy_matches_llama_cpp_precise() {
    greedy_vs_llama_cpp("precise", KvType::F32);
}

/// `lode SUB -m <the Gemma 3 270M> ARGS…`, which must succeed: its (stdout, stderr).
fn lode_gemma3<S: AsRef<std::ffi::OsStr>>(
    sub: &str,
    args: impl IntoIterator<Item = S>,
) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lode"))
        .arg(sub)
        .arg("-m")
        .arg(common::gemma3_270m_path())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "lode {sub} failed:\n{stderr}");
    (stdout, stderr)
}

/// Runs `lode perplexity -c 128 -b 128` on ppl_text.txt with `extra` arguments; returns the
/// running PPL per chunk and the final estimate (checked to be the last running value).
fn lode_perplexity(extra: &[&str]) -> (Vec<f64>, f64) {
    lode_perplexity_of(&format!("{FIXTURES}/ppl_text.txt"), extra)
}

/// [`lode_perplexity`] on the text file `path`.
fn lode_perplexity_of(path: &str, extra: &[&str]) -> (Vec<f64>, f64) {
    let args = ["-f", path, "-c", "128", "-b", "128"];
    let (stdout, stderr) = lode_gemma3("perplexity", args.iter().chain(extra));
    eprintln!("{stderr}{stdout}");
    // `[1]1.6970,[2]2.1364,...` then `Final estimate: PPL = x +/- e`.
    let running = chunk_line(&stdout).expect("per-chunk line");
    let line = stdout
        .lines()
        .find(|l| l.contains("PPL = "))
        .expect("final PPL line");
    let got: f64 = line
        .split("PPL = ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        running.last().map(|r| (r * 1e4).round()),
        Some((got * 1e4).round())
    );
    (running, got)
}

/// The `[1]a,[2]b,...` running-PPL line of a llama-perplexity / lode perplexity output.
fn chunk_line(text: &str) -> Option<Vec<f64>> {
    let l = text.lines().find(|l| l.starts_with("[1]"))?;
    Some(
        l.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.split(']').nth(1).unwrap().parse().unwrap())
            .collect(),
    )
}

/// Relative per-chunk tolerance of the running PPL for this machine's kernels: the log's 4
/// decimals where they are llama.cpp's x86 arithmetic; otherwise from the reference alone:
/// llama.cpp's own two CPU kernel sets (repacked and plain, perplexity.json) differ only in
/// summation order, as NEON does, and their running PPLs differ by up to 3.15% relative
/// (chunk 2: 2.1364 vs 2.2058; the final PPLs 3.0790 vs 3.0724). If each is within that gap of
/// the exact value, two correct runs are within twice it of each other: 2 × 3.15% = 6.3%,
/// computed here from the fixture. The final PPL stays held to 1% by the callers.
fn chunk_tolerance() -> f64 {
    if ggml_x86_arithmetic() {
        return 1e-4;
    }
    let ppl = fixture("perplexity.json");
    let running = |run: &str| -> Vec<f64> {
        ppl["runs"][run]["running_ppl_after_each_chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (a, b) = (running("no_repack"), running("repack"));
    2.0 * a
        .iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs() / b)
        .fold(0.0, f64::max)
}

/// Every running PPL within `tol` (relative) of the llama-perplexity log `log`.
fn assert_chunks_match(running: &[f64], log: &str, tol: f64) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{log}")).unwrap();
    let want = chunk_line(&text).expect("per-chunk line in the llama.cpp log");
    assert_eq!(want.len(), running.len());
    for (i, (g, w)) in running.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() / w < tol,
            "chunk {}: running PPL {g} vs llama.cpp ({log}) {w}",
            i + 1
        );
    }
}

/// Issue #4: `lode perplexity` with its defaults (F16 K/V cache, ggml's flash attention
/// emulated) vs the fixture's llama-perplexity --no-repack value, made with llama.cpp's
/// defaults (F16 K/V, flash attention auto): within 1%, and every chunk as in its log.
#[test]
fn perplexity_within_one_percent_of_llama_cpp() {
    let ppl = fixture("perplexity.json");
    let run = &ppl["runs"]["no_repack"];
    let want = run["ppl"].as_f64().unwrap();
    let (running, got) = lode_perplexity(&[]);
    assert_eq!(running.len(), run["n_chunks"].as_u64().unwrap() as usize);
    let rel = (got - want).abs() / want;
    eprintln!(
        "lode PPL {got:.4} (defaults) vs llama.cpp defaults {want:.4}: {:.4}%",
        rel * 100.0
    );
    assert!(
        rel < 0.01,
        "PPL {got} is more than 1% from llama.cpp's {want}"
    );
    // the same arithmetic, so the same running values (to the log's 4 decimals); other
    // kernel sets within the spread of llama.cpp's own two
    assert_chunks_match(&running, "perplexity_norepack.log", chunk_tolerance());
}

/// The first two chunks of [`perplexity_within_one_percent_of_llama_cpp`] alone, each as in
/// llama.cpp's log (same rule): a prefix of ppl_text.txt whose first 256 tokens are the whole
/// text's (checked), so both chunks are the full run's. The slice scripts/arm-test.sh runs under
/// qemu, where the whole text (9 chunks) costs minutes of CPU.
#[test]
fn perplexity_first_two_chunks_match_llama_cpp() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/ppl_text.txt")).unwrap();
    // ~4.7 bytes per token: the paragraph that ends past byte 1,400 ends past token 256.
    let cut = 1400 + text[1400..].find("\n\n").unwrap();
    let prefix = &text[..cut];
    let gguf = Gguf::open(common::gemma3_270m_path()).unwrap();
    let tokenizer = Tokenizer::from_gguf(gguf.metadata()).unwrap();
    let (all, part) = (
        tokenizer.encode(&text, true, false),
        tokenizer.encode(prefix, true, false),
    );
    assert!(
        (256..384).contains(&part.len()) && part[..256] == all[..256],
        "the prefix ({} tokens) must start with the text's first 256 tokens, 2 chunks",
        part.len()
    );
    let dir = std::env::temp_dir().join(format!("lode-golden-ppl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ppl_text_2_chunks.txt");
    std::fs::write(&path, prefix).unwrap();
    let (running, _) = lode_perplexity_of(path.to_str().unwrap(), &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(running.len(), 2);
    let text = std::fs::read_to_string(format!("{FIXTURES}/perplexity_norepack.log")).unwrap();
    let want = chunk_line(&text).expect("per-chunk line in the llama.cpp log");
    let tol = chunk_tolerance();
    for (i, (g, w)) in running.iter().zip(&want).enumerate() {
        eprintln!("chunk {}: running PPL {g:.4} vs llama.cpp {w:.4}", i + 1);
        assert!(
            (g - w).abs() / w < tol,
            "chunk {}: running PPL {g} vs llama.cpp {w} (relative bound {tol})",
            i + 1
        );
    }
}

/// `--kv-type f32` (no flash attention) reproduces llama.cpp's `-fa off -ctk f32 -ctv f32`
/// run, committed as perplexity_precise.log (see tests/fixtures/README.md), chunk by chunk.
#[test]
fn perplexity_f32_kv_matches_llama_cpp_precise() {
    let (running, got) = lode_perplexity(&["--kv-type", "f32"]);
    assert_chunks_match(&running, "perplexity_precise.log", chunk_tolerance());
    let want = *chunk_line(
        &std::fs::read_to_string(format!("{FIXTURES}/perplexity_precise.log")).unwrap(),
    )
    .unwrap()
    .last()
    .unwrap();
    assert!(
        (got - want).abs() / want < 0.01,
        "PPL {got} vs llama.cpp {want}"
    );
    eprintln!("lode PPL {got:.4} with --kv-type f32 (llama.cpp -fa off -ctk/-ctv f32: 3.1104)");
}

/// The README's first command (greedy here, so the text is known): streams the continuation to
/// stdout and a timing + memory summary to stderr; --stats-json has the documented keys.
#[test]
fn readme_run_command() {
    let dir = common::tmp_dir("golden");
    let stats = dir.join("stats.json");
    let (stdout, stderr) = lode_gemma3(
        "run",
        ["-p", "The capital of France is", "-n", "16", "--temp", "0"]
            .iter()
            .chain(&["--stats-json", stats.to_str().unwrap()]),
    );
    eprintln!("stdout: {stdout:?}\nstderr:\n{stderr}");
    // llama.cpp's 16 greedy tokens, as text: its defaults (F16 K/V + flash attention) are
    // lode's, op for op, so past near-ties too (see greedy_matches_llama_cpp_default).
    let gen = fixture("generation.json");
    let case = &gen["runs"]["default"]["cases"][0];
    assert_eq!(case["prompt_text"], "The capital of France is");
    // Other kernel sets: up to the fixture's first near-tie.
    let n = if ggml_x86_arithmetic() {
        16
    } else {
        case["compare_prefix_len"].as_u64().unwrap() as usize
    };
    let gguf = Gguf::open(common::gemma3_270m_path()).unwrap();
    let tokenizer = Tokenizer::from_gguf(gguf.metadata()).unwrap();
    let want = tokenizer.decode(&json_ids(&case["greedy48_ids"])[..n], false);
    assert!(
        case["greedy48_text"].as_str().unwrap().starts_with(&want),
        "decoding the fixture's ids gives its own text"
    );
    assert!(
        stdout.starts_with(&want),
        "{stdout:?} vs llama.cpp {want:?}"
    );
    assert!(
        stderr.contains("tok/s") && stderr.contains("peak RSS"),
        "{stderr}"
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(j["prompt_tokens"], 6);
    assert_eq!(j["gen_tokens"], 16);
    for k in ["prompt_tps", "gen_tps"] {
        assert!(j[k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
    for k in ["peak_rss_anon", "peak_rss_file"] {
        assert!(j.get(k).is_some(), "{k} missing: {j}");
    }
}
