//! The `synthpipe` binary: a thin shell over `synthpipe::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    synthpipe::cli::main()
}
