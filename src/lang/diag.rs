//! Diagnostics of the rule language: stable codes, spans, labels and help, rendered by miette.
//!
//! Every phase (parse, check) returns `Diagnostic`s; none of them stops at the first error
//! except the parser, which cannot recover. Codes are part of the user interface: never
//! rename one, add new ones instead (docs/rules.md lists them all).

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use super::ast::Span;

/// Every diagnostic the rule language can report. The code string is
/// `synthpipe::rules::<snake_case name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    Syntax,
    UnknownType,
    UnknownRelation,
    UnknownAttribute,
    UnknownRole,
    UnknownParam,
    UnknownPool,
    UnknownBank,
    UnknownVariant,
    UnknownGenerator,
    UnknownSlot,
    UnknownFunction,
    UnknownParamType,
    DuplicateDefinition,
    AtomArity,
    RelationArity,
    TypeMismatch,
    UngroundedVariable,
    SingletonVariable,
    UnstratifiableNegation,
    NoBaseCase,
    TemplatePlaceholder,
    UnusedSlot,
    MissingSurfaceForm,
    PoolFileMissing,
    PoolEmpty,
    ContradictoryCardinality,
    ParamType,
    KeyAttribute,
    NonExhaustiveMatch,
    SymmetricRoles,
    ReservedName,
    GeneratorArgs,
    UnpopulatedType,
    RelationSource,
    AttributeCycle,
    BankCycle,
    InvalidRange,
    InvalidDate,
    UniqueTooSmall,
    UnknownOption,
    Agreement,
    RelationAttribute,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::Syntax,
        Code::UnknownType,
        Code::UnknownRelation,
        Code::UnknownAttribute,
        Code::UnknownRole,
        Code::UnknownParam,
        Code::UnknownPool,
        Code::UnknownBank,
        Code::UnknownVariant,
        Code::UnknownGenerator,
        Code::UnknownSlot,
        Code::UnknownFunction,
        Code::UnknownParamType,
        Code::DuplicateDefinition,
        Code::AtomArity,
        Code::RelationArity,
        Code::TypeMismatch,
        Code::UngroundedVariable,
        Code::SingletonVariable,
        Code::UnstratifiableNegation,
        Code::NoBaseCase,
        Code::TemplatePlaceholder,
        Code::UnusedSlot,
        Code::MissingSurfaceForm,
        Code::PoolFileMissing,
        Code::PoolEmpty,
        Code::ContradictoryCardinality,
        Code::ParamType,
        Code::KeyAttribute,
        Code::NonExhaustiveMatch,
        Code::SymmetricRoles,
        Code::ReservedName,
        Code::GeneratorArgs,
        Code::UnpopulatedType,
        Code::RelationSource,
        Code::AttributeCycle,
        Code::BankCycle,
        Code::InvalidRange,
        Code::InvalidDate,
        Code::UniqueTooSmall,
        Code::UnknownOption,
        Code::Agreement,
        Code::RelationAttribute,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::UnknownType => "unknown_type",
            Code::UnknownRelation => "unknown_relation",
            Code::UnknownAttribute => "unknown_attribute",
            Code::UnknownRole => "unknown_role",
            Code::UnknownParam => "unknown_param",
            Code::UnknownPool => "unknown_pool",
            Code::UnknownBank => "unknown_bank",
            Code::UnknownVariant => "unknown_variant",
            Code::UnknownGenerator => "unknown_generator",
            Code::UnknownSlot => "unknown_slot",
            Code::UnknownFunction => "unknown_function",
            Code::UnknownParamType => "unknown_param_type",
            Code::DuplicateDefinition => "duplicate_definition",
            Code::AtomArity => "atom_arity",
            Code::RelationArity => "relation_arity",
            Code::TypeMismatch => "type_mismatch",
            Code::UngroundedVariable => "ungrounded_variable",
            Code::SingletonVariable => "singleton_variable",
            Code::UnstratifiableNegation => "unstratifiable_negation",
            Code::NoBaseCase => "no_base_case",
            Code::TemplatePlaceholder => "template_placeholder",
            Code::UnusedSlot => "unused_slot",
            Code::MissingSurfaceForm => "missing_surface_form",
            Code::PoolFileMissing => "pool_file_missing",
            Code::PoolEmpty => "pool_empty",
            Code::ContradictoryCardinality => "contradictory_cardinality",
            Code::ParamType => "param_type",
            Code::KeyAttribute => "key_attribute",
            Code::NonExhaustiveMatch => "non_exhaustive_match",
            Code::SymmetricRoles => "symmetric_roles",
            Code::ReservedName => "reserved_name",
            Code::GeneratorArgs => "generator_args",
            Code::UnpopulatedType => "unpopulated_type",
            Code::RelationSource => "relation_source",
            Code::AttributeCycle => "attribute_cycle",
            Code::BankCycle => "bank_cycle",
            Code::InvalidRange => "invalid_range",
            Code::InvalidDate => "invalid_date",
            Code::UniqueTooSmall => "unique_too_small",
            Code::UnknownOption => "unknown_option",
            Code::Agreement => "agreement",
            Code::RelationAttribute => "relation_attribute",
        }
    }

    /// The full, stable code users see and search for.
    pub fn full(self) -> String {
        format!("synthpipe::rules::{}", self.name())
    }

    pub fn severity(self) -> Severity {
        match self {
            Code::SingletonVariable | Code::UnusedSlot | Code::UniqueTooSmall | Code::Agreement => {
                Severity::Warning
            }
            _ => Severity::Error,
        }
    }
}

