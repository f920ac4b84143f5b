//! The universe a rule file describes: parameters (`params`), seeded random streams (`rng`),
//! entities and base facts (`world`), derived relations and queries over them (`solve`),
//! questions (`compose`), articles (`articles`) and the files written (`dataset`).

pub mod articles;
pub mod compose;
pub mod dataset;
pub mod params;
pub mod rng;
pub mod solve;
pub mod world;

/// Why a universe could not be generated from rules that passed the checker: parameter
/// overrides that do not fit their declarations, or settings no universe can satisfy.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("bad parameters:\n  {}", .0.join("\n  "))]
    Params(Vec<String>),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}
