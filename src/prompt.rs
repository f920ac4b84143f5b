//! Prompts from generated datasets, as the paper writes them: an instruction, the evidence
//! (every article of the question's universe), worked chain-of-thought examples from a
//! *different* universe, then the question; and the chain of thought itself, written hop by
//! hop from a question's program and intermediate answers (the SFT target, and the text of
//! the examples). Burn-free: text in, text and token ids out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Question, Step, read_jsonl};
use crate::model::chat::{self, ChatOptions, Message};
use crate::model::tokenizer::Tokenizer;
use crate::util::rng::Rng;

pub mod paper;
pub use paper::Style;

/// What a model trained on a generated dataset reads and writes, for training its
/// tokenizer: the dataset's text (articles, questions, answers), the instruction, and the
/// chain of thought of every question (so `<answer>` and the reasoning phrases get tokens).
pub fn tokenizer_texts(dir: &Path) -> Result<Vec<String>, String> {
    let mut texts = crate::model::init::dataset_texts(dir)?;
    if dir.join("questions.jsonl").is_file() {
        let qs: Vec<Question> = read_jsonl(&dir.join("questions.jsonl"))?;
        texts.extend(qs.iter().map(chain_of_thought));
        texts.push(INSTRUCTION.to_string());
    }
    Ok(texts)
}

/// `a`, `a and b`, `a, b and c`; `none` when empty.
fn list(xs: &[String]) -> String {
    match xs {
        [] => "none".into(),
        [x] => x.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn be(xs: &[String]) -> &'static str {
    if xs.len() == 1 { "is" } else { "are" }
}

fn words(s: &str) -> String {
    s.replace('_', " ")
}

/// The answer sentence every completion must end with.
pub fn answer_line(answers: &[String]) -> String {
    format!("So the answer is <answer>{}</answer>.", answers.join(", "))
}

/// The worked answer to `q`: one sentence per step of its program, stating that step's
/// intermediate answer, then the answer in `<answer>` tags.
pub fn chain_of_thought(q: &Question) -> String {
    let empty = Vec::new();
    let out = |i: usize| q.intermediate.get(i).unwrap_or(&empty);
    let input = |s: &Step, k: usize| s.inputs.get(k).map_or(&empty, |&i| out(i));
    let mut sentences = Vec::new();
    for (i, s) in q.program.steps.iter().enumerate() {
        let o = out(i);
        let sentence = match s.op.as_str() {
            // The start entity is named in the question: nothing to work out.
            "name" => continue,
            "whose" => match o.len() {
                0 => format!(
                    "No {} has {} {}.",
                    words(&s.ty),
                    words(&s.attribute),
                    s.value
                ),
                _ => format!(
                    "The {} whose {} is {} {} {}.",
                    words(&s.ty),
                    words(&s.attribute),
                    s.value,
                    be(o),
                    list(o)
                ),
            },
            "hop" => {
                let role = s
                    .relations
                    .first()
                    .map_or_else(|| "relative".to_string(), |r| words(&r.to_role));
                let from = input(s, 0);
                if o.is_empty() {
                    format!("{} {} no {role}.", list(from), has(from))
                } else {
                    format!("The {role} of {} {} {}.", list(from), be(o), list(o))
                }
            }
            "attribute" => format!(
                "The {} of {} {} {}.",
                words(&s.attribute),
                list(input(s, 0)),
                be(o),
                list(o)
            ),
            "count" => {
                let n = o.first().cloned().unwrap_or_else(|| "0".into());
                format!("Counting {} gives {n}.", list(input(s, 0)))
            }
            "count_each" => {
                let what = s.relations.first().map_or_else(
                    || words(&s.attribute),
                    // Role names are singular nouns; the count may be any number.
                    |r| format!("{}(s)", words(&r.to_role)),
                );
                let from = input(s, 0);
                match (from.len(), o.len()) {
                    (1, _) => format!(
                        "{} has {} {what}.",
                        list(from),
                        o.first().map_or("0", String::as_str)
                    ),
                    (_, 1) => format!("Each of {} has {} {what}.", list(from), o[0]),
                    _ => format!(
                        "Counting the {what} of each of {} gives {}.",
                        list(from),
                        list(o)
                    ),
                }
            }
            "intersect" => format!("The ones in common {} {}.", be(o), list(o)),
            "argmax" | "argmin" => {
                let all: Vec<String> = s.inputs.iter().flat_map(|&i| out(i).clone()).collect();
                let dir = if s.op == "argmax" {
                    "highest"
                } else {
                    "lowest"
                };
                format!(
                    "Of {}, the {dir} {} belongs to {}.",
                    list(&all),
                    words(&s.attribute),
                    list(o)
                )
            }
            "same" => {
                let yes = o.first().is_some_and(|x| x == "yes");
                format!(
                    "{} and {} are {}the same.",
                    list(input(s, 0)),
                    list(input(s, 1)),
                    if yes { "" } else { "not " }
                )
            }
            "related" => {
                if o.is_empty() {
                    format!(
                        "{} and {} are not related.",
                        list(input(s, 0)),
                        list(input(s, 1))
                    )
                } else {
                    let nouns: Vec<String> = o.iter().map(|n| words(n)).collect();
                    format!(
                        "{} is the {} of {}.",
                        list(input(s, 1)),
                        nouns.join(" and "),
                        list(input(s, 0))
                    )
                }
            }
            other => format!("Step {other} gives {}.", list(o)),
        };
        sentences.push(sentence);
    }
    sentences.push(answer_line(&q.answers));
    sentences.join(" ")
}

fn has(xs: &[String]) -> &'static str {
    if xs.len() == 1 { "has" } else { "have" }
}

