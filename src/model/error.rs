//! Errors of loading a model (GGUF, safetensors, config files): a stable code, the file, what
//! is wrong, and what to do — reported as a miette diagnostic, never a panic.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadCode {
    /// The file cannot be opened or read.
    Read,
    /// The file ends before the structure it announces.
    Truncated,
    /// Not a GGUF file (bad magic).
    NotGguf,
    /// A GGUF version synthpipe does not read.
    GgufVersion,
    /// A metadata value of an unknown type, a missing or ill-typed metadata key.
    Metadata,
    /// A tensor encoding synthpipe cannot dequantise.
    TensorType,
    /// A tensor whose shape, size or offset does not fit the file.
    TensorBounds,
    /// A tensor the architecture needs is absent.
    MissingTensor,
    /// config.json is missing, not JSON, or lacks a field (or has one of the wrong type).
    Config,
    /// A configuration synthpipe does not implement (architecture, RoPE scaling, …).
    Unsupported,
}

impl LoadCode {
    pub fn name(self) -> &'static str {
        match self {
            LoadCode::Read => "read",
            LoadCode::Truncated => "truncated",
            LoadCode::NotGguf => "not_gguf",
            LoadCode::GgufVersion => "gguf_version",
            LoadCode::Metadata => "metadata",
            LoadCode::TensorType => "tensor_type",
            LoadCode::TensorBounds => "tensor_bounds",
            LoadCode::MissingTensor => "missing_tensor",
            LoadCode::Config => "config",
            LoadCode::Unsupported => "unsupported",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub code: LoadCode,
    pub file: PathBuf,
    pub message: String,
    pub help: String,
}

impl LoadError {
    pub fn new(
        code: LoadCode,
        file: &Path,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        LoadError {
            code,
            file: file.to_path_buf(),
            message: message.into(),
            help: help.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for LoadError {}

impl miette::Diagnostic for LoadError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("synthpipe::model::{}", self.code.name())))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.help))
    }
}
