//! Hostile use of the CLI (issue #15): odd output paths (devices, FIFOs, symlinks,
//! directories, the input itself), signals during a write, crafted metadata (block_count
//! 0xFFFFFFFF, a 2^62 context, a template that loops), closed pipes on stdout. Each case ends
//! in one clear error line or the documented behaviour (README "Output files"): no panic, no
//! hang, nothing of the user's lost. Everything runs on the tiny Gemma 4 fixture (< 1 s each).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{fails_with, tmp_dir, with_value};
use common::tiny::fixture;
use lode::gguf::Value;

fn lode() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lode"))
}

fn tiny_path(q: &str) -> PathBuf {
    fixture(&format!("gemma4-tiny/gguf/gemma4-tiny-public-{q}.gguf"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs lode; asserts it exited 0 without a panic or an error line.
fn succeeds(args: &[&str]) -> Output {
    let out = lode().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lode {args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    out
}

/// Files in `d` whose names mark a temporary output.
fn temps(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// `lode quantize F32 OUT q8_0` on the tiny model; it must succeed.
fn quantize_to(out: &Path) -> Output {
    succeeds(&["quantize", s(&tiny_path("f32")), s(out), "q8_0"])
}

/// What `lode quantize F32 → q8_0` writes to a regular file (the reference bytes).
fn quantized_reference(d: &Path) -> Vec<u8> {
    let p = d.join("reference.gguf");
    quantize_to(&p);
    std::fs::read(p).unwrap()
}

/// A fresh `tmp_dir(dir)`, the reference bytes written in it, and `out` in it, free.
fn output_case(dir: &str, out: &str) -> (PathBuf, Vec<u8>, PathBuf) {
    let d = tmp_dir(dir);
    let want = quantized_reference(&d);
    let out = fresh(&d, out);
    (d, want, out)
}

/// `lode run -m MODEL -p hi EXTRA…`.
fn run_hi<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "-m", model, "-p", "hi"];
    args.extend_from_slice(extra);
    args
}

/// `d/name`, with whatever an earlier run left there removed.
fn fresh(d: &Path, name: &str) -> PathBuf {
    let p = d.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// The type of the entry at `p` itself (a link is not followed).
fn entry_type(p: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(p).unwrap().file_type()
}

/// `lode bench` on `model`, small: 4 prompt and 2 generated tokens, one repetition.
fn small_bench(model: &str) -> Vec<&str> {
    vec![
        "bench",
        "-m",
        model,
        "-p",
        "4",
        "-n",
        "2",
        "-r",
        "1",
        "--bandwidth-size",
        "1MiB",
    ]
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// --- 1. outputs that are not regular files -------------------------------------------------

#[test]
fn device_node_output_is_written_in_place_and_stays_a_device() {
    use std::os::unix::fs::FileTypeExt;
    let d = tmp_dir("hostile-dev");
    let node = fresh(&d, "fakenull");
    let c = std::ffi::CString::new(s(&node)).unwrap();
    // SAFETY: `c` is a valid path string; mknod only reads it. (1, 3) is /dev/null.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if made != 0 {
        assert!(!is_root(), "mknod failed as root");
        eprintln!("skipped: mknod needs root");
        return;
    }
    quantize_to(&node);
    assert!(
        entry_type(&node).is_char_device(),
        "the device entry was replaced"
    );
    assert!(temps(&d).is_empty());
    // and a stats file into it
    let m = tiny_path("q8_0");
    succeeds(&run_hi(s(&m), &["-n", "2", "--stats-json", s(&node)]));
    assert!(entry_type(&node).is_char_device());
}

#[test]
fn fifo_output_streams_the_same_bytes() {
    use std::os::unix::fs::FileTypeExt;
    let (d, want, fifo) = output_case("hostile-fifo", "fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: `c` is a valid path string; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    quantize_to(&fifo);
    assert_eq!(
        reader.join().unwrap(),
        want,
        "bytes through the FIFO differ"
    );
    assert!(entry_type(&fifo).is_fifo());
    assert!(temps(&d).is_empty());
}

#[test]
fn symlink_to_a_file_replaces_the_file_and_keeps_the_link() {
    let (d, want, link) = output_case("hostile-link", "link.gguf");
    let target = d.join("real.gguf");
    std::fs::write(&target, b"old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    quantize_to(&link);
    assert!(entry_type(&link).is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), want);
    assert!(temps(&d).is_empty());
}

#[test]
fn symlink_to_stdout_writes_to_stdout() {
    let (_, want, link) = output_case("hostile-stdout", "out");
    // the issue's case on Linux; elsewhere /dev/stdout (a device on macOS)
    let stdout = if cfg!(target_os = "linux") {
        "/proc/self/fd/1"
    } else {
        "/dev/stdout"
    };
    std::os::unix::fs::symlink(stdout, &link).unwrap();
    let out = quantize_to(&link);
    assert_eq!(out.stdout, want);
    assert!(entry_type(&link).is_symlink());
    // --stats-json /dev/stdout: the text, then the JSON, both on stdout
    let m = tiny_path("q8_0");
    let out = succeeds(&run_hi(
        s(&m),
        &["-n", "3", "--temp", "0", "--stats-json", "/dev/stdout"],
    ));
    let text = String::from_utf8(out.stdout).unwrap();
    let json_at = text.find('{').expect("no JSON on stdout");
    let j: serde_json::Value = serde_json::from_str(&text[json_at..]).unwrap();
    assert_eq!(j["gen_tokens"], 3);
}

// --- 2. temporary files never stay behind --------------------------------------------------

#[test]
fn directory_and_trailing_slash_outputs_are_refused_before_work() {
    let d = tmp_dir("hostile-dir");
    let sub = d.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let f32 = tiny_path("f32");
    fails_with(&["quantize", s(&f32), s(&sub), "q8_0"], &["is a directory"]);
    let slash = format!("{}/new.gguf/", d.display());
    fails_with(&["quantize", s(&f32), &slash, "q8_0"], &["ends in `/`"]);
    let missing = format!("{}/no/such/dir/x.json", d.display());
    let m = tiny_path("q8_0");
    let t0 = Instant::now();
    let long = ["-n", "100000", "--ignore-eos", "--ctx", "100000"];
    let e = fails_with(
        &[run_hi(s(&m), &long), vec!["--stats-json", &missing]].concat(),
        &["does not exist"],
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "checked after the run: {e}"
    );
    fails_with(
        &["logits", "-m", s(&m), "--tokens", "2", "--out", s(&sub)],
        &["is a directory"],
    );
    assert!(temps(&d).is_empty() && temps(&sub).is_empty());
}

#[test]
fn failed_rename_removes_the_temporary_file() {
    // The target turns into a directory between the check and the rename.
    let d = tmp_dir("hostile-rename");
    let p = d.join("out.json");
    let _ = std::fs::remove_dir_all(&p);
    let mut out = lode::output::Output::create(&p, &[]).unwrap();
    std::io::Write::write_all(&mut out, b"{}").unwrap();
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("keep"), b"user data").unwrap();
    let e = out.commit().unwrap_err().to_string();
    assert!(e.contains("out.json"), "{e}");
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
    assert_eq!(std::fs::read(p.join("keep")).unwrap(), b"user data");
}

/// Starts a long `lode run` writing an expert trace, waits for its temporary file, sends
/// `sig`, and checks that it died of the signal with nothing left behind.
fn signal_leaves_no_temp(sig: libc::c_int, name: &str) {
    use std::os::unix::process::ExitStatusExt;
    let d = tmp_dir(name);
    let trace = d.join("trace.jsonl");
    let m = tiny_path("q8_0");
    let long = ["-n", "1000000", "--ignore-eos", "--ctx", "1000000"];
    let mut cmd = lode();
    cmd.args(run_hi(s(&m), &long))
        .args(["--trace-experts", s(&trace)])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // A test run started in the background by a shell without job control inherits SIGINT
    // ignored, and lode (rightly) keeps an ignored signal ignored: give the child the default
    // disposition so the test is about lode's handler, not about how the tests were started.
    // SAFETY: between fork and exec only async-signal-safe calls (signal).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            libc::signal(sig, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    common::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(10),
        || !temps(&d).is_empty(),
        || "no temporary file appeared".into(),
    );
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    // bounded: a child that survives the signal is killed and fails the test instead of
    // hanging it (common::wait_until would fail it but leave the child running)
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("lode still running 30 s after signal {sig}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(sig), "{status:?}");
    assert!(temps(&d).is_empty(), "left behind: {:?}", temps(&d));
    assert!(!trace.exists(), "a half trace was published");
}

#[test]
fn sigterm_leaves_no_temporary_file() {
    signal_leaves_no_temp(libc::SIGTERM, "hostile-sigterm");
}

#[test]
fn sigint_leaves_no_temporary_file() {
    signal_leaves_no_temp(libc::SIGINT, "hostile-sigint");
}

// --- 3. output equal to an input ----------------------------------------------------------

#[test]
fn output_equal_to_input_is_refused_and_the_input_kept() {
    let d = tmp_dir("hostile-same");
    let a = d.join("a.gguf");
    std::fs::copy(tiny_path("f32"), &a).unwrap();
    let before = std::fs::read(&a).unwrap();
    fails_with(&["quantize", s(&a), s(&a), "q8_0"], &["is the input"]);
    let alias = fresh(&d, "alias.gguf");
    std::os::unix::fs::symlink(&a, &alias).unwrap();
    fails_with(&["quantize", s(&a), s(&alias), "q8_0"], &["is the input"]);
    let q8 = d.join("q8.gguf");
    std::fs::copy(tiny_path("q8_0"), &q8).unwrap();
    for flag in ["--stats-json", "--trace-experts"] {
        fails_with(
            &["run", "-m", s(&q8), "-p", "hi", "-n", "2", flag, s(&q8)],
            &["is the input"],
        );
    }
    fails_with(
        &["logits", "-m", s(&q8), "--tokens", "2", "--out", s(&q8)],
        &["is the input"],
    );
    assert_eq!(std::fs::read(&a).unwrap(), before);
    assert_eq!(
        std::fs::read(&q8).unwrap(),
        std::fs::read(tiny_path("q8_0")).unwrap()
    );
    assert!(temps(&d).is_empty());
}

// --- 4. and 5. metadata and sizes that would allocate without bound ------------------------

fn with_key(d: &Path, name: &str, key: &'static str, v: Value) -> PathBuf {
    let p = d.join(name);
    with_value(s(&tiny_path("q8_0")), &p, key, v);
    p
}

#[test]
fn block_count_0xffffffff_is_one_error_line() {
    let d = tmp_dir("hostile-layers");
    let p = with_key(
        &d,
        "layers.gguf",
        "gemma4.block_count",
        Value::U32(0xFFFF_FFFF),
    );
    let t0 = Instant::now();
    for args in [
        vec!["inspect", s(&p)],
        vec!["inspect", "--json", s(&p)],
        vec!["run", "-m", s(&p), "-p", "hi", "-n", "2"],
        small_bench(s(&p)),
    ] {
        fails_with(&args, &["gemma4.block_count", "4294967295"]);
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    // one layer past the file: refused by the file, not only by sense
    let p = with_key(&d, "six.gguf", "gemma4.block_count", Value::U32(6));
    fails_with(
        &["run", "-m", s(&p), "-p", "hi", "-n", "2"],
        &["gemma4.block_count", "tensors for 5 layers"],
    );
    // a per-layer count far past sense names its key
    let p = with_key(
        &d,
        "heads.gguf",
        "gemma4.attention.head_count",
        Value::U64(1 << 40),
    );
    fails_with(
        &["run", "-m", s(&p), "-p", "hi", "-n", "2"],
        &["gemma4.attention.head_count", "1099511627776"],
    );
}

#[test]
fn a_2_pow_62_context_is_refused_everywhere() {
    let m = tiny_path("q8_0");
    let ctx = "4611686018427387904";
    fails_with(
        &["run", "-m", s(&m), "-p", "hi", "--ctx", ctx],
        &["--ctx", ctx],
    );
    fails_with(&["inspect", s(&m), "--ctx", ctx], &["--ctx", ctx]);
    let d = tmp_dir("hostile-ctx");
    let text = d.join("text.txt");
    std::fs::write(&text, "words ".repeat(100)).unwrap();
    fails_with(
        &["perplexity", "-m", s(&m), "-f", s(&text), "--ctx", ctx],
        &["--ctx", ctx],
    );
    // serve fails before it listens, so it never advertises that context
    fails_with(
        &["serve", "-m", s(&m), "--port", "0", "--ctx", ctx],
        &["--ctx", ctx],
    );
    // a large but valid context gives the true (not wrapped) KV size
    let out = succeeds(&["inspect", "--json", s(&m), "--ctx", "16777216"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let per_token = j["kv_cache"]["lode"]["global_bytes_per_token"]
        .as_u64()
        .unwrap();
    assert!(per_token > 0);
    assert!(j["kv_cache"]["lode"]["global_bytes"].as_u64().unwrap() == per_token << 24);
}

// --- 6. closed stdout ------------------------------------------------------------------------

/// Runs lode with stdout a pipe whose reader is already gone (and `stdin` as its input); it
/// must exit 0 quietly.
fn closed_stdout(args: &[&str], stdin: &[u8]) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(r);
    let mut child = lode()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "lode {args:?} with stdout closed: {:?}\n{err}",
        out.status
    );
    assert!(
        !err.contains("panicked") && !err.contains("error"),
        "lode {args:?}: {err}"
    );
}

#[test]
fn closed_stdout_is_a_quiet_success_in_every_printing_command() {
    let d = tmp_dir("hostile-pipe");
    let m = tiny_path("q8_0");
    let text = d.join("text.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog. ".repeat(20),
    )
    .unwrap();
    let trace = d.join("trace.jsonl");
    std::fs::write(
        &trace,
        "{\"token\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5]}\n\
         {\"token\":1,\"layer\":0,\"experts\":[2,3],\"weights\":[0.5,0.5]}\n",
    )
    .unwrap();
    let svg = d.join("sweep.svg");
    for args in [
        vec!["inspect", s(&m)],
        vec!["inspect", "--json", s(&m)],
        vec!["inspect", "--tensors", s(&m)],
        vec!["tokenize", "-m", s(&m), "hello world"],
        vec!["tokenize", "-m", s(&m), "--json", "hello world"],
        vec!["run", "-m", s(&m), "-p", "hi", "-n", "4"],
        vec!["perplexity", "-m", s(&m), "-f", s(&text), "-c", "32"],
        small_bench(s(&m)),
        vec![
            "bench",
            "-m",
            s(&m),
            "--dry-run",
            "--bandwidth-size",
            "1MiB",
        ],
        vec!["paging-sim", "--trace", s(&trace), "--budget", "1,2"],
        vec![
            "paging-sweep",
            "-m",
            s(&m),
            "--budgets",
            "1MiB",
            "-n",
            "2",
            "-c",
            "32",
            "--out",
            s(&svg),
        ],
    ] {
        closed_stdout(&args, b"");
    }
    // the chat REPL: answers to a closed stdout, then end of input
    closed_stdout(&["chat", "-m", s(&m), "-n", "4"], b"hi\nhello\n");
}

// --- 7. a template that loops -----------------------------------------------------------------

#[test]
fn nested_loop_template_stops_with_one_error_line() {
    let d = tmp_dir("hostile-template");
    let looping = "{% for a in range(1000) %}{% for b in range(1000) %}\
                   {% for c in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}";
    let p = with_key(
        &d,
        "loop.gguf",
        "tokenizer.chat_template",
        Value::String(looping.into()),
    );
    let t0 = Instant::now();
    fails_with(
        &["run", "-m", s(&p), "-p", "hi", "-n", "2", "--chat"],
        &["chat template", "loops too much"],
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // the library says the same wherever a template renders (server, chat, run)
    let t = lode::chat::ChatTemplate::new(looping).unwrap();
    let msgs = vec![serde_json::json!({"role": "user", "content": "hi"})];
    let e = t
        .render(&lode::chat::RenderRequest::new(&msgs))
        .unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
}

// --- 8. smaller things -------------------------------------------------------------------------

#[test]
fn small_input_mistakes_are_one_line_each() {
    let d = tmp_dir("hostile-small");
    let m = tiny_path("q8_0");
    fails_with(&["run", "-m", s(&d), "-p", "hi"], &["is a directory"]);
    fails_with(
        &["run", "-m", "/dev/null", "-p", "hi"],
        &["not a regular file"],
    );
    fails_with(&["inspect", s(&d)], &["is a directory"]);
    fails_with(&["run", "-m", s(&m), "-p", ""], &["the prompt is empty"]);
    fails_with(
        &["run", "-m", s(&m), "-p", "hi", "-n", "0"],
        &["--n-predict"],
    );
    for t in ["inf", "-inf", "NaN"] {
        fails_with(
            &["run", "-m", s(&m), "-p", "hi", &format!("--temp={t}")],
            &["temperature"],
        );
    }
}
