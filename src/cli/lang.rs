//! The rule-language commands: `check` and `fmt`, and the rendering of coded diagnostics.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::error::{CliError, Code};
use crate::lang::{self, Diagnostic, diag};

pub fn print_diags<C: diag::DiagCode>(diags: &[Diagnostic<C>], path: &Path, text: &str) {
    if diags.is_empty() {
        return;
    }
    let rendered = diag::render(
        diags,
        &path.display().to_string(),
        text,
        crate::util::color(),
    );
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(rendered.as_bytes());
}

pub fn read_error(path: &Path, e: &std::io::Error) {
    CliError::new(Code::Read, format!("cannot read `{}`: {e}", path.display()))
        .help("check the path and its permissions")
        .print();
}

pub fn check(files: &[PathBuf]) -> ExitCode {
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

pub fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
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
        if let Err(e) = crate::util::fsio::write_atomic(path, formatted.as_bytes()) {
            CliError::new(
                Code::Write,
                format!("cannot write `{}`: {e}", path.display()),
            )
            .print();
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
