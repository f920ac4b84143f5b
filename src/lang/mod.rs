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
        return Err(internal_fmt_error(
            "the formatted file has a different syntax tree",
        ));
    }
    Ok(out)
}

fn internal_fmt_error(why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::Syntax,
        ast::Span::new(0, 0),
        format!("fmt would change the meaning of this file: {why}"),
    )
    .label("file left unchanged")
    .help("this is a bug in synthpipe; please report it with the file attached")
}

/// The AST as JSON with every span replaced by `true` (comments are not part of `items`), for
/// comparing two parses. Works on the JSON text: building a `serde_json::Value` of a large
/// file costs several times more than parsing it. A span serialises as
/// `{"start":N,"end":M}`, which cannot occur inside a JSON string (its quotes are escaped),
/// and an absent optional span (a flag like `key`) stays `null`.
fn strip_spans(f: &ast::RuleFile) -> String {
    let json = serde_json::to_string(&f.items).unwrap_or_default();
    let mut out = String::with_capacity(json.len());
    let mut rest = json.as_str();
    while let Some(i) = rest.find("{\"start\":") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match tail.find('}') {
            Some(j) if is_span(&tail[..=j]) => {
                out.push_str("true");
                rest = &tail[j + 1..];
            }
            _ => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_span(s: &str) -> bool {
    let Some(body) = s
        .strip_prefix("{\"start\":")
        .and_then(|b| b.strip_suffix('}'))
    else {
        return false;
    };
    let Some((a, b)) = body.split_once(",\"end\":") else {
        return false;
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    digits(a) && digits(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_stripping_ignores_layout_but_not_meaning() {
        let a = syntax::parse("pool p = [\"x\"];\nentity t count 2 { name: key pool p; }").unwrap();
        let b = syntax::parse("pool   p=[\"x\"];   entity t count 2 {\n name : key pool p ;\n}")
            .unwrap();
        let c = syntax::parse("pool p = [\"x\"];\nentity t count 2 { name: pool p; }").unwrap();
        assert_eq!(strip_spans(&a), strip_spans(&b));
        assert_ne!(
            strip_spans(&a),
            strip_spans(&c),
            "a dropped `key` must be noticed"
        );
        assert!(!strip_spans(&a).contains("\"start\""));
    }
}
