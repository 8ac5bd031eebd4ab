//! `lode chat` on a real (pseudo-)terminal, typed at as a person would: the up arrow recalls
//! the previous line, Ctrl-C clears a line with text and ends the chat on an empty one, Ctrl-D
//! ends it too, each exit leaves the shell on a fresh line, and the history is kept in the
//! data directory.
#![cfg(unix)]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tiny::fixture;

/// A child process on the slave side of a new pseudo-terminal; everything it prints is
/// collected from the master side by a thread.
struct Pty {
    child: Child,
    input: File,
    screen: Arc<Mutex<Vec<u8>>>,
}

fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let mut ws = libc::winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the out-pointers are live locals; a null name and termios ask for the defaults.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            // *const on Linux, *mut on macOS
            std::ptr::addr_of_mut!(ws) as _,
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded, so both are open descriptors that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

impl Pty {
    fn spawn(args: &[&str], data_home: &std::path::Path) -> Pty {
        let (master, slave) = openpty();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lode"));
        cmd.args(args)
            .env("TERM", "xterm")
            .env("HOME", data_home)
            .env("XDG_DATA_HOME", data_home)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec: a new session, then the
        // terminal on stdin becomes its controlling terminal (so Ctrl-C is a SIGINT for it).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd); // our copies of the slave side: the reader sees EOF when the child exits
        let mut reader = File::from(master.try_clone().unwrap());
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            input: File::from(master),
            screen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the output holds `n` prompts (`> ` drawn by the editor).
    fn prompts(&self, n: usize) -> String {
        self.until(|t| t.matches("> ").count() >= n, &format!("{n} prompts"))
    }

    fn until(&self, done: impl Fn(&str) -> bool, what: &str) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.text();
            if done(&t) {
                // the editor asks for the cursor position and waits up to 100 ms for an answer
                // before it reads keys: type only after that
                std::thread::sleep(Duration::from_millis(250));
                return self.text();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "waited for {what}; the screen:\n{t:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn keys(&mut self, s: &str) {
        self.input.write_all(s.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// The exit status, within 30 s.
    fn exit(&mut self) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("lode chat did not exit; the screen:\n{:?}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn chat_args(model: &str) -> Vec<&str> {
    vec!["chat", "-m", model, "--temp", "0", "-n", "4", "-t", "1"]
}

#[test]
fn arrows_history_ctrl_c_and_ctrl_d_on_a_terminal() {
    let model = fixture("gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf");
    let model = model.to_str().unwrap();
    let home = common::tmp_dir("pty");

    let mut p = Pty::spawn(&chat_args(model), &home);
    p.prompts(1);
    p.keys("hello there\r");
    let before = p.prompts(2);
    // up arrow: the editor redraws the line with the previous message
    p.keys("\x1b[A");
    let after = p.until(
        |t| t.len() > before.len() && t[before.len()..].contains("hello there"),
        "the recalled line",
    );
    assert!(after[before.len()..].contains("hello there"));
    p.keys("\r");
    p.prompts(3);
    // Ctrl-C on a line with text clears the line and keeps the chat
    p.keys("half a thought");
    p.until(|t| t.ends_with("half a thought"), "the typed text");
    p.keys("\x03");
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.child.try_wait().unwrap().is_none(), "{:?}", p.text());
    // Ctrl-C on the empty line ends the chat, cleanly, on a fresh line
    p.keys("\x03");
    let status = p.exit();
    let screen = p.text();
    assert!(status.success(), "{status}: {screen:?}");
    assert!(screen.ends_with('\n'), "{screen:?}");
    assert!(!screen.contains("panicked"), "{screen:?}");
    let history = std::fs::read_to_string(home.join("lode/chat_history")).unwrap();
    assert!(history.contains("hello there"), "{history:?}");
    assert!(!history.contains("half a thought"), "{history:?}");

    // Ctrl-D on an empty line: the same clean exit; the history of the last run is there
    let mut p = Pty::spawn(&chat_args(model), &home);
    let before = p.prompts(1);
    p.keys("\x1b[A");
    p.until(
        |t| t[before.len()..].contains("hello there"),
        "history from the earlier chat",
    );
    // clear the recalled line (Ctrl-C), then Ctrl-D on the empty one
    p.keys("\x03");
    std::thread::sleep(Duration::from_millis(300));
    p.keys("\x04");
    let status = p.exit();
    let screen = p.text();
    assert!(status.success(), "{status}: {screen:?}");
    assert!(screen.ends_with('\n'), "{screen:?}");
    let _ = std::fs::remove_dir_all(&home);
}
