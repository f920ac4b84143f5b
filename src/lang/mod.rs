//! The rule language: syntax (pest, `syntax`), spanned AST (`ast`), checker (`check`) and
//! typed IR (`ir`), diagnostics (`diag`) and the canonical printer (`fmt`).

pub mod ast;
pub mod check;
pub mod diag;
pub mod fmt;
pub mod ir;
pub mod syntax;

pub use check::{Checked, check_file, check_source};
pub use diag::{Code, Diagnostic, Severity};

/// Formats rule text canonically, refusing (as an internal error) any output whose meaning
/// differs from the input, so `fmt` can never silently change or lose a rule.
pub fn format_source(src: &str) -> Result<String, Diagnostic> {
    let ast = syntax::parse(src)?;
    let out = fmt::format(&ast, src);
    let again = syntax::parse(&out).map_err(|d| internal_fmt_error(&d.message))?;
    if strip_spans(&ast) != strip_spans(&again) {
        return Err(internal_fmt_error("the formatted file has a different syntax tree"));
    }
    Ok(out)
}

fn internal_fmt_error(why: &str) -> Diagnostic {
    Diagnostic::new(Code::Syntax, ast::Span::new(0, 0), format!("fmt would change the meaning of this file: {why}"))
        .label("file left unchanged")
        .help("this is a bug in synthpipe; please report it with the file attached")
}

/// The AST as JSON with spans and comments removed, for comparing two parses.
fn strip_spans(f: &ast::RuleFile) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            // Spans are objects with exactly `start` and `end`; flags like `key` hold an
            // optional span, so they become `null` or `true`.
            serde_json::Value::Object(m) if m.len() == 2 && m.contains_key("start") && m.contains_key("end") => {
                *v = serde_json::Value::Bool(true);
            }
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("span"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&f.items).unwrap_or_default();
    strip(&mut v);
    v
}
