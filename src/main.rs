//! The `lode` binary: parse arguments, call the library, print the error chain once.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
