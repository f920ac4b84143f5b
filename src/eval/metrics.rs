//! Benchmark answer metrics: the official normalisation, token EM / precision / recall /
//! F1 with each benchmark's edge-case rules, the maximum over gold aliases, and the
//! statistics reports print (mean ± standard error, bootstrap intervals, paired tests).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::eval::score::Scores;
use crate::util::rng::Rng;

/// The normalisation every benchmark's official script applies, in its order: lower-case,
/// drop ASCII punctuation, replace the words `a`, `an`, `the` by a space, collapse
/// whitespace.
pub fn normalize(s: &str) -> String {
    let lowered = s.to_lowercase();
    let no_punct: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let without_articles = drop_articles(&no_punct);
    without_articles
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `\w` on text: letters, digits (any script) and `_`.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `re.sub(r"\b(a|an|the)\b", " ", text)`: an article matches only as a whole run of
/// word characters, so `theory` and `the-end`'s neighbours survive exactly as the regex
/// leaves them.
fn drop_articles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if matches!(run.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_word(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// How a benchmark's official script treats edge cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// HotpotQA's and 2WikiMultiHopQA's script: a `yes` / `no` / `noanswer` on either
    /// side scores 0 unless both sides are equal; no token overlap (including two empty
    /// answers) scores 0 F1.
    Hotpot,
    /// MuSiQue's (SQuAD 2.0's): when either side has no tokens, F1 is 1 if both have
    /// none, else 0.
    Squad,
}

/// Token scores of one prediction against one gold answer.
pub fn token_scores(prediction: &str, gold: &str, rules: Rules) -> Scores {
    let (p, g) = (normalize(prediction), normalize(gold));
    let em = f64::from(u8::from(p == g));
    let zero = Scores {
        em,
        ..Scores::default()
    };
    let pt: Vec<&str> = p.split_whitespace().collect();
    let gt: Vec<&str> = g.split_whitespace().collect();
    match rules {
        Rules::Hotpot => {
            let special = |s: &str| matches!(s, "yes" | "no" | "noanswer");
            if (special(&p) || special(&g)) && p != g {
                return zero;
            }
        }
        Rules::Squad => {
            if pt.is_empty() || gt.is_empty() {
                let same = f64::from(u8::from(pt == gt));
                return Scores {
                    em,
                    precision: same,
                    recall: same,
                    f1: same,
                };
            }
        }
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pt {
        if let Some(c) = counts.get_mut(t).filter(|c| **c > 0) {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return zero;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / gt.len() as f64;
    Scores {
        em,
        precision,
        recall,
        f1: 2.0 * precision * recall / (precision + recall),
    }
}

/// The best score over the gold answer and its aliases, each metric maximised on its own
/// (2WikiMultiHopQA's script; for one gold answer it is just that answer's scores).
pub fn best_of(prediction: &str, golds: &[String], rules: Rules) -> Scores {
    golds
        .iter()
        .map(|g| token_scores(prediction, g, rules))
        .fold(Scores::default(), |a, b| Scores {
            em: a.em.max(b.em),
            precision: a.precision.max(b.precision),
            recall: a.recall.max(b.recall),
            f1: a.f1.max(b.f1),
        })
}

/// Whether `text` mentions `answer` after normalisation, on whole tokens: what the
/// composition probe counts.
pub fn mentions(text: &str, answer: &str) -> bool {
    let a = normalize(answer);
    !a.is_empty() && format!(" {} ", normalize(text)).contains(&format!(" {a} "))
}

/// A mean with its spread: the standard error of the mean (sample standard deviation
/// over √n) and a 95 % percentile-bootstrap interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub sem: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
}

/// Bootstrap resamples behind every interval; enough for two stable decimals.
pub const BOOTSTRAP: usize = 1000;

/// The arithmetic mean; 0 for no values.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Standard error of the mean; 0 below two values, where it is undefined.
pub fn sem(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}

/// Mean, standard error and a percentile-bootstrap 95 % interval; resamples are drawn
/// from a stream named by `label`, so the same values always give the same interval.
pub fn estimate(xs: &[f64], label: &str) -> Estimate {
    let n = xs.len();
    if n == 0 {
        return Estimate::default();
    }
    let mut rng = Rng::stream(0x5eed_b007, label);
    let mut means: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| {
            (0..n)
                .map(|_| xs[rng.below(n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * BOOTSTRAP as f64) as usize).min(BOOTSTRAP - 1)];
    Estimate {
        mean: mean(xs),
        sem: sem(xs),
        ci_low: at(0.025),
        ci_high: at(0.975),
        n,
    }
}

/// Two runs on the same questions: the mean per-question difference (b − a), its
/// standard error and bootstrap interval, and a two-sided p-value of "no difference"
/// from the normal approximation. `z` is absent when every question moved by the same
/// amount (no spread to divide by); the p-value is then 0, or 1 when nothing moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub a: f64,
    pub b: f64,
    #[serde(flatten)]
    pub difference: Estimate,
    pub z: Option<f64>,
    pub p_value: f64,
}

/// Compares paired values `a[i]`, `b[i]` (the same question under two runs).
pub fn paired(a: &[f64], b: &[f64], label: &str) -> Paired {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let difference = estimate(&d, label);
    let (z, p_value) = if difference.sem > 0.0 {
        let z = difference.mean / difference.sem;
        (Some(z), erfc(z.abs() / std::f64::consts::SQRT_2))
    } else if difference.mean == 0.0 {
        (None, 1.0)
    } else {
        (None, 0.0)
    };
    Paired {
        a: mean(a),
        b: mean(b),
        difference,
        z,
        p_value,
    }
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7): enough for a p-value.
fn erfc(x: f64) -> f64 {
    if x.is_infinite() {
        return if x > 0.0 { 0.0 } else { 2.0 };
    }
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_follows_the_official_order() {
        assert_eq!(normalize("The  Beatles!"), "beatles");
        assert_eq!(normalize("theory of a thing"), "theory of thing");
        // Punctuation goes first, so "the-end" becomes one word "theend".
        assert_eq!(normalize("the-end"), "theend");
        // A non-ASCII dash is not punctuation to Python's string.punctuation.
        assert_eq!(normalize("the–end"), "–end");
        assert_eq!(normalize("An apple a day"), "apple day");
        assert_eq!(normalize("  "), "");
    }

    #[test]
    fn token_scores_follow_each_script() {
        let s = token_scores("the big apple pie", "apple pie", Rules::Hotpot);
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.recall, 1.0);
        assert!((s.f1 - 0.8).abs() < 1e-12);
        assert_eq!(s.em, 0.0);
        // yes/no must match exactly under HotpotQA's rules.
        assert_eq!(token_scores("yes it is", "yes", Rules::Hotpot).f1, 0.0);
        assert_eq!(token_scores("yes it is", "yes", Rules::Squad).f1, 0.5);
        // Two empty answers: EM 1 everywhere, F1 0 for HotpotQA, 1 for SQuAD.
        assert_eq!(token_scores("", "the", Rules::Hotpot).f1, 0.0);
        assert_eq!(token_scores("", "the", Rules::Hotpot).em, 1.0);
        assert_eq!(token_scores("", "the", Rules::Squad).f1, 1.0);
        // Repeated tokens count once per occurrence on both sides.
        let s = token_scores("a b b b", "b b c", Rules::Squad);
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12, "{s:?}");
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn aliases_take_each_metrics_best() {
        let golds = vec!["New York City".to_string(), "NYC".to_string()];
        assert_eq!(best_of("nyc", &golds, Rules::Squad).em, 1.0);
        assert!((best_of("new york", &golds, Rules::Squad).f1 - 0.8).abs() < 1e-12);
    }

    #[test]
    fn statistics() {
        let xs = [1.0, 0.0, 1.0, 0.0];
        let e = estimate(&xs, "t");
        assert_eq!(e.mean, 0.5);
        assert!((e.sem - (1.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
        assert!(e.ci_low <= 0.5 && e.ci_high >= 0.5 && e.ci_low >= 0.0 && e.ci_high <= 1.0);
        assert_eq!(estimate(&xs, "t"), e, "same values, same interval");
        let p = paired(&[0.0, 0.0, 0.5, 1.0], &[1.0, 0.5, 0.5, 1.0], "p");
        assert_eq!(p.difference.mean, 0.375);
        assert!(p.p_value > 0.0 && p.p_value < 1.0);
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.959_964 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn mentions_are_whole_tokens() {
        assert!(mentions("So it was the City of London.", "city of london"));
        assert!(!mentions("Londoner", "london"));
        assert!(!mentions("anything", ""));
    }
}