/// How prompts are laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptOptions {
    /// synthpipe's layout or the paper's (template and fixed examples).
    pub style: Style,
    /// Worked examples before the question (the paper: 11).
    pub examples: usize,
    /// Put the question's universe (all its articles) into the prompt.
    pub evidence: bool,
    /// Render through the model's chat template (the question as a user turn) instead of
    /// plain text ending in `Answer:`.
    pub chat: bool,
    /// Qwen3's thinking switch, passed to the chat template when set.
    pub enable_thinking: Option<bool>,
    /// Seed of the choice of examples.
    pub seed: u64,
}

impl Default for PromptOptions {
    fn default() -> Self {
        PromptOptions {
            style: Style::Synthpipe,
            examples: 11,
            evidence: true,
            chat: true,
            enable_thinking: None,
            seed: 0,
        }
    }
}

pub const INSTRUCTION: &str = "Answer the question using the evidence. Work it out one step at a time, \
then end with the answer in <answer></answer> tags, for example <answer>Alice</answer>. \
When there are several answers, separate them with commas: <answer>Alice, Bob</answer>.";

/// Worked examples for questions of every universe but one: chosen from a pool, always from
/// a universe other than the question's.
pub struct Examples {
    /// Per universe of the pool (sorted), its chosen examples.
    by_universe: Vec<(String, Vec<Question>)>,
}

impl Examples {
    /// Picks `k` examples per universe of `pool`: templates in turn (so the examples differ
    /// in kind), questions within a template in a seeded order.
    pub fn choose(pool: &[Question], k: usize, seed: u64) -> Examples {
        let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<&Question>>> = BTreeMap::new();
        for q in pool {
            groups
                .entry(&q.universe)
                .or_default()
                .entry(&q.template_id)
                .or_default()
                .push(q);
        }
        let by_universe = groups
            .into_iter()
            .map(|(u, templates)| {
                let mut rng = Rng::stream(seed, &format!("examples/{u}"));
                let mut lists: Vec<Vec<&Question>> = templates
                    .into_values()
                    .map(|mut qs| {
                        qs.sort_by(|a, b| a.id.cmp(&b.id));
                        rng.shuffle(&mut qs);
                        qs
                    })
                    .collect();
                rng.shuffle(&mut lists);
                let mut chosen = Vec::new();
                let mut round = 0;
                while chosen.len() < k && lists.iter().any(|l| round < l.len()) {
                    for l in &lists {
                        if chosen.len() < k
                            && let Some(q) = l.get(round)
                        {
                            chosen.push((*q).clone());
                        }
                    }
                    round += 1;
                }
                (u.to_string(), chosen)
            })
            .collect();
        Examples { by_universe }
    }

