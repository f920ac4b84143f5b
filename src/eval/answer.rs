//! The answer a generation gives: the last `<answer>…</answer>` span as PhantomWiki's parser
//! finds it, as text or as its answer set, and whether the generation ends in one.

use crate::eval::score::split_prediction;

const OPEN: &str = "<answer>";
const CLOSE: &str = "</answer>";

/// The text of the last `<answer>…</answer>` span, if any, as PhantomWiki reads it: the last
/// match of Python's `re.findall(r"<answer>(.*?)</answer>", text)` (phantom_eval's
/// `CoTAgent.parse_answer`, which the paper's training reward and benchmark scoring both
/// call). So a span runs from an opening tag to the first closing tag after it, cannot hold
/// a line break, and the search for the next span resumes after that closing tag.
pub fn last_answer(text: &str) -> Option<&str> {
    last_span(text).map(|(start, end)| &text[start..end])
}

/// Byte range of the last span's content (see [`last_answer`]).
fn last_span(text: &str) -> Option<(usize, usize)> {
    let mut last = None;
    let mut from = 0;
    while let Some(i) = text[from..].find(OPEN).map(|i| from + i) {
        let start = i + OPEN.len();
        // `.` matches anything but a line feed, and `.*?` stops at the first closing tag.
        let line_end = text[start..].find('\n').map_or(text.len(), |n| start + n);
        match text[start..line_end].find(CLOSE) {
            Some(n) => {
                last = Some((start, start + n));
                from = start + n + CLOSE.len();
            }
            // No match from this opening tag, nor from any later one on its line: the
            // regex resumes on the next line.
            None if line_end < text.len() => from = line_end + 1,
            None => break,
        }
    }
    last
}

/// The answer set a completion gives: the last span split on commas, normalised, deduped;
/// empty when there is no span.
pub fn predicted(text: &str) -> Vec<String> {
    last_answer(text).map(split_prediction).unwrap_or_default()
}

/// Whether the completion ends in a complete answer span: after it only whitespace and
/// closing punctuation (`The answer is <answer>x</answer>.` is well formed).
pub fn well_formed(text: &str) -> bool {
    last_span(text).is_some_and(|(_, end)| {
        text[end + CLOSE.len()..]
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, '.' | '!' | ')' | '"' | '\''))
    })
}
