//! synthpipe: rule-generated multi-hop reasoning data, RL fine-tuning and evaluation.
//!
//! `lang` owns the rule language (syntax → AST → checker → IR); `cli` the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod lang;
pub mod score;
pub mod universe;
