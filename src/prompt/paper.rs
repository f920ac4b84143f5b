//! The paper's prompts, verbatim: phantom_eval's chain-of-thought template and worked
//! examples, which kilian-group/phantom-reasoning uses for PhantomWiki training and for the
//! real benchmarks (`prompt: paper`).
//!
//! The texts in `paper/` are the strings of the two public repositories (MIT licence),
//! extracted byte for byte so that prompts match the published runs token for token:
//! - `instruction.txt`: `CoTLLMPrompt.COT_INSTRUCTION`, phantom-wiki 5542d6b,
//!   src/phantom_eval/prompts.py, with `constants.answer_sep` (`,`) filled in; its
//!   indentation is the source's, which the model sees too.
//! - `family.txt`: `COT_EXAMPLES` of the same file (PhantomWiki questions).
//! - `hotpotqa.txt`, `2wiki.txt`, `musique.txt`: `COT_EXAMPLES_HP`, `_2WIKI`, `_MSQ`,
//!   phantom-reasoning 2b36acd, examples/wiki/cot_examples.py (`pred.py` uses the HotpotQA
//!   examples for CofCA).

use serde::{Deserialize, Serialize};

/// Which prompt layout a stage uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// synthpipe's: a short instruction, the evidence, worked examples written from
    /// questions of another universe of the same rules (any domain).
    #[default]
    Synthpipe,
    /// The paper's: phantom_eval's template and its fixed worked examples (family domain
    /// and the real benchmarks).
    Paper,
}

const INSTRUCTION: &str = include_str!("paper/instruction.txt");

/// Which fixed example block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Examples {
    Family,
    HotpotQa,
    TwoWiki,
    Musique,
}

impl Examples {
    fn block(self) -> &'static str {
        match self {
            Examples::Family => include_str!("paper/family.txt"),
            Examples::HotpotQa => include_str!("paper/hotpotqa.txt"),
            Examples::TwoWiki => include_str!("paper/2wiki.txt"),
            Examples::Musique => include_str!("paper/musique.txt"),
        }
    }

    /// How many examples the block holds.
    pub fn count(self) -> usize {
        self.block().trim().split("\n\n").count()
    }

    /// The block cut to its first `k` examples, with the block's own leading and trailing
    /// line breaks, so `k` ≥ [`Examples::count`] gives the source's string exactly.
    pub fn first(self, k: usize) -> String {
        let block = self.block();
        let body = block.trim_matches('\n');
        let lead = &block[..block.len() - block.trim_start_matches('\n').len()];
        let tail = &block[block.trim_end_matches('\n').len()..];
        let kept: Vec<&str> = body.split("\n\n").take(k).collect();
        if kept.is_empty() {
            return String::new();
        }
        format!("{lead}{}{tail}", kept.join("\n\n"))
    }
}

/// phantom_eval's `get_all_evidence`: the articles' texts, one after another, separated by
/// a rule of `=` signs.
pub fn evidence<'a>(articles: impl IntoIterator<Item = &'a str>) -> String {
    articles
        .into_iter()
        .collect::<Vec<_>>()
        .join("\n================\n\n")
}

/// The template with its three fields filled in; it ends in `Answer: ` whether or not a
/// chat template wraps it, as the paper's prompts do.
pub fn render(evidence: &str, examples: &str, question: &str) -> String {
    // Filled in one pass, as Python's `str.format` does: a field's text is never searched
    // for the next placeholder, so evidence may hold anything.
    let mut out = String::with_capacity(INSTRUCTION.len() + evidence.len() + examples.len());
    let mut rest = INSTRUCTION;
    for (field, value) in [
        ("{evidence}", evidence),
        ("{examples}", examples),
        ("{question}", question),
    ] {
        let (before, after) = rest
            .split_once(field)
            .expect("instruction.txt holds each field once, in this order");
        out.push_str(before);
        out.push_str(value);
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_into_the_published_examples() {
        assert_eq!(Examples::Family.count(), 11);
        for b in [Examples::HotpotQa, Examples::TwoWiki, Examples::Musique] {
            assert_eq!(b.count(), 10, "{b:?}");
        }
        for b in [
            Examples::Family,
            Examples::HotpotQa,
            Examples::TwoWiki,
            Examples::Musique,
        ] {
            assert_eq!(b.first(99), b.block(), "{b:?}");
            assert_eq!(b.first(0), "");
            let one = b.first(1);
            assert_eq!(one.matches("Question: ").count(), 1, "{b:?}");
            assert_eq!(one.matches("<answer>").count(), 1, "{b:?}");
            assert!(one.trim_end().ends_with("</answer>."), "{b:?}");
        }
        // The family block starts with a line break and numbers its examples.
        assert!(
            Examples::Family
                .first(2)
                .starts_with("\nExample 1:\nQuestion: ")
        );
        assert!(Examples::Family.first(2).ends_with("</answer>.\n"));
    }

    #[test]
    fn the_template_is_filled_in_order_and_ends_in_answer() {
        let p = render("EV {question}", "EX", "Q?");
        // A field's own braces are never filled again: evidence may contain anything.
        assert!(p.contains("(BEGIN EVIDENCE)\n    EV {question}\n    (END EVIDENCE)"));
        assert!(p.contains("(START OF EXAMPLES)\n    EX\n    (END OF EXAMPLES)"));
        assert!(p.ends_with("\n    Question: Q?\n    Answer: "));
        assert!(p.starts_with("\n    You are given the following evidence:\n"));
        assert!(p.contains("a list of names separated by ','"));
        assert_eq!(evidence(["a\n", "b"]), "a\n\n================\n\nb");
    }
}
