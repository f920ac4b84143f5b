//! synthpipe: rule-generated multi-hop reasoning data, RL fine-tuning and evaluation.
//!
//! `lang` owns the rule language (syntax → AST → checker → IR); `universe` generation
//! (worlds, queries, questions, articles, datasets); `score` answer scoring; `cli` the
//! command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod lang;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod score;
pub mod universe;
