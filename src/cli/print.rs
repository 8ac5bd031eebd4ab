//! Printing from the subcommands without panicking. `println!` panics when stdout's reader has
//! gone (`lode inspect MODEL | head -1`: "failed printing to stdout: Broken pipe"), so here:
//!
//! - `out!` / `outln!` write to stdout and return `anyhow::Result<()>`; a closed pipe becomes
//!   [`StdoutClosed`], which `cli::main` turns into a quiet exit with status 0 (what `head`'s
//!   writer expects), whatever the subcommand.
//! - `eprint!` / `eprintln!` are shadowed in `cli`: diagnostics are best effort and a closed
//!   stderr (`lode run ... 2>&1 | head -1`) is ignored instead of panicking.
//! - `print!` / `println!` do not compile in `cli`, so the panicking forms cannot come back.

use std::fmt;
use std::io::{self, Write};

/// stdout's reader has gone away; the command stops and lode exits 0.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Maps a failed stdout write: a broken pipe to [`StdoutClosed`], anything else named.
pub fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("writing to stdout")
    }
}

/// True when `e` (or a cause) is a closed stdout.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

pub fn write_stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|_| out.flush())
        .map_err(stdout_error)
}

pub fn write_stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().write_fmt(args);
}

/// `print!` that returns `anyhow::Result<()>` (see the module doc).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that returns `anyhow::Result<()>` (see the module doc).
macro_rules! outln {
    () => {
        $crate::cli::print::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::print::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Best-effort `eprintln!`: a closed stderr is ignored (see the module doc).
macro_rules! eprintln {
    () => {
        $crate::cli::print::write_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::print::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Best-effort `eprint!`.
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::cli::print::write_stderr(format_args!($($arg)*))
    };
}

#[allow(unused_macros)]
macro_rules! println {
    ($($arg:tt)*) => {
        compile_error!("println! panics on a closed stdout: use outln!(...)? (src/cli/print.rs)")
    };
}

#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {
        compile_error!("print! panics on a closed stdout: use out!(...)? (src/cli/print.rs)")
    };
}
