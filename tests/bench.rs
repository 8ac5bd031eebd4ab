//! `lode bench` through the binary: the `-o json` row format (docs/bench.md) on the tiny
//! Gemma 4 fixture, CSV with the same fields, sweeps with their SVG plot, refusals, and the
//! `--dry-run` bandwidth bound of a sparse 26B-A4B-shaped file against docs/gemma4.md §1.4.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as J;

const TINY: &str = "tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf";
/// gguf-py's view of the same file (tensor sizes, expert counts): the oracle for bytes/token.
const TINY_DUMP: &str = "tests/fixtures/gguf-dumps/gemma4-tiny-public-q8_0.json";
/// Small probe buffer: these tests check the plumbing, not this machine's DRAM.
const BW: &str = "64MiB";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lode"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("running lode")
}

fn ok_stdout(args: &[&str]) -> String {
    let out = lode(args);
    assert!(
        out.status.success(),
        "lode {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err_text(args: &[&str]) -> String {
    let out = lode(args);
    assert!(!out.status.success(), "lode {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// `lode bench -m MODEL --bandwidth-size BW EXTRA…`.
fn bench_args<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["bench", "-m", model, "--bandwidth-size", BW];
    args.extend_from_slice(extra);
    args
}

/// [`bench_args`] on the tiny model with `--sweep SWEEP --plot PLOT` after `extra`.
fn sweep_args<'a>(extra: &[&'a str], sweep: &'a str, plot: &'a Path) -> Vec<&'a str> {
    let mut args = bench_args(TINY, extra);
    args.extend(["--sweep", sweep, "--plot", plot.to_str().unwrap()]);
    args
}

