//! The universe a rule file describes: parameters (`params`), entities and base facts
//! (`world`), derived relations and queries over them (`solve`), questions (`compose`),
//! articles (`articles`) and the files written (`dataset`).

pub mod articles;
pub mod compose;
pub mod dataset;
pub mod params;
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
    /// Generated facts break a cardinality the rules declare.
    #[error("{0}")]
    Cardinality(Box<Breach>),
    /// Checked rules that generation cannot carry out: a bug in synthpipe, never skipped.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An entity with more or fewer partners than its relation declares.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{relation}`: {role} `{entity}` has {count} {other}, but the rules declare `each {role} has {range} {other}`"
)]
pub struct Breach {
    pub relation: String,
    pub role: String,
    pub entity: String,
    pub count: usize,
    pub other: String,
    pub range: String,
}

impl GenError {
    /// The stable diagnostic code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            GenError::Params(_) => "synthpipe::generate::params",
            GenError::Invalid(_) => "synthpipe::generate::invalid",
            GenError::Io(_) => "synthpipe::cli::write",
            GenError::Cardinality(_) => "synthpipe::generate::cardinality",
            GenError::Internal(_) => "synthpipe::generate::internal",
        }
    }

    /// `error[CODE]: message` and its help line, as the CLI and the pipeline print it.
    pub fn render(&self) -> String {
        format!("error[{}]: {self}\n  help: {}", self.code(), self.help())
    }

    /// What the user can do about it.
    pub fn help(&self) -> &'static str {
        match self {
            GenError::Params(_) | GenError::Invalid(_) => {
                "see `synthpipe generate --help` and the parameters the rule file declares"
            }
            GenError::Io(_) => "check the path and its permissions",
            GenError::Cardinality(_) => {
                "widen the declared range, or give the generator arguments that stay inside it"
            }
            GenError::Internal(_) => {
                "this is a bug in synthpipe: please report it with the rule file and parameters"
            }
        }
    }
}