/// A family of diagnostic codes (the rule language's, the pipeline file's): each code has a
/// stable full name and a severity. Lets every file format share one diagnostic type and one
/// renderer.
pub trait DiagCode: Copy + fmt::Debug + PartialEq {
    fn full(self) -> String;
    fn severity(self) -> Severity;
}

impl DiagCode for Code {
    fn full(self) -> String {
        Code::full(self)
    }
    fn severity(self) -> Severity {
        Code::severity(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic<C = Code> {
    pub code: C,
    pub message: String,
    pub span: Span,
    pub label: String,
    /// Other places worth showing, e.g. the earlier definition of a duplicate.
    pub related: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl<C: DiagCode> Diagnostic<C> {
    pub fn new(code: C, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span,
            label: "here".into(),
            related: Vec::new(),
            help: None,
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }
}

/// A diagnostic together with its file, ready for miette to render.
#[derive(Debug)]
pub struct Report<C = Code> {
    pub diag: Diagnostic<C>,
    pub source: NamedSource<Arc<str>>,
    code: String,
}

impl<C: DiagCode> Report<C> {
    pub fn new(diag: Diagnostic<C>, file_name: &str, text: Arc<str>) -> Self {
        let code = diag.code.full();
        Report {
            diag,
            source: NamedSource::new(file_name, text),
            code,
        }
    }
}

impl<C> fmt::Display for Report<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl<C: fmt::Debug> std::error::Error for Report<C> {}

impl<C: DiagCode> miette::Diagnostic for Report<C> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity() {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(
            Some(self.diag.label.clone()),
            (self.diag.span.start, self.diag.span.len()),
        );
        let related = self
            .diag
            .related
            .iter()
            .map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), (s.start, s.len())));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// Renders diagnostics as plain text (no colour, unicode, fixed width): what the tests
/// snapshot and what `check` prints when stderr is not a terminal.
pub fn render_plain<C: DiagCode>(
    diags: &[Diagnostic<C>],
    file_name: &str,
    text: &str,
    width: usize,
) -> String {
    let handler =
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(width);
    render_with(&handler, diags, file_name, text)
}

/// Renders with colours when `color` is set (a terminal).
pub fn render<C: DiagCode>(
    diags: &[Diagnostic<C>],
    file_name: &str,
    text: &str,
    color: bool,
) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    render_with(&handler, diags, file_name, text)
}

fn render_with<C: DiagCode>(
    handler: &GraphicalReportHandler,
    diags: &[Diagnostic<C>],
    file_name: &str,
    text: &str,
) -> String {
    let shared: Arc<str> = Arc::from(text);
    let mut out = String::new();
    for d in diags {
        let report = Report::new(d.clone(), file_name, shared.clone());
        if handler.render_report(&mut out, &report).is_err() {
            // Rendering into a String cannot fail short of a bug; keep the essentials anyway.
            out.push_str(&format!("{}: {}\n", d.code.full(), d.message));
        }
        out.push('\n');
    }
    out
}

/// "did you mean" for a misspelt name, from candidates in a deterministic order.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        let limit = (name.chars().count().max(c.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Levenshtein distance over chars; names are short, so the quadratic table is fine.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_prefixed() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        assert_eq!(
            Code::UnknownRelation.full(),
            "synthpipe::rules::unknown_relation"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("mothr", ["father", "mother", "brother"]),
            Some("did you mean `mother`?".into())
        );
        assert_eq!(did_you_mean("xyz", ["mother"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