/// Weight bytes per decoded token from gguf-py's tensor sizes: everything but the routed
/// expert matrices, plus `expert_used_count / expert_count` of those (the tied embedding is
/// the LM head, read in full).
fn tiny_bytes_per_token() -> u64 {
    let dump: J =
        serde_json::from_str(&std::fs::read_to_string(root().join(TINY_DUMP)).unwrap()).unwrap();
    let md = |key: &str| -> u64 {
        dump["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap()["value"]
            .as_u64()
            .unwrap()
    };
    let (n_expert, n_used) = (md("gemma4.expert_count"), md("gemma4.expert_used_count"));
    let tensors = dump["tensors"].as_array().unwrap();
    assert!(!tensors.iter().any(|t| t["name"] == "output.weight"));
    tensors
        .iter()
        .map(|t| {
            let n = t["n_bytes"].as_u64().unwrap();
            let stacked = t["name"].as_str().unwrap().contains("_exps")
                && t["shape"].as_array().unwrap().len() == 3;
            if stacked {
                n / n_expert * n_used
            } else {
                n
            }
        })
        .sum()
}

/// A JSON type test (`is_string`, `is_u64`, ...).
type HasType = fn(&J) -> bool;

fn check_row(r: &J, reps: usize) {
    let typed: [(&[&str], HasType); 3] = [
        (
            &[
                "lode_version",
                "build_commit",
                "cpu_info",
                "model_filename",
                "model_type",
                "test_time",
                "isa",
                "paging",
            ],
            J::is_string,
        ),
        (
            &[
                "model_size",
                "model_n_params",
                "n_threads",
                "n_prompt",
                "n_gen",
                "n_depth",
                "avg_ns",
                "stddev_ns",
                "seed",
                "params_per_token",
                "bytes_per_token",
            ],
            J::is_u64,
        ),
        (
            &[
                "avg_ts",
                "stddev_ts",
                "bandwidth",
                "bound_ts",
                "bound_fraction",
            ],
            J::is_f64,
        ),
    ];
    for (keys, has_type) in typed {
        for key in keys {
            assert!(has_type(&r[key]), "{key} in {r}");
        }
    }
    // Nullable where the OS cannot tell; this is Linux.
    for key in ["rss_anon_peak", "rss_file_peak", "rss_peak"] {
        assert!(r[key].as_u64().unwrap() > 0, "{key} in {r}");
    }
    let huge = r["file_2mib_fraction"]
        .as_f64()
        .expect("smaps_rollup on Linux");
    assert!((0.0..=1.0).contains(&huge), "{r}");
    // `--paging auto` on a 3 MB file: every expert fits, read into the cache at load, so
    // decoding finds all of them
    assert!(r["expert_budget"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["paging"], "cache");
    assert_eq!(r["prefetch"], false);
    let hit = r["expert_hit_rate"].as_f64().unwrap();
    assert_eq!(hit, 1.0, "{r}");
    assert!(r["expert_bytes_read_per_token"].as_f64().unwrap() >= 0.0);
    assert!(r["expert_io_wait_ns_per_token"].as_f64().unwrap() >= 0.0);

    let f = |k: &str| r[k].as_f64().unwrap();
    let u = |k: &str| r[k].as_u64().unwrap();
    let samples_ts = common::json_f64s(&r["samples_ts"]);
    let samples_ns = common::json_u64s(&r["samples_ns"]);
    assert_eq!(samples_ts.len(), reps);
    assert_eq!(samples_ns.len(), reps);
    let n_tokens = (u("n_prompt") + u("n_gen")) as f64;
    for (ts, ns) in samples_ts.iter().zip(&samples_ns) {
        assert!(*ns > 0);
        assert!((ts - n_tokens * 1e9 / *ns as f64).abs() <= 1e-9 * ts, "{r}");
    }
    let mean = samples_ts.iter().sum::<f64>() / reps as f64;
    assert!(
        f("avg_ts") > 0.0 && (f("avg_ts") - mean).abs() <= 1e-9 * mean,
        "{r}"
    );
    assert!(f("stddev_ts") >= 0.0);
    assert!(u("rss_peak") >= u("rss_anon_peak"));

    assert_eq!(u("bytes_per_token"), tiny_bytes_per_token());
    assert!(u("bytes_per_token") < u("model_size"));
    let bw = f("bandwidth");
    assert!(bw > 1e8 && bw < 1e13, "bandwidth {bw} B/s");
    let want = u("bytes_per_token") as f64 * f("avg_ts") / bw;
    assert!((f("bound_fraction") - want).abs() <= 1e-9 * want, "{r}");
    assert!((f("bound_ts") - bw / u("bytes_per_token") as f64).abs() <= 1e-6 * f("bound_ts"));
}

#[test]
fn json_rows_on_the_tiny_model() {
    let out = ok_stdout(&bench_args(
        TINY,
        &[
            "-p", "8", "-n", "4", "-d", "0,3", "-t", "1", "-r", "2", "-o", "json",
        ],
    ));
    let rows: Vec<J> = serde_json::from_str(&out).expect("stdout is one JSON array");
    let shape: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["n_prompt"].as_u64().unwrap(),
                r["n_gen"].as_u64().unwrap(),
                r["n_depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shape, [(8, 0, 0), (0, 4, 0), (8, 0, 3), (0, 4, 3)]);
    for r in &rows {
        check_row(r, 2);
        assert_eq!(r["n_threads"], 1);
        assert!(r["model_filename"].as_str().unwrap().ends_with(".gguf"));
        assert_eq!(r["model_type"], "gemma4 MOSTLY_Q8_0");
    }
}

#[test]
fn csv_and_markdown_carry_the_same_rows() {
    let args = |o| bench_args(TINY, &["-p", "4", "-n", "2", "-t", "1", "-r", "1", "-o", o]);
    let csv = ok_stdout(&args("csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for key in [
        "n_prompt",
        "n_gen",
        "avg_ts",
        "rss_anon_peak",
        "bound_fraction",
    ] {
        assert!(header.contains(&key), "{key} missing from {header:?}");
    }
    let md = ok_stdout(&args("md"));
    assert!(md.contains("| pp4 |") && md.contains("| tg2 |"), "{md}");
}

#[test]
fn thread_sweep_writes_a_plot() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let svg = dir.join("bench-threads.svg");
    let _ = std::fs::remove_file(&svg);
    let out = ok_stdout(&sweep_args(
        &["-p", "4", "-n", "2", "-r", "1", "-o", "json"],
        "threads=1,2",
        &svg,
    ));
    let rows: Vec<J> = serde_json::from_str(&out).unwrap();
    let threads: Vec<u64> = rows
        .iter()
        .map(|r| r["n_threads"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, [1, 1, 2, 2]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") || text.starts_with("<?xml"),
        "{}",
        &text[..80]
    );
    assert!(text.contains("tokens/s") && text.contains("tg2") && text.contains("pp4"));
    // one tick per swept thread count, whole numbers, under each panel
    let x = texts(&text, "tick-x");
    assert_eq!(x.len() % 2, 0, "{x:?}");
    for panel in x.chunks(2) {
        assert_eq!(panel, ["1", "2"], "{x:?}");
    }
    check_axes(&text);
    // the bound line is drawn for tg, error bars are in the caption's promise
    assert!(text.contains("bandwidth bound"), "no bound line");
    let caption = texts(&text, "caption").join(" ");
    for part in ["ISA ", "CPU ", "lode ", "commit ", "mean ± std"] {
        assert!(caption.contains(part), "{part} missing from {caption}");
    }
}

/// The texts of the SVG `<text class="CLASS">` elements, in order.
fn texts(svg: &str, class: &str) -> Vec<String> {
    let open = format!(r#"<text class="{class}""#);
    svg.match_indices(&open)
        .map(|(i, _)| {
            let rest = &svg[i..];
            let start = rest.find('>').unwrap() + 1;
            let end = rest.find("</text>").unwrap();
            rest[start..end]
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .collect()
}

/// Every axis of the plot: no two equal tick labels on one axis (per panel), every tick a
/// number, and each axis label naming its unit.
fn check_axes(svg: &str) {
    let labels = texts(svg, "label-y");
    let x_labels = texts(svg, "label-x");
    assert!(
        !labels.is_empty() && labels.len() == x_labels.len(),
        "{labels:?}"
    );
    for l in labels.iter().chain(&x_labels) {
        let unit = ["tokens/s", "KiB", "MiB", "GiB", "threads", "tokens"];
        assert!(
            unit.iter().any(|u| l.contains(u)),
            "axis label without a unit: {l}"
        );
    }
    // the y ticks of each panel run from 0 upwards; a new 0 starts the next panel
    let mut panels: Vec<Vec<String>> = Vec::new();
    for t in texts(svg, "tick-y") {
        if t == "0" || panels.is_empty() {
            panels.push(Vec::new());
        }
        panels.last_mut().unwrap().push(t);
    }
    assert_eq!(panels.len(), labels.len(), "{panels:?}");
    let x = texts(svg, "tick-x");
    let per_panel = x.len() / labels.len();
    for (i, y) in panels.iter().enumerate() {
        let xs = &x[i * per_panel..(i + 1) * per_panel];
        for axis in [y.as_slice(), xs] {
            let mut seen = axis.to_vec();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), axis.len(), "repeated tick labels: {axis:?}");
            for t in axis {
                assert!(t.parse::<f64>().is_ok(), "tick `{t}` is not a number");
            }
        }
    }
}

#[test]
fn expert_budget_sweep_runs_the_cache() {
    // The tiny model's experts total 1.00 MiB (8 per layer × 2 layers); 2 of 8 are used.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let svg = dir.join("bench-budget.svg");
    let out = ok_stdout(&sweep_args(
        &["-p", "0", "-n", "8", "-t", "1", "-r", "2", "-o", "json"],
        "expert-budget=256KiB,1MiB",
        &svg,
    ));
    let rows: Vec<J> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 2);
    for (r, budget) in rows.iter().zip([256u64 << 10, 1 << 20]) {
        assert_eq!(r["paging"], "cache");
        assert_eq!(r["expert_budget"].as_u64(), Some(budget));
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
    }
    // A quarter of the experts cannot hold every routed pair: some misses and reads.
    let hit = |i: usize| rows[i]["expert_hit_rate"].as_f64().unwrap();
    let read = |i: usize| rows[i]["expert_bytes_read_per_token"].as_f64().unwrap();
    assert!(hit(0) < 1.0 && read(0) > 0.0, "{}", rows[0]);
    // A budget holding every expert is filled at load (in the background, so the first steps
    // may still miss): it hits at least as often and reads no more.
    assert!(
        hit(1) >= hit(0) && read(1) <= read(0),
        "{} vs {}",
        rows[1],
        rows[0]
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    // budgets in the unit that fits them: 256 and 1024 KiB, not 0.25 and 1.00 MiB
    assert!(texts(&text, "label-x")
        .iter()
        .all(|l| l == "expert budget (KiB)"));
    assert!(texts(&text, "tick-x")
        .chunks(2)
        .all(|p| p == ["256", "1024"]));
    check_axes(&text);
}

#[test]
fn paging_sweep_plot_has_readable_axes_and_png_is_png() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for name in ["paging-sweep.svg", "paging-sweep.png"] {
        let out = dir.join(name);
        let _ = std::fs::remove_file(&out);
        let table = ok_stdout(&[
            "paging-sweep",
            "-m",
            TINY,
            "--budgets",
            "64KiB,160KiB,320KiB,1MiB",
            "-n",
            "4",
            "-r",
            "2",
            "-t",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        // one byte format for every budget in the table
        for b in ["64.00 KiB", "160.00 KiB", "320.00 KiB", "1.00 MiB"] {
            assert!(table.contains(b), "{b} missing:\n{table}");
        }
        let bytes = std::fs::read(&out).unwrap();
        if name.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(texts(&text, "tick-x"), ["64", "160", "320", "1024"]);
        assert_eq!(texts(&text, "label-x"), ["expert budget (KiB)"]);
        assert!(!texts(&text, "title").is_empty());
        check_axes(&text);
    }
}

#[test]
fn bench_plot_png_is_a_png_and_other_names_are_refused() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let png = dir.join("bench-threads.png");
    let _ = std::fs::remove_file(&png);
    let args = |plot| sweep_args(&["-p", "4", "-n", "2", "-r", "2"], "threads=1,2", plot);
    ok_stdout(&args(&png));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let e = err_text(&args(&dir.join("bench.jpg")));
    assert!(e.contains(".svg or .png"), "{e}");
}

#[test]
fn refusals_are_clear_errors() {
    let e = err_text(&[
        "bench",
        "-m",
        TINY,
        "--paging",
        "mmap",
        "--sweep",
        "expert-budget=1MiB,2MiB",
    ]);
    assert!(e.contains("needs --paging cache"), "{e}");
    let e = err_text(&["bench", "-m", TINY, "--paging", "disk"]);
    assert!(e.contains("mmap, cache or auto"), "{e}");
    let e = err_text(&["bench", "-m", TINY, "--plot", "x.svg"]);
    assert!(e.contains("--sweep"), "{e}");
    let e = err_text(&["bench", "-m", TINY, "--sweep", "depth=0..4096"]);
    assert!(e.contains("cannot start at 0"), "{e}");
    let e = err_text(&["bench", "-m", TINY, "-o", "xml"]);
    assert!(e.contains("md, json or csv"), "{e}");
    let e = err_text(&bench_args("no/such.gguf", &[]));
    assert!(e.contains("no/such.gguf"), "{e}");
    let e = err_text(&["bench", "-m", TINY, "-t", "0"]);
    assert!(e.contains("at least 1"), "{e}");
    // a dense model has no expert cache: a budget sweep would repeat one row
    let dense = common::gemma3_270m_path().to_str().unwrap();
    let e = err_text(&["bench", "-m", dense, "--sweep", "expert-budget=1MiB,2MiB"]);
    assert!(e.contains("dense model"), "{e}");
}

/// A gemma-4-26B-A4B-shaped GGUF with llama.cpp's default Q4_K_M type mix, written sparse
/// (header and tensor index; every tensor a hole) by `lode::synth`.
fn write_sparse_26b(path: &Path) {
    use lode::synth::{gemma4::Gemma4Shape, Recipe};
    let spec = Gemma4Shape::b26_a4b().spec(Recipe::Q4KM).unwrap();
    spec.write_sparse(path).unwrap();
}

#[test]
fn dry_run_bound_of_26b_a4b_matches_the_design() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-26b-a4b-q4_k_m.gguf");
    write_sparse_26b(&path);
    let path = path.to_str().unwrap();
    let out = ok_stdout(&bench_args(path, &["--dry-run", "-t", "1", "-o", "json"]));
    let rows: Vec<J> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    // docs/gemma4.md §1.4: ≈ 2.57 GB per decoded token for the default Q4_K_M recipe.
    let bpt = r["bytes_per_token"].as_u64().unwrap() as f64;
    assert!((bpt / 2.57e9 - 1.0).abs() < 0.03, "bytes/token {bpt}");
    // §1.3: 3.82 B parameters active per token, 25.23 B in the text model.
    let p = &r["params"];
    let active = p["active_per_token"].as_u64().unwrap() as f64;
    assert!((active / 3.822e9 - 1.0).abs() < 0.005, "active {active}");
    let total = p["total"].as_u64().unwrap() as f64;
    assert!((total / 25.233e9 - 1.0).abs() < 0.005, "total {total}");
    // §1.4: the whole file ≈ 16.8 GB, experts ≈ 15.1 GB.
    let b = &r["bytes"];
    assert!((b["total"].as_u64().unwrap() as f64 / 16.8e9 - 1.0).abs() < 0.03);
    assert!((b["experts"].as_u64().unwrap() as f64 / 15.1e9 - 1.0).abs() < 0.03);
    let bw = r["bandwidth"].as_f64().unwrap();
    let bound = r["bound_ts"].as_f64().unwrap();
    assert!((bound - bw / bpt).abs() <= 1e-9 * bound);
    // The Markdown form prints the same bound.
    let md = ok_stdout(&bench_args(path, &["--dry-run", "-t", "1"]));
    assert!(md.contains("weight bytes per decoded token: 2.5"), "{md}");
    assert!(md.contains("decode bound"), "{md}");
    // The file stays in the target dir (sparse: a few KB on disk) for manual `--dry-run`s.
}