    /// The examples for a question of `universe`: those of the next universe of the pool
    /// after it (in sorted order, wrapping), never its own.
    pub fn for_universe(&self, universe: &str) -> Option<&[Question]> {
        let n = self.by_universe.len();
        let start = self
            .by_universe
            .iter()
            .position(|(u, _)| u.as_str() > universe)
            .unwrap_or(0);
        (0..n)
            .map(|i| &self.by_universe[(start + i) % n])
            .find(|(u, _)| u != universe)
            .map(|(_, qs)| qs.as_slice())
    }
}

/// The paper's prompt text of `q`: phantom_eval's template with the universe's articles
/// (`None`: no evidence) and the first `k` of its fixed family examples.
pub fn paper_text(q: &Question, articles: Option<&[String]>, k: usize) -> String {
    let evidence = articles.map_or_else(String::new, |a| {
        paper::evidence(a.iter().map(String::as_str))
    });
    paper::render(&evidence, &paper::Examples::Family.first(k), &q.text)
}

/// The prompt text of `q` (before any chat template): instruction, evidence, examples,
/// question. Plain prompts end in `Answer:`; in chat form the question ends the user turn.
pub fn prompt_text(
    q: &Question,
    evidence: Option<&str>,
    examples: &[Question],
    chat: bool,
) -> String {
    let mut p = String::from(INSTRUCTION);
    p.push_str("\n\n");
    if let Some(e) = evidence {
        p.push_str("(BEGIN EVIDENCE)\n");
        p.push_str(e.trim_end());
        p.push_str("\n(END EVIDENCE)\n\n");
    }
    if !examples.is_empty() {
        p.push_str("Worked examples about other people (not in the evidence):\n\n");
        for ex in examples {
            p.push_str(&format!(
                "Question: {}\nAnswer: {}\n\n",
                ex.text,
                chain_of_thought(ex)
            ));
        }
    }
    p.push_str(&format!("Question: {}", q.text));
    if !chat {
        p.push_str("\nAnswer:");
    }
    p
}

/// A prompt and the reference completion, ready for a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub prompt: Vec<u32>,
    /// The chain of thought followed by end-of-turn: the SFT target.
    pub target: Vec<u32>,
}

/// Why a question does not fit its token budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Overflow {
    pub id: String,
    pub what: &'static str,
    pub tokens: usize,
    pub budget: usize,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "question `{}`: its {} has {} tokens, over the budget of {}",
            self.id, self.what, self.tokens, self.budget
        )
    }
}

/// Turns questions into token ids for one model, within budgets.
pub struct Prompter<'a> {
    pub tokenizer: &'a Tokenizer,
    pub opts: PromptOptions,
    pub max_prompt_tokens: usize,
    pub max_completion_tokens: usize,
}

