//! Pipelines: YAML files of stages chained by their outputs, validated, planned and run
//! against a content-addressed store.

pub mod yaml;
