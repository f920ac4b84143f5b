//! synthpipe: rule-generated multi-hop reasoning data, RL fine-tuning and evaluation.
//!
//! In data-flow order (docs/architecture.md): `util` shared utilities; `lang` the rule
//! language (syntax → AST → checker → IR); `dataset` the dataset schema and derived datasets;
//! `universe` generation; `model` language models on burn and device selection; `prompt`
//! how questions are asked; `eval` scoring, benchmarks and evaluation runs; `rl` training;
//! `report` reports with plots; `stages` the stage kinds; `pipeline` the engine that runs
//! them; `cli` the command line.
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