impl Prompter<'_> {
    /// The full prompt string (chat template applied when `chat`).
    pub fn render(
        &self,
        q: &Question,
        evidence: Option<&str>,
        examples: &[Question],
    ) -> Result<String, String> {
        self.wrap(prompt_text(q, evidence, examples, self.opts.chat))
    }

    /// A prompt's text as the model sees it: through its chat template as one user turn
    /// (with the generation prompt), or as is for plain-text prompts.
    pub fn wrap(&self, text: String) -> Result<String, String> {
        if !self.opts.chat {
            return Ok(text);
        }
        let t = self.tokenizer.chat_template.as_deref().ok_or(
            "the model has no chat template; set `prompt: {chat: false}` for plain-text prompts",
        )?;
        let opts = ChatOptions {
            add_generation_prompt: true,
            enable_thinking: self.opts.enable_thinking,
            bos_token: self.tokenizer.bos_token.clone(),
            eos_token: self.tokenizer.eos_token.clone(),
        };
        chat::render(t, &[Message::new("user", &text)], &opts)
    }

    /// The reference completion's text: the chain of thought, then the end-of-turn token in
    /// chat form (so the model learns to stop), or end-of-sequence in plain form.
    pub fn target_text(&self, q: &Question) -> String {
        let cot = chain_of_thought(q);
        let end = self.tokenizer.eos_token.clone().unwrap_or_default();
        if self.opts.chat {
            format!("{cot}{end}")
        } else {
            format!(" {cot}{end}")
        }
    }

    /// Encodes `q`; `Err(Overflow)` when the prompt or (`with_target`) the target is over
    /// its budget. Without `with_target` the target is left empty (evaluation).
    pub fn encode(
        &self,
        q: &Question,
        evidence: Option<&str>,
        examples: &[Question],
        with_target: bool,
    ) -> Result<Result<Encoded, Overflow>, String> {
        self.encode_text(q, self.render(q, evidence, examples)?, with_target)
    }

    /// Encodes `q` asked as `rendered` (the full prompt string), as [`Prompter::encode`].
    pub fn encode_text(
        &self,
        q: &Question,
        rendered: String,
        with_target: bool,
    ) -> Result<Result<Encoded, Overflow>, String> {
        let prompt = self.tokenizer.encode(&rendered)?;
        if prompt.len() > self.max_prompt_tokens {
            return Ok(Err(Overflow {
                id: q.id.clone(),
                what: "prompt",
                tokens: prompt.len(),
                budget: self.max_prompt_tokens,
            }));
        }
        if !with_target {
            return Ok(Ok(Encoded {
                prompt,
                target: Vec::new(),
            }));
        }
        let target = self.tokenizer.encode_plain(&self.target_text(q))?;
        if target.len() > self.max_completion_tokens {
            return Ok(Err(Overflow {
                id: q.id.clone(),
                what: "reference answer",
                tokens: target.len(),
                budget: self.max_completion_tokens,
            }));
        }
        Ok(Ok(Encoded { prompt, target }))
    }
}

/// What to do with a question over a token budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOverflow {
    /// Leave it out (and count it in the metrics).
    Skip,
    /// Stop the stage.
    Error,
}

/// A question with its encoded prompt (and reference completion, for SFT).
#[derive(Clone)]
pub struct Item {
    pub q: Question,
    pub enc: Encoded,
}

/// Encodes every question of `data`, with worked examples from `pool` (never of the
/// question's own universe) and its universe's articles as evidence, as `prompter` lays them
/// out; returns the items and how many were skipped for their budgets.
pub fn encode_all(
    prompter: &Prompter,
    data: Dataset,
    pool: &[Question],
    overflow: OnOverflow,
    with_target: bool,
) -> Result<(Vec<Item>, usize), String> {
    let mut items = Vec::with_capacity(data.questions.len());
    let mut skipped = 0;
    for (q, text) in texts_all(&prompter.opts, data, pool)? {
        match prompter.encode_text(&q, prompter.wrap(text)?, with_target)? {
            Ok(enc) => items.push(Item { q, enc }),
            Err(_) if overflow == OnOverflow::Skip => skipped += 1,
            Err(over) => {
                return Err(format!(
                    "{over}; raise max_prompt_tokens / max_completion_tokens, use fewer examples, or set `overflow: skip`"
                ));
            }
        }
    }
    Ok((items, skipped))
}

