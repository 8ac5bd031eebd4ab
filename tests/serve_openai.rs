//! The real `openai` Python client against `lode serve` on Gemma 3 270M (tests/serve_openai.py).
//! Uses the system python3 when it has `openai`, else pip-installs it into a venv under the
//! target directory once.

mod serve_support;

use std::path::PathBuf;
use std::process::Command;

use serve_support::{gemma3_path, Server};

fn has_openai(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A python that can `import openai`.
fn python_with_openai() -> String {
    if has_openai("python3") {
        return "python3".into();
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let py = venv.join("bin/python");
    let py_s = py.to_string_lossy().into_owned();
    if !has_openai(&py_s) {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(st.success(), "creating {venv:?}");
        let st = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "openai"])
            .status()
            .expect("pip install openai");
        assert!(st.success(), "pip install openai failed");
    }
    py_s
}

#[test]
fn openai_python_client() {
    let python = python_with_openai();
    let s = Server::start(
        gemma3_path(),
        &["--api-key", "sk-lode-test", "--ctx", "1024"],
    );
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/serve_openai.py"
        ))
        .arg(format!("http://{}", s.addr))
        .arg("sk-lode-test")
        .output()
        .expect("running tests/serve_openai.py");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "serve_openai.py failed\nstdout:\n{so}\nstderr:\n{se}\nserver log:\n{}",
        s.log()
    );
    assert!(so.contains("all 12 checks passed"), "{so}");
}
