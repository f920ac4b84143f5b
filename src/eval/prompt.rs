//! Reading-comprehension prompts for the real benchmarks: the question's paragraphs,
//! worked chain-of-thought examples written for each benchmark, and the question; the
//! answer is asked for in `<answer>` tags, as in training.

use super::bench::{Benchmark, Record};
use crate::prompt::Style;

pub const INSTRUCTION: &str = "Answer the question using the paragraphs. Work it out one step \
at a time, then end with the short answer in <answer></answer> tags, for example \
<answer>Paris</answer>. Answer yes/no questions with <answer>yes</answer> or <answer>no</answer>.";

/// A worked example: a question and its chain of thought ending in the tagged answer.
pub struct Example {
    pub question: &'static str,
    pub answer: &'static str,
}

/// The worked examples of a benchmark, in the style of its questions. Written for this
/// project about invented places and people, so they can never leak a test answer.
pub fn examples(bench: Benchmark) -> &'static [Example] {
    match bench {
        Benchmark::HotpotQa => &[
            Example {
                question: "The Zorvan Bridge was designed by an engineer born in which city?",
                answer: "The Zorvan Bridge was designed by Ida Penn. Ida Penn was born in \
                         Kelmora. So the answer is <answer>Kelmora</answer>.",
            },
            Example {
                question: "Which band was formed first, The Salt Lanterns or Grey Harbour?",
                answer: "The Salt Lanterns were formed in 1987. Grey Harbour was formed in 1979. \
                         1979 is earlier than 1987. So the answer is <answer>Grey Harbour</answer>.",
            },
            Example {
                question: "Are Varnel and Osterby both located in Norland?",
                answer: "Varnel is a town in Norland. Osterby is a city in Estrava, not Norland. \
                         So the answer is <answer>no</answer>.",
            },
        ],
        Benchmark::TwoWiki => &[
            Example {
                question: "Who is the mother of the director of film Grey Harbour?",
                answer: "Grey Harbour was directed by Tomas Ardel. The mother of Tomas Ardel is \
                         Mira Ardel. So the answer is <answer>Mira Ardel</answer>.",
            },
            Example {
                question: "Which film came out first, Salt Road or The Quiet Mill?",
                answer: "Salt Road came out in 1948. The Quiet Mill came out in 1955. So the \
                         answer is <answer>Salt Road</answer>.",
            },
            Example {
                question: "Who is the paternal grandfather of Lina Voss?",
                answer: "The father of Lina Voss is Erik Voss. The father of Erik Voss is Pavel \
                         Voss. So the answer is <answer>Pavel Voss</answer>.",
            },
        ],
        Benchmark::Musique => &[
            Example {
                question: "When was the company that built the Zorvan Bridge founded?",
                answer: "The Zorvan Bridge was built by Altrix Works. Altrix Works was founded \
                         in 1894. So the answer is <answer>1894</answer>.",
            },
            Example {
                question: "What is the capital of the country where Ada Quill was born?",
                answer: "Ada Quill was born in Zorvan. Zorvan is in Norland. The capital of \
                         Norland is Osterby. So the answer is <answer>Osterby</answer>.",
            },
        ],
        Benchmark::Cofca => &[
            Example {
                question: "Who founded the company that built the Zorvan Bridge?",
                answer: "According to the paragraphs, the Zorvan Bridge was built by Altrix \
                         Works. Altrix Works was founded by Ida Penn. So the answer is \
                         <answer>Ida Penn</answer>.",
            },
            Example {
                question: "In which city was the founder of the company that built the Zorvan \
                           Bridge born?",
                answer: "The Zorvan Bridge was built by Altrix Works. Altrix Works was founded by \
                         Ida Penn. Ida Penn was born in Kelmora. So the answer is \
                         <answer>Kelmora</answer>.",
            },
        ],
        Benchmark::Synthetic => &[],
    }
}

/// The paper's prompt text of `r` (`pred.py`'s): phantom_eval's template with the
/// paragraphs' texts (no titles) as evidence and the first `k` of the benchmark's fixed
/// examples (CofCA borrows HotpotQA's, as `pred.py` does).
pub fn paper_text(bench: Benchmark, r: &Record, k: usize) -> String {
    use crate::prompt::paper;
    let block = match bench {
        Benchmark::HotpotQa | Benchmark::Cofca => paper::Examples::HotpotQa,
        Benchmark::TwoWiki => paper::Examples::TwoWiki,
        Benchmark::Musique => paper::Examples::Musique,
        Benchmark::Synthetic => paper::Examples::Family,
    };
    let evidence = paper::evidence(r.paragraphs.iter().map(|p| p.lines.as_str()));
    paper::render(&evidence, &block.first(k), &r.question)
}

/// The prompt text of `r` in `style`: the paper's, or synthpipe's (instruction, paragraphs,
/// up to `k` worked examples of its benchmark, the question; plain-text prompts end in
/// `Answer:` for the model to continue).
pub fn prompt_text(bench: Benchmark, r: &Record, k: usize, chat: bool, style: Style) -> String {
    if style == Style::Paper {
        return paper_text(bench, r, k);
    }
    let mut p = String::from(INSTRUCTION);
    p.push_str("\n\n");
    for (i, para) in r.paragraphs.iter().enumerate() {
        p.push_str(&format!(
            "Paragraph {}: {}\n{}\n\n",
            i + 1,
            para.title,
            para.text.trim()
        ));
    }
    let ex = &examples(bench)[..k.min(examples(bench).len())];
    if !ex.is_empty() {
        p.push_str("Worked examples (about other paragraphs, not shown):\n\n");
        for e in ex {
            p.push_str(&format!(
                "Question: {}\nAnswer: {}\n\n",
                e.question, e.answer
            ));
        }
    }
    p.push_str(&format!("Question: {}", r.question));
    if !chat {
        p.push_str("\nAnswer:");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::answer as reward;

    #[test]
    fn paper_prompts_show_sentences_on_lines_without_titles() {
        let bytes = br#"[{"_id": "x", "question": "Who?", "answer": "Ann", "type": "bridge", "level": "easy",
            "supporting_facts": [["T1", 0]],
            "context": [["T1", ["Ann is here.", " She stays."]], ["T2", ["Bo left."]]]}]"#;
        let loaded = crate::eval::bench::load_bytes(Benchmark::HotpotQa, "t", bytes, None);
        let r = &loaded.records[0];
        let p = prompt_text(Benchmark::HotpotQa, r, 1, true, Style::Paper);
        assert!(p.contains(
            "    Ann is here.\n She stays.\n================\n\nBo left.\n    (END EVIDENCE)"
        ));
        assert!(!p.contains("T1"));
        assert!(p.contains("Arthur's Magazine") && !p.contains("Oberoi"));
        assert!(p.ends_with("Question: Who?\n    Answer: "));
        // CofCA borrows HotpotQA's examples; MuSiQue has its own.
        assert!(prompt_text(Benchmark::Cofca, r, 1, true, Style::Paper).contains("Arthur's"));
        assert!(prompt_text(Benchmark::Musique, r, 1, true, Style::Paper).contains("Yellow Tiger"));
    }

    #[test]
    fn every_example_ends_in_one_well_formed_answer() {
        for b in Benchmark::ALL {
            for e in examples(b) {
                assert!(reward::well_formed(e.answer), "{}: {}", b.name(), e.answer);
                assert!(reward::last_answer(e.answer).is_some_and(|a| !a.is_empty()));
            }
        }
    }
}
