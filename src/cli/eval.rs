//! The scoring commands: `score` (PhantomWiki's set metrics on synthpipe questions) and
//! `eval` (official benchmark metrics, strata, the probe and paired differences).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Exit 0 with the report on stdout, or 2 with every load error on stderr.
pub fn score(gold: &Path, predictions: &Path, json: bool) -> ExitCode {
    match crate::eval::score::score_files(gold, predictions) {
        Ok(report) => print_result(&report, json, || report.table()),
        Err(errors) => load_failed("score", &errors),
    }
}

/// Renders load errors on stderr with a count line; exit 2.
fn load_failed(command: &str, errors: &[crate::eval::score::ScoreError]) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ =
        err.write_all(crate::eval::score::render_errors(errors, crate::util::color()).as_bytes());
    let _ = writeln!(err, "{command} failed: {} error(s)", errors.len());
    ExitCode::from(2)
}

/// Prints a result as pretty JSON or as its table: exit 0 (2 if it cannot be serialised).
pub fn print_result(
    value: &impl serde::Serialize,
    json: bool,
    table: impl FnOnce() -> String,
) -> ExitCode {
    let out = if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: cannot serialise the result: {e} (this is a bug in synthpipe)");
                return ExitCode::from(2);
            }
        }
    } else {
        table()
    };
    // A closed pipe (`| head`) is not a failure worth a panic; print! would panic on it.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// Exit 0 with the evaluation on stdout; 1 when it was computed but some data records
/// were skipped (their diagnostics on stderr); 2 when nothing could be scored.
pub fn eval(
    bench: crate::eval::bench::Benchmark,
    data: &Path,
    predictions: &Path,
    baseline: Option<&Path>,
    aliases: Option<&Path>,
    json: bool,
) -> ExitCode {
    let found = crate::eval::eval_files(bench, data, predictions, baseline, aliases);
    let (evaluation, warnings) = match found {
        Ok(r) => r,
        Err(errors) => return load_failed("eval", &errors),
    };
    if !warnings.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(
            crate::eval::score::render_errors(&warnings, crate::util::color()).as_bytes(),
        );
        let _ = writeln!(
            err,
            "{} record(s) of the data file were skipped; the rest were scored",
            warnings.len()
        );
    }
    let code = print_result(&evaluation, json, || evaluation.table());
    if warnings.is_empty() || code != ExitCode::SUCCESS {
        code
    } else {
        ExitCode::from(1)
    }
}
