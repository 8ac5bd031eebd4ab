//! Running the built `lode` binary: `lode inspect --json`, the one-error-line check on bad input,
//! and broken copies of GGUF files written with lode's own writer.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use lode::gguf::{Gguf, GgufWriter, Metadata, TensorDesc, Value, DEFAULT_ALIGNMENT};

pub use super::tmp_dir;

/// `cmd` started with stdin, stdout and stderr piped.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `cmd` run to its end with `input` on stdin (then closed); its output, whatever the exit.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = spawn_piped(cmd);
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `lode args...`; asserts failure with exactly one `lode: error:` line containing every
/// `want` fragment, and returns that line.
pub fn fails_with(args: &[&str], want: &[&str]) -> String {
    let os: Vec<OsString> = args.iter().map(OsString::from).collect();
    fails_with_os(&os, want).0
}

/// [`fails_with`], and nothing else on stderr: the error line is the only line.
pub fn fails_alone(args: &[&str], want: &[&str]) -> String {
    let os: Vec<OsString> = args.iter().map(OsString::from).collect();
    let (line, stderr) = fails_with_os(&os, want);
    assert_eq!(
        stderr.trim_end(),
        line,
        "lode {args:?}: more than the error on stderr"
    );
    line
}

/// [`fails_with`] for arguments that need not be UTF-8; also returns all of stderr.
pub fn fails_with_os(args: &[OsString], want: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(args)
        .output()
        .expect("running lode");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "lode {args:?} succeeded; stderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "lode {args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "lode {args:?} panicked:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("lode: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "lode {args:?}: stderr:\n{stderr}");
    for w in want {
        assert!(
            errors[0].contains(w),
            "lode {args:?}: `{}` lacks `{w}`",
            errors[0]
        );
    }
    (errors[0].to_string(), stderr.clone())
}

/// Rewrites `src` to `dst` with metadata edited by `edit` and only the tensors `keep` accepts,
/// through lode's own writer (which the gguf tests check against gguf-py).
pub fn rewrite(
    src: &str,
    dst: &Path,
    edit: impl Fn(&str, &Value) -> Value,
    keep: impl Fn(&str) -> bool,
) {
    let g = Gguf::open(src).unwrap();
    let tensors: Vec<_> = g.tensors().iter().filter(|t| keep(&t.name)).collect();
    let mut md = Metadata::default();
    for (k, v) in g.metadata().iter() {
        if k != "general.alignment" {
            md.insert(k.to_string(), edit(k, v));
        }
    }
    let descs: Vec<TensorDesc> = tensors
        .iter()
        .map(|t| TensorDesc::new(t.name.clone(), t.ty, &t.dims).unwrap())
        .collect();
    let mut w = GgufWriter::create(dst, &md, &descs, DEFAULT_ALIGNMENT).unwrap();
    for t in &tensors {
        w.write_tensor(&t.name, g.tensor_data(t)).unwrap();
    }
    w.finish().unwrap();
}

/// A copy of `src` at `dst` with metadata `key` set to `value`.
pub fn with_value(src: &str, dst: &Path, key: &str, value: Value) {
    rewrite(
        src,
        dst,
        |k, old| if k == key { value.clone() } else { old.clone() },
        |_| true,
    );
}

/// A copy of `src` at `dst` without the tensor `name`.
pub fn without_tensor(src: &str, dst: &Path, name: &str) {
    rewrite(src, dst, |_, v| v.clone(), |t| t != name);
}

/// `lode inspect --json EXTRA… PATH`, parsed; a failed run fails the test with lode's stderr.
pub fn inspect_json(path: &Path, extra: &[&str]) -> serde_json::Value {
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
