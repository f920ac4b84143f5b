//! The pipeline engine: YAML files of stages chained by their outputs (`yaml`, `load`,
//! checked against the kinds `crate::stages` registers), cache keys and runs (`run`) against
//! a content-addressed store (`store`), locally or as SLURM jobs (`slurm`), and status. It knows no stage kind by name.

pub mod diag;
pub mod load;
pub mod run;
pub mod slurm;
pub mod store;
pub mod yaml;
