//! Verifiable rewards of a completion against a question's gold answers: set-F1 and exact
//! match of the last `<answer>…</answer>` span (PhantomWiki's scorer: split on commas, trim,
//! lower-case), a format reward, and weighted sums of the three. Pure functions of the text.

use serde::{Deserialize, Serialize};

pub use crate::eval::answer::{last_answer, predicted, well_formed};
use crate::eval::score::score_answers;

/// How much each reward counts. The paper rewards set-F1 alone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub f1: f64,
    pub em: f64,
    pub format: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            f1: 1.0,
            em: 0.0,
            format: 0.0,
        }
    }
}

/// Every reward of one completion, and their weighted sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rewards {
    pub f1: f64,
    pub em: f64,
    pub format: f64,
    pub total: f64,
}

/// Rewards `completion` against `gold` (all answers; empty for an unanswerable question:
/// an empty span, or none, then scores 1).
pub fn reward(completion: &str, gold: &[String], w: &Weights) -> Rewards {
    let s = score_answers(gold, &predicted(completion));
    let format = f64::from(u8::from(well_formed(completion)));
    Rewards {
        f1: s.f1,
        em: s.em,
        format,
        total: w.f1 * s.f1 + w.em * s.em + w.format * format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gold(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn r(text: &str, g: &[&str]) -> Rewards {
        reward(text, &gold(g), &Weights::default())
    }

    #[test]
    fn the_last_span_counts_as_phantomwiki_parses_it() {
        // Each case checked against Python's re.findall(r"<answer>(.*?)</answer>", text)[-1],
        // phantom_eval's parser.
        assert_eq!(last_answer("no span"), None);
        assert_eq!(last_answer("<answer>open only"), None);
        assert_eq!(last_answer("close only</answer>"), None);
        assert_eq!(
            last_answer("<answer>a</answer> then <answer>b</answer>"),
            Some("b")
        );
        assert_eq!(last_answer("<answer>a</answer> then <answer>b"), Some("a"));
        assert_eq!(last_answer("<answer></answer>"), Some(""));
        assert_eq!(
            last_answer("<answer>x<answer>y</answer>"),
            Some("x<answer>y")
        );
        assert_eq!(last_answer("<answer>a</answer>b</answer>"), Some("a"));
        // A span never holds a line break.
        assert_eq!(last_answer("<answer>a\nb</answer>"), None);
        assert_eq!(
            last_answer("<answer>a</answer>\n<answer>b\nc</answer>"),
            Some("a")
        );
        assert_eq!(last_answer("<answer>a\n<answer>b</answer>"), Some("b"));
        assert_eq!(last_answer("<answer>x <answer>y\nz</answer>"), None);
    }

    #[test]
    fn set_f1_of_the_answer_span() {
        // Exact, with case, spacing and duplicates not mattering.
        let x = r(
            "Thinking…\n<answer> Ada Hart ,ada hart, Bo </answer>",
            &["Bo", "Ada Hart"],
        );
        assert_eq!((x.f1, x.em, x.format, x.total), (1.0, 1.0, 1.0, 1.0));
        // One of two: precision 1, recall 1/2.
        let x = r("<answer>Bo</answer>", &["Bo", "Ada Hart"]);
        assert!((x.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(x.em, 0.0);
        // Two given, one right: precision 1/2, recall 1.
        let x = r("<answer>Bo, Cy</answer>", &["Bo"]);
        assert!((x.f1 - 2.0 / 3.0).abs() < 1e-12);
        // An earlier span is ignored.
        assert_eq!(
            r("<answer>Bo</answer> no: <answer>Cy</answer>", &["Bo"]).f1,
            0.0
        );
        // No span is an empty answer: 0 against answers, 1 against none.
        let x = r("Bo", &["Bo"]);
        assert_eq!((x.f1, x.format), (0.0, 0.0));
        assert_eq!(r("I cannot tell.", &[]).f1, 1.0);
        assert_eq!(r("<answer></answer>", &[]).total, 1.0);
        assert_eq!(r("<answer>Bo</answer>", &[]).f1, 0.0);
        // Commas split answers; empty pieces vanish.
        assert_eq!(r("<answer>Bo,, ,</answer>", &["bo"]).em, 1.0);
    }

    #[test]
    fn format_and_weighted_sums() {
        assert!(well_formed("reasoning <answer>x</answer>\n"));
        assert!(well_formed("So the answer is <answer>x</answer>.\n"));
        assert!(!well_formed("<answer>x</answer> and more"));
        assert!(!well_formed("<answer>x</answer>. Because"));
        assert!(!well_formed("<answer>x"));
        assert!(!well_formed("<answer>x\ny</answer>"));
        let w = Weights {
            f1: 0.5,
            em: 0.25,
            format: 0.25,
        };
        let x = reward("<answer>Bo</answer>", &gold(&["Bo", "Cy"]), &w);
        assert!((x.total - (0.5 * (2.0 / 3.0) + 0.25 * 0.0 + 0.25 * 1.0)).abs() < 1e-12);
        let x = reward("<answer>Bo</answer> trailing", &gold(&["Bo"]), &w);
        assert!((x.total - 0.75).abs() < 1e-12);
    }
}
