//! Pipelines: YAML files of stages chained by their outputs (`load`, checked against the
//! kinds in `spec`), run against a content-addressed store (`store`) by `run`, each stage
//! kind a thin adapter in `stages`.

pub mod commands;
pub mod diag;
pub mod load;
pub mod run;
pub mod spec;
pub mod stages;
pub mod store;
pub mod yaml;
