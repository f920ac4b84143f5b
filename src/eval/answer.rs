//! The answer a generation gives: the last complete `<answer>…</answer>` span, as text or
//! as PhantomWiki's answer set, and whether the generation ends in one.

use crate::eval::score::split_prediction;

const OPEN: &str = "<answer>";
const CLOSE: &str = "</answer>";

/// The text of the last complete `<answer>…</answer>` span, if any: the last closing tag and
/// the nearest opening tag before it.
pub fn last_answer(text: &str) -> Option<&str> {
    let close = text.rfind(CLOSE)?;
    let open = text[..close].rfind(OPEN)?;
    Some(&text[open + OPEN.len()..close])
}

/// The answer set a completion gives: the last span split on commas, normalised, deduped;
/// empty when there is no span.
pub fn predicted(text: &str) -> Vec<String> {
    last_answer(text).map(split_prediction).unwrap_or_default()
}

/// Whether the completion ends in a complete answer span: after it only whitespace and
/// closing punctuation (`The answer is <answer>x</answer>.` is well formed).
pub fn well_formed(text: &str) -> bool {
    match (text.rfind(CLOSE), last_answer(text)) {
        (Some(close), Some(_)) => text[close + CLOSE.len()..]
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, '.' | '!' | ')' | '"' | '\'')),
        _ => false,
    }
}
