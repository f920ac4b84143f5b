//! The command line: argument parsing and the `check` and `fmt` commands.
//!
//! Exit codes: 0 success (warnings allowed), 1 `fmt --check` found files to reformat,
//! 2 errors in the input (diagnostics on stderr) or bad usage.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::lang::{self, Diagnostic, diag};

#[derive(Parser, Debug)]
#[command(
    name = "synthpipe",
    version,
    about = "Rule-generated multi-hop reasoning data, RL fine-tuning and evaluation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check rule files and report every problem found.
    Check {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rewrite rule files in the canonical layout (comments are kept).
    Fmt {
        /// Do not write; exit 1 if any file is not already formatted.
        #[arg(long)]
        check: bool,
        /// Rule files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => check(&files),
        Command::Fmt { check, files } => fmt(&files, check),
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn print_diags(diags: &[Diagnostic], path: &Path, text: &str) {
    if diags.is_empty() {
        return;
    }
    let rendered = diag::render(diags, &path.display().to_string(), text, color());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(rendered.as_bytes());
}

fn read_error(path: &Path, e: &std::io::Error) {
    eprintln!(
        "error[synthpipe::cli::read]: cannot read `{}`: {e}\n  help: check the path and its permissions",
        path.display()
    );
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    let (mut errors, mut warnings) = (0usize, 0usize);
    for path in files {
        match lang::check_file(path) {
            Err(e) => {
                read_error(path, &e);
                failed = true;
            }
            Ok((text, checked)) => {
                print_diags(&checked.diagnostics, path, &text);
                let e = checked.diagnostics.iter().filter(|d| d.is_error()).count();
                errors += e;
                warnings += checked.diagnostics.len() - e;
                failed |= e > 0;
            }
        }
    }
    if failed {
        eprintln!(
            "check failed: {errors} error(s), {warnings} warning(s) in {} file(s)",
            files.len()
        );
        ExitCode::from(2)
    } else {
        if warnings > 0 {
            eprintln!("{warnings} warning(s)");
        }
        ExitCode::SUCCESS
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut bad_input = false;
    let mut unformatted = false;
    for path in files {
        let text = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                read_error(path, &e);
                bad_input = true;
                continue;
            }
        };
        let formatted = match lang::format_source(&text) {
            Ok(f) => f,
            Err(d) => {
                print_diags(&[d], path, &text);
                bad_input = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check_only {
            println!("would reformat {}", path.display());
            unformatted = true;
            continue;
        }
        if let Err(e) = write_atomic(path, &formatted) {
            eprintln!(
                "error[synthpipe::cli::write]: cannot write `{}`: {e}",
                path.display()
            );
            bad_input = true;
        }
    }
    if bad_input {
        ExitCode::from(2)
    } else if unformatted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Replaces a file by writing a sibling and renaming it, so a crash never leaves half a file.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("fmt-tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
