//! Diagnostic codes of pipeline files. Codes are part of the user interface: never rename
//! one (docs/pipelines.md lists them all).

use crate::lang::diag::{DiagCode, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    Read,
    YamlSyntax,
    ExpectedType,
    UnknownKey,
    MissingKey,
    UnknownKind,
    BadName,
    UnknownStage,
    UnknownOutput,
    BadReference,
    InputType,
    Cycle,
    MissingFile,
    DuplicateOutput,
    UnknownParamRef,
    InvalidValue,
    RulesInvalid,
    UnknownRuleParam,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::Read,
        Code::YamlSyntax,
        Code::ExpectedType,
        Code::UnknownKey,
        Code::MissingKey,
        Code::UnknownKind,
        Code::BadName,
        Code::UnknownStage,
        Code::UnknownOutput,
        Code::BadReference,
        Code::InputType,
        Code::Cycle,
        Code::MissingFile,
        Code::DuplicateOutput,
        Code::UnknownParamRef,
        Code::InvalidValue,
        Code::RulesInvalid,
        Code::UnknownRuleParam,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Code::Read => "read",
            Code::YamlSyntax => "yaml_syntax",
            Code::ExpectedType => "expected_type",
            Code::UnknownKey => "unknown_key",
            Code::MissingKey => "missing_key",
            Code::UnknownKind => "unknown_kind",
            Code::BadName => "bad_name",
            Code::UnknownStage => "unknown_stage",
            Code::UnknownOutput => "unknown_output",
            Code::BadReference => "bad_reference",
            Code::InputType => "input_type",
            Code::Cycle => "cycle",
            Code::MissingFile => "missing_file",
            Code::DuplicateOutput => "duplicate_output",
            Code::UnknownParamRef => "unknown_param_ref",
            Code::InvalidValue => "invalid_value",
            Code::RulesInvalid => "rules_invalid",
            Code::UnknownRuleParam => "unknown_rule_param",
        }
    }
}

impl DiagCode for Code {
    fn full(self) -> String {
        format!("synthpipe::pipeline::{}", self.name())
    }
    fn severity(self) -> Severity {
        Severity::Error
    }
}

pub type Diagnostic = crate::lang::diag::Diagnostic<Code>;