/// Every question of `data` with its prompt text as `opts` lay it out, before any chat
/// template (a server applies its own): worked examples from `pool` (never of the
/// question's own universe) or the paper's fixed ones, its universe's articles as evidence.
pub fn texts_all(
    o: &PromptOptions,
    data: Dataset,
    pool: &[Question],
) -> Result<Vec<(Question, String)>, String> {
    // The paper's examples are fixed: no pool to choose from.
    let examples = match o.style {
        Style::Synthpipe => Examples::choose(pool, o.examples, o.seed),
        Style::Paper => Examples::choose(&[], 0, o.seed),
    };
    let mut data = data;
    let questions = std::mem::take(&mut data.questions);
    let mut out = Vec::with_capacity(questions.len());
    for q in questions {
        let missing = || format!("universe `{}` has no articles for the evidence", q.universe);
        let text = if o.style == Style::Paper {
            let articles = match o.evidence {
                true => Some(data.articles.get(&q.universe).ok_or_else(missing)?),
                false => None,
            };
            paper_text(&q, articles.map(Vec::as_slice), o.examples)
        } else {
            let ex = if o.examples == 0 {
                &[][..]
            } else {
                examples.for_universe(&q.universe).ok_or_else(|| {
                    format!(
                        "no worked examples for universe `{}`: the examples need questions of another universe",
                        q.universe
                    )
                })?
            };
            let evidence = match o.evidence {
                true => Some(data.evidence.get(&q.universe).ok_or_else(missing)?.as_str()),
                false => None,
            };
            prompt_text(&q, evidence, ex, o.chat)
        };
        out.push((q, text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Program, Reading};

    fn step(op: &str, inputs: &[usize]) -> Step {
        Step {
            op: op.into(),
            inputs: inputs.to_vec(),
            ..Step::default()
        }
    }

    fn s(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn chain_of_thought_states_every_hop() {
        let mut whose = step("whose", &[]);
        whose.ty = "person".into();
        whose.attribute = "job".into();
        whose.value = "cartographer".into();
        let mut hop = step("hop", &[0]);
        hop.relations = vec![Reading {
            relation: "great_grandfather".into(),
            from_role: "person".into(),
            to_role: "great_grandfather".into(),
        }];
        let mut attr = step("attribute", &[1]);
        attr.attribute = "dob".into();
        let q = Question {
            answers: s(&["1801-01-03"]),
            program: Program {
                steps: vec![whose, hop, attr],
            },
            intermediate: vec![s(&["Luigi"]), s(&["Ragnar"]), s(&["1801-01-03"])],
            ..Question::default()
        };
        assert_eq!(
            chain_of_thought(&q),
            "The person whose job is cartographer is Luigi. The great grandfather of Luigi is \
             Ragnar. The dob of Ragnar is 1801-01-03. So the answer is \
             <answer>1801-01-03</answer>."
        );
    }

    /// A step reading relation role `to` from step `from`'s output.
    fn read(op: &str, from: usize, to: &str) -> Step {
        let mut st = step(op, &[from]);
        st.relations = vec![Reading {
            to_role: to.into(),
            ..Reading::default()
        }];
        st
    }

    /// Ann, then her children (Bo, Cy, Di).
    fn ann_children() -> Vec<Step> {
        let mut name = step("name", &[]);
        name.name = "Ann".into();
        vec![name, read("hop", 0, "child")]
    }

    #[test]
    fn chain_of_thought_handles_sets_and_empty_hops() {
        let mut steps = ann_children();
        steps.extend([read("hop", 1, "friend"), step("count", &[2])]);
        let q = Question {
            answers: s(&["0"]),
            program: Program { steps },
            intermediate: vec![s(&["Ann"]), s(&["Bo", "Cy", "Di"]), vec![], s(&["0"])],
            ..Question::default()
        };
        assert_eq!(
            chain_of_thought(&q),
            "The child of Ann are Bo, Cy and Di. Bo, Cy and Di have no friend. Counting none \
             gives 0. So the answer is <answer>0</answer>."
        );
    }

    #[test]
    fn chain_of_thought_counts_per_person() {
        let mut steps = ann_children();
        steps.push(read("count_each", 1, "sibling"));
        let q = |counts: &[&str]| Question {
            answers: s(counts),
            program: Program {
                steps: steps.clone(),
            },
            intermediate: vec![s(&["Ann"]), s(&["Bo", "Cy", "Di"]), s(counts)],
            ..Question::default()
        };
        assert_eq!(
            chain_of_thought(&q(&["2"])),
            "The child of Ann are Bo, Cy and Di. Each of Bo, Cy and Di has 2 sibling(s). So \
             the answer is <answer>2</answer>."
        );
        assert_eq!(
            chain_of_thought(&q(&["0", "1"])),
            "The child of Ann are Bo, Cy and Di. Counting the sibling(s) of each of Bo, Cy and \
             Di gives 0 and 1. So the answer is <answer>0, 1</answer>."
        );
    }

    fn q(id: &str, universe: &str, template: &str) -> Question {
        Question {
            id: id.into(),
            universe: universe.into(),
            template_id: template.into(),
            text: format!("Question {id}?"),
            answers: s(&["x"]),
            ..Question::default()
        }
    }

    #[test]
    fn examples_come_from_another_universe_and_vary_templates() {
        let pool = vec![
            q("a1", "u1", "t1"),
            q("a2", "u1", "t1"),
            q("a3", "u1", "t2"),
            q("b1", "u2", "t1"),
            q("b2", "u2", "t2"),
            q("b3", "u2", "t3"),
        ];
        let ex = Examples::choose(&pool, 2, 5);
        let for_u1 = ex.for_universe("u1").unwrap();
        assert!(for_u1.iter().all(|q| q.universe == "u2"));
        assert_eq!(for_u1.len(), 2);
        assert_ne!(for_u1[0].template_id, for_u1[1].template_id);
        let for_u2 = ex.for_universe("u2").unwrap();
        assert!(for_u2.iter().all(|q| q.universe == "u1"));
        let ids: Vec<&str> = for_u2.iter().map(|q| q.template_id.as_str()).collect();
        assert!(ids.contains(&"t1") && ids.contains(&"t2"));
        // A universe outside the pool gets examples too; a pool of one universe has none
        // for questions of that universe.
        assert!(ex.for_universe("u9").is_some());
        let one = Examples::choose(&pool[..3], 2, 5);
        assert!(one.for_universe("u1").is_none());
        // Same seed, same choice.
        let again = Examples::choose(&pool, 2, 5);
        assert_eq!(again.for_universe("u1"), ex.for_universe("u1"));
    }

    #[test]
    fn paper_prompts_separate_articles_and_keep_the_first_examples() {
        let question = q("a1", "u1", "t1");
        let articles = vec!["# Ann\nAnn is here.\n".to_string(), "# Bo\n".to_string()];
        let p = paper_text(&question, Some(&articles), 2);
        assert!(
            p.contains("    # Ann\nAnn is here.\n\n================\n\n# Bo\n\n    (END EVIDENCE)")
        );
        assert!(p.contains("Example 2:") && !p.contains("Example 3:"));
        assert!(p.contains("Who is the child of Alvaro Smock?"));
        assert!(p.ends_with("    Question: Question a1?\n    Answer: "));
        // Without evidence the block is empty, as phantom_eval leaves it.
        let bare = paper_text(&question, None, 0);
        assert!(bare.contains("(BEGIN EVIDENCE)\n    \n    (END EVIDENCE)"));
        assert!(bare.contains("(START OF EXAMPLES)\n    \n    (END OF EXAMPLES)"));
    }

    #[test]
    fn prompt_ends_with_the_question() {
        let question = q("a1", "u1", "t1");
        let plain = prompt_text(
            &question,
            Some("Ann is here.\n"),
            &[q("b1", "u2", "t1")],
            false,
        );
        assert!(plain.starts_with(INSTRUCTION));
        assert!(plain.contains("(BEGIN EVIDENCE)\nAnn is here.\n(END EVIDENCE)"));
        assert!(
            plain.contains("Question: Question b1?\nAnswer: So the answer is <answer>x</answer>.")
        );
        assert!(plain.ends_with("Question: Question a1?\nAnswer:"));
        let chat = prompt_text(&question, None, &[], true);
        assert!(chat.ends_with("Question: Question a1?"));
        assert!(!chat.contains("EVIDENCE"));
    }
}
