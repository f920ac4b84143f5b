//! Prompts from generated datasets, as the paper writes them: an instruction, the evidence
//! (every article of the question's universe), worked chain-of-thought examples from a
//! *different* universe, then the question; and the chain of thought itself, written hop by
//! hop from a question's program and intermediate answers (the SFT target, and the text of
//! the examples). Burn-free: text in, text and token ids out.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::chat::{self, ChatOptions, Message};
use crate::model::tokenizer::Tokenizer;
use crate::util::rng::Rng;

/// One step of a question's program, as `questions.jsonl` stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    pub op: String,
    pub inputs: Vec<usize>,
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
    pub attribute: String,
    pub value: String,
    pub relations: Vec<Reading>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reading {
    pub relation: String,
    pub from_role: String,
    pub to_role: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Program {
    pub steps: Vec<Step>,
}

/// A generated question: what prompts, rewards and curricula read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Question {
    pub id: String,
    pub universe: String,
    pub seed: u64,
    pub template_id: String,
    pub question_type: String,
    pub text: String,
    pub answers: Vec<String>,
    pub difficulty: u64,
    pub hops: u64,
    pub program: Program,
    pub intermediate: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct Article {
    universe: String,
    text: String,
}

/// The questions of a dataset folder and the evidence of each universe (its articles'
/// text in file order).
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub questions: Vec<Question>,
    pub evidence: BTreeMap<String, String>,
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<Vec<T>, String> {
    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: not a dataset record: {e}", file.display(), n + 1))?,
        );
    }
    Ok(out)
}

impl Dataset {
    /// Reads `questions.jsonl` and `articles.jsonl` of a dataset folder.
    pub fn load(dir: &Path) -> Result<Dataset, String> {
        let file = dir.join("questions.jsonl");
        let questions: Vec<Question> = read_jsonl(&file)?;
        // Predictions, scores and paired comparisons join by id.
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (n, q) in questions.iter().enumerate() {
            if let Some(f) = first.insert(q.id.as_str(), n + 1) {
                return Err(format!(
                    "error[synthpipe::dataset::duplicate_id]: `{}`: question {} has the id `{}` of question {f}\n  help: ids must be unique in a dataset; regenerate it (synthpipe's ids hash their universe) or remove the repeat",
                    file.display(),
                    n + 1,
                    q.id
                ));
            }
        }
        let articles: Vec<Article> = read_jsonl(&dir.join("articles.jsonl"))?;
        let mut evidence: BTreeMap<String, String> = BTreeMap::new();
        for a in articles {
            let e = evidence.entry(a.universe).or_default();
            if !e.is_empty() {
                e.push('\n');
            }
            e.push_str(a.text.trim_end());
            e.push('\n');
        }
        Ok(Dataset {
            questions,
            evidence,
        })
    }
}

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
        let prompt = self
            .tokenizer
            .encode(&self.render(q, evidence, examples)?)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
