//! `lode chat` driven through a pipe: commands, history with KV prefix reuse, thinking toggle,
//! Ctrl-C stopping an answer but not the program, and the Gemma 3 270M answer against
//! llama.cpp's greedy output for the same chat prompt.

mod serve_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::time::Duration;

use serve_support::common::cli::{run_with_input, spawn_piped};
use serve_support::{gemma3_path, TINY};

fn chat(model: &std::path::Path, args: &[&str], input: &str) -> (String, String) {
    let out = run_with_input(
        Command::new(env!("CARGO_BIN_EXE_lode"))
            .args(["chat", "-m"])
            .arg(model)
            .args(["--temp", "0", "--threads", "2"])
            .args(args),
        input.as_bytes(),
    );
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    (so, se)
}

/// `(cached, evaluated)` from each `/stats` line.
fn stats(stderr: &str) -> Vec<(usize, usize)> {
    stderr
        .lines()
        .filter_map(|l| {
            l.split(" cached, ")
                .collect::<Vec<_>>()
                .get(0..2)
                .map(<[_]>::to_vec)
        })
        .map(|p| {
            let cached = p[0].rsplit('(').next().unwrap().trim().parse().unwrap();
            let eval = p[1].split_whitespace().next().unwrap().parse().unwrap();
            (cached, eval)
        })
        .collect()
}

#[test]
fn tiny_commands_history_and_reuse() {
    let (out, err) = chat(
        std::path::Path::new(TINY),
        &["-n", "6", "--system", "Be brief."],
        "Hello\n/stats\nAnd again\n/stats\n/think on\n/think off\n/bogus\n/reset\n/stats\nHi\n/exit\nnever read\n",
    );
    // the tiny model's template has no thinking mode: /think on is refused, not pretended
    assert!(
        err.contains("has no thinking mode")
            && !err.contains("thinking on")
            && err.contains("thinking off"),
        "{err}"
    );
    assert!(
        err.contains("conversation cleared") && err.contains("commands:"),
        "{err}"
    );
    assert!(err.contains("no answer yet | context 0/"), "{err}");
    let s = stats(&err);
    assert_eq!(s.len(), 2, "{err}");
    // Turn 1 evaluates everything; turn 2 only what follows the cached history.
    assert_eq!(s[0].0, 0);
    // (at least the whole first prompt; the answer too when it re-tokenizes the same way)
    assert!(
        s[1].0 >= s[0].1,
        "turn 2 reused only {} tokens: {err}",
        s[1].0
    );
    // Three answers were printed (each ends with a newline), nothing after /exit.
    assert!(out.matches('\n').count() >= 3, "{out:?}");
}

#[test]
fn gemma3_answer_matches_llama_cpp_and_ctrl_c_stops_it() {
    let fixture = serve_support::common::gemma3_generation();
    let want = fixture["runs"]["precise"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "chat" && c["user_text"] == "Q: What is 12 * 7?\nA:")
        .unwrap()["greedy48_text"]
        .as_str()
        .unwrap()
        .to_string();
    // `\` at the end of a line continues the message, so the user text holds a newline.
    let (out, _) = chat(
        gemma3_path(),
        &["-n", "24", "-c", "512"],
        "Q: What is 12 * 7?\\\nA:\n",
    );
    let answer = out.trim_end_matches('\n');
    assert!(
        answer.len() > 20 && want.starts_with(answer),
        "{answer:?} vs {want:?}"
    );

    // Ctrl-C during a long answer stops it; the program goes on to the next line.
    let mut child = spawn_piped(
        Command::new(env!("CARGO_BIN_EXE_lode"))
            .args(["chat", "-m"])
            .arg(gemma3_path())
            .args(["--temp", "0", "-n", "3000", "-c", "4096", "--threads", "2"]),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Tell me a long story.\n").unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    assert!(!first_line.is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    stdin.write_all(b"/stats\n/exit\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("[interrupted]"), "{err}");
    let s = stats(&err);
    assert_eq!(s.len(), 1, "{err}");
    assert!(
        err.contains("generated ") && !err.contains("generated 3000 tokens"),
        "{err}"
    );
}
