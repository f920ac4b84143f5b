//! synthpipe: rule-generated multi-hop reasoning data, RL fine-tuning and evaluation.
//!
//! `lang` owns the rule language (syntax → AST → checker → IR); `universe` generation
//! (worlds, queries, questions, articles, datasets); `score` answer scoring; `eval` real
//! benchmarks (loaders, official metrics, strata, the composition probe); `pipeline`
//! cached pipelines of stages; `model` language models on burn; `rl` rewards, SFT and
//! GRPO; `report` HTML and Markdown reports with plots; `cli` the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod dataset;
pub mod eval;
pub mod lang;
pub mod model;
pub mod pipeline;
pub mod prompt;
pub mod report;
pub mod rl;
pub mod stages;
pub mod universe;
pub mod util;
