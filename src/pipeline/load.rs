//! Reading and validating a pipeline file: YAML → checked `Pipeline` (stages in dependency
//! order, parameters resolved with defaults filled in, inputs digested). Every problem is
//! reported at once, each a coded diagnostic pointing into the YAML; nothing runs until the
//! file is clean.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use super::diag::{Code, Diagnostic};
use super::yaml::{self, Node, Value};
use crate::lang::ast::Span;
use crate::lang::diag::did_you_mean;
use crate::stages::spec::{self, InputKind, KindSpec, ParamSpec, Ty};
use crate::stages::{self as kinds, At, Trouble};

/// A validated pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    /// The file as given on the command line, and its folder (paths in it are relative to it).
    pub file: PathBuf,
    pub dir: PathBuf,
    /// Stages in a dependency order (every stage after the stages it reads).
    pub stages: Vec<Stage>,
    /// Where stages run unless they say otherwise (`executor:`; `run --executor` overrides).
    pub executor: Option<Executor>,
}

/// Where a stage runs: in the `synthpipe run` process, or as its own SLURM job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    Local,
    Slurm,
}

impl Executor {
    pub fn parse(s: &str) -> Option<Executor> {
        match s {
            "local" => Some(Executor::Local),
            "slurm" => Some(Executor::Slurm),
            _ => None,
        }
    }
}

/// A stage's SLURM resources (`resources:`); unset ones take the executor's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpus: Option<usize>,
    pub gpus: Option<usize>,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub extra_args: Vec<String>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub kind: &'static KindSpec,
    /// Every parameter of the kind, defaults filled in, normalised (seeds as lists, ranges as
    /// `[lo, hi]`, rule settings with every declared parameter); inputs appear as
    /// `{"input": NAME}` and are listed in `inputs`.
    pub params: BTreeMap<String, Json>,
    pub inputs: BTreeMap<String, Input>,
    /// Indices (into `Pipeline::stages`) of the stages this one reads.
    pub deps: Vec<usize>,
    pub cpus: usize,
    pub out: Option<PathBuf>,
    /// `executor:` of the stage itself (wins over the pipeline's and `--executor`).
    pub executor: Option<Executor>,
    pub resources: Resources,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file or folder, with its content digest (a rule file: its checked IR's).
    File { path: PathBuf, digest: String },
    /// Another stage's output.
    Stage { stage: String, output: String },
}

/// A pipeline file that could not be loaded: its text (empty if unreadable) and every
/// problem found.
#[derive(Debug)]
pub struct Failure {
    pub text: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Pipeline, Failure> {
    load_with(path, &[])
}

/// Reads and validates `path` with some of its `params:` values replaced (`--param
/// NAME=VALUE`); a value is read as a YAML scalar (integer, number, boolean or string).
pub fn load_with(path: &Path, overrides: &[(String, String)]) -> Result<Pipeline, Failure> {
    let text = match std::fs::read(path) {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(_) => {
                return Err(Failure {
                    text: String::new(),
                    diagnostics: vec![
                        Diagnostic::new(Code::Read, Span::new(0, 0), "the file is not UTF-8 text")
                            .help("a pipeline file is YAML in UTF-8"),
                    ],
                });
            }
        },
        Err(e) => {
            return Err(Failure {
                text: String::new(),
                diagnostics: vec![
                    Diagnostic::new(
                        Code::Read,
                        Span::new(0, 0),
                        format!("cannot read `{}`: {e}", path.display()),
                    )
                    .help("check the path and its permissions"),
                ],
            });
        }
    };
    match load_str_with(&text, path, overrides) {
        Ok(p) => Ok(p),
        Err(diagnostics) => Err(Failure { text, diagnostics }),
    }
}

/// Validates pipeline text as if it were the file `path` (relative paths resolve against
/// its folder).
pub fn load_str(text: &str, path: &Path) -> Result<Pipeline, Vec<Diagnostic>> {
    load_str_with(text, path, &[])
}

/// [`load_str`] with `--param` overrides.
pub fn load_str_with(
    text: &str,
    path: &Path,
    overrides: &[(String, String)],
) -> Result<Pipeline, Vec<Diagnostic>> {
    load_str_in(text, path, overrides, kinds::KINDS)
}

/// [`load_str_with`] against a registry of stage kinds other than synthpipe's own.
pub fn load_str_in(
    text: &str,
    path: &Path,
    overrides: &[(String, String)],
    registry: &'static [&'static KindSpec],
) -> Result<Pipeline, Vec<Diagnostic>> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut v = Validator {
        kinds: registry,
        dir: dir.clone(),
        diags: Vec::new(),
        params: BTreeMap::new(),
        file_digests: BTreeMap::new(),
        overrides: overrides.to_vec(),
        executor: None,
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            let help = if text.contains("${") {
                "fix the YAML syntax; keys may appear once per mapping, and a `${params.NAME}` inside `{…}` or `[…]` must be quoted: \"${params.NAME}\""
            } else {
                "fix the YAML syntax; keys may appear once per mapping"
            };
            return Err(vec![
                Diagnostic::new(Code::YamlSyntax, e.span, e.message)
                    .label("invalid YAML")
                    .help(help),
            ]);
        }
    };
    let stages = v.pipeline(&root);
    let mut diags = std::mem::take(&mut v.diags);
    match stages {
        Some((name, stages)) if diags.is_empty() => Ok(Pipeline {
            name,
            file: path.to_path_buf(),
            dir,
            stages,
            executor: v.executor,
        }),
        _ => {
            diags.sort_by_key(|d| (d.span.start, d.code));
            diags.dedup();
            Err(diags)
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// A stage as read, before references are resolved.
struct Draft {
    name: String,
    name_span: Span,
    kind: &'static KindSpec,
    params: BTreeMap<String, Json>,
    inputs: BTreeMap<String, (Span, DraftInput)>,
    cpus: usize,
    out: Option<(Span, PathBuf)>,
    executor: Option<Executor>,
    resources: Resources,
}

enum DraftInput {
    File(PathBuf, String),
    Stage(String, Option<String>),
}

struct Validator {
    dir: PathBuf,
    diags: Vec<Diagnostic>,
    params: BTreeMap<String, Node>,
    /// `--param NAME=VALUE` from the command line.
    overrides: Vec<(String, String)>,
    file_digests: BTreeMap<PathBuf, Option<(String, Option<crate::lang::ir::Ir>)>>,
    /// The stage kinds a file may use (`crate::stages::KINDS`).
    kinds: &'static [&'static KindSpec],
    /// The file's top-level `executor:`.
    executor: Option<Executor>,
}

impl Validator {
    fn kind(&self, name: &str) -> Option<&'static KindSpec> {
        self.kinds.iter().copied().find(|k| k.name == name)
    }
}

impl Validator {
    fn err(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(code, span, message));
        self.diags.last_mut().expect("just pushed")
    }

    fn expected(&mut self, node: &Node, what: &str) {
        let found = node.value.describe();
        self.err(
            Code::ExpectedType,
            node.place(),
            format!("expected {what}, found {found}"),
        )
        .label = found.to_string();
        self.diags.last_mut().expect("just pushed").help = Some(format!(
            "write {what} here (docs/pipelines.md lists every key and its type)"
        ));
    }

    /// Checks a mapping's keys against `known`, reporting unknown ones with a suggestion.
    /// Replaces declared parameters' values by `--param` overrides, read as YAML scalars and
    /// placed at the declared value (so a diagnostic about the value points there). An
    /// override of an undeclared parameter is an error at `params_at`.
    fn apply_overrides(&mut self, params_at: Span) {
        for (name, text) in std::mem::take(&mut self.overrides) {
            let Some(old) = self.params.get(&name) else {
                let names: Vec<String> = self.params.keys().cloned().collect();
                self.err(
                    Code::UnknownParamRef,
                    params_at,
                    format!("`--param {name}=…`: the pipeline declares no parameter `{name}`"),
                )
                .help = Some(if names.is_empty() {
                    "this pipeline has no `params:`".into()
                } else {
                    format!("`params:` declares: {}", names.join(", "))
                });
                continue;
            };
            let value = match text.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                t => t
                    .parse::<i64>()
                    .map(Value::Int)
                    .or_else(|_| t.parse::<f64>().map(Value::Float))
                    .unwrap_or_else(|_| Value::Str(text.clone())),
            };
            let span = old.span;
            self.params.insert(name, Node { span, value });
        }
    }

    fn keys<'n>(
        &mut self,
        map: &'n [(Node, Node)],
        known: &[&str],
        whose: &str,
    ) -> BTreeMap<String, (&'n Node, &'n Node)> {
        let mut out = BTreeMap::new();
        for (k, val) in map {
            let Some(name) = k.as_str() else {
                self.expected(k, "a string key");
                continue;
            };
            if !known.contains(&name) {
                let hint = did_you_mean(name, known.iter().copied());
                let d = self.err(
                    Code::UnknownKey,
                    k.span,
                    format!("unknown key `{name}` in {whose}"),
                );
                d.label = "not a known key".into();
                d.help = Some(match hint {
                    Some(h) => h,
                    None => format!("{whose} takes: {}", known.join(", ")),
                });
                continue;
            }
            out.insert(name.to_string(), (k, val));
        }
        out
    }

    fn pipeline(&mut self, root: &Node) -> Option<(String, Vec<Stage>)> {
        let Some(top) = root.as_map() else {
            self.expected(root, "a mapping with `name` and `stages`");
            return None;
        };
        let known: Vec<&str> = spec::TOP_KEYS.iter().map(|(k, _)| *k).collect();
        let keys = self.keys(top, &known, "the pipeline file");
        let doc_start = root.place();
        let name = match keys.get("name") {
            Some((_, n)) => match n.as_str() {
                Some(s)
                    if !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    Some(s.to_string())
                }
                Some(_) => {
                    self.err(
                        Code::BadName,
                        n.span,
                        "a pipeline name may hold only letters, digits, `_` and `-`",
                    )
                    .help = Some("rename the pipeline, e.g. `quickstart`".into());
                    None
                }
                None => {
                    self.expected(n, "a string");
                    None
                }
            },
            None => {
                self.err(Code::MissingKey, doc_start, "the pipeline has no `name`")
                    .help = Some("add `name: my-pipeline` at the top".into());
                None
            }
        };
        if let Some((_, p)) = keys.get("params") {
            match p.as_map() {
                Some(m) => {
                    for (k, val) in m {
                        match k.as_str() {
                            Some(s) if is_ident(s) => {
                                self.params.insert(s.to_string(), val.clone());
                            }
                            _ => {
                                self.err(
                                    Code::BadName,
                                    k.span,
                                    "a parameter name must be an identifier",
                                )
                                .help = Some(
                                    "use letters, digits and `_`, starting with a letter".into(),
                                );
                            }
                        }
                    }
                }
                None => self.expected(p, "a mapping of names to values"),
            }
        }
        if let Some((_, e)) = keys.get("executor") {
            self.executor = self.executor(e);
        }
        let params_at = keys.get("params").map_or(doc_start, |(k, _)| k.span);
        self.apply_overrides(params_at);
        let mut defaults: BTreeMap<&'static str, Vec<(Node, Node)>> = BTreeMap::new();
        if let Some((_, d)) = keys.get("defaults") {
            match d.as_map() {
                Some(m) => {
                    for (k, val) in m {
                        let Some(kname) = k.as_str() else {
                            self.expected(k, "a stage kind");
                            continue;
                        };
                        let Some(kind) = self.kind(kname) else {
                            self.unknown_kind(k, kname);
                            continue;
                        };
                        match val.as_map() {
                            Some(entries) => {
                                let names: Vec<&str> = kind.params.iter().map(|p| p.name).collect();
                                self.keys(
                                    entries,
                                    &names,
                                    &format!("defaults for `{}`", kind.name),
                                );
                                defaults.insert(kind.name, entries.to_vec());
                            }
                            None => self.expected(val, "a mapping of parameters"),
                        }
                    }
                }
                None => self.expected(d, "a mapping from stage kinds to parameters"),
            }
        }
        let Some((_, stages_node)) = keys.get("stages") else {
            self.err(Code::MissingKey, doc_start, "the pipeline has no `stages`")
                .help = Some("add `stages:` with at least one stage".into());
            return None;
        };
        let Some(stage_map) = stages_node.as_map() else {
            self.expected(stages_node, "a mapping of stage names to stages");
            return None;
        };
        if stage_map.is_empty() {
            self.err(
                Code::MissingKey,
                stages_node.span,
                "the pipeline has no stages",
            )
            .help = Some("add at least one stage under `stages:`".into());
        }
        let mut drafts = Vec::new();
        for (k, val) in stage_map {
            let Some(sname) = k.as_str() else {
                self.expected(k, "a stage name");
                continue;
            };
            if !is_ident(sname) {
                self.err(Code::BadName, k.span, format!("`{sname}` is not a valid stage name"))
                    .help = Some("use letters, digits and `_`, starting with a letter (it is used in `from: STAGE.OUTPUT`)".into());
                continue;
            }
            if let Some(d) = self.stage(sname, k.span, val, &defaults) {
                drafts.push(d);
            }
        }
        let stages = self.link(drafts)?;
        Some((name?, stages))
    }

    fn executor(&mut self, node: &Node) -> Option<Executor> {
        let node = self.subst(node);
        let found = node.as_str().and_then(Executor::parse);
        if found.is_none() {
            let d = self.err(
                Code::InvalidValue,
                node.place(),
                "an executor is `local` or `slurm`",
            );
            d.label = "not an executor".into();
            d.help = Some(
                "`local` runs the stage in this process; `slurm` submits it as a SLURM job (docs/cluster.md)".into(),
            );
        }
        found
    }

    /// `resources: {cpus, gpus, mem, time, partition, account, extra_args}`.
    fn resources(&mut self, node: &Node) -> Resources {
        let mut r = Resources::default();
        let Some(map) = node.as_map() else {
            self.expected(node, "a mapping of SLURM resources");
            return r;
        };
        let known: Vec<&str> = spec::RESOURCE_KEYS.iter().map(|(k, _)| *k).collect();
        let keys = self.keys(map, &known, "`resources`");
        let count = |v: &mut Self, key: &str| -> Option<usize> {
            let (_, n) = keys.get(key)?;
            let n = v.subst(n);
            match n.value {
                Value::Int(i) if (0..=100_000).contains(&i) => Some(i as usize),
                _ => {
                    v.expected(&n, "a whole number");
                    None
                }
            }
        };
        r.cpus = count(self, "cpus");
        r.gpus = count(self, "gpus");
        // Checked as SLURM reads them, so a typo fails here and not in `sbatch` mid-run.
        let text = |v: &mut Self, key: &str, ok: fn(&str) -> bool, what: &str| -> Option<String> {
            let (_, n) = keys.get(key)?;
            let n = v.subst(n);
            let s = match &n.value {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => {
                    v.expected(&n, what);
                    return None;
                }
            };
            if ok(&s) {
                Some(s)
            } else {
                let d = v.err(
                    Code::InvalidValue,
                    n.place(),
                    format!("`{s}` is not {what}"),
                );
                d.label = format!("not {what}");
                d.help = Some(format!("write {what}"));
                None
            }
        };
        r.mem = text(
            self,
            "mem",
            |s| {
                let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
                !digits.is_empty()
                    && digits.len() + 1 >= s.len()
                    && digits.bytes().all(|b| b.is_ascii_digit())
            },
            "a memory size (megabytes, or with K, M, G or T: `16G`)",
        );
        r.time = text(
            self,
            "time",
            |s| {
                let (days, rest) = s.split_once('-').unwrap_or(("0", s));
                let parts: Vec<&str> = rest.split(':').collect();
                days.bytes().all(|b| b.is_ascii_digit())
                    && !days.is_empty()
                    && (1..=3).contains(&parts.len())
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            },
            "a time limit (minutes, `HH:MM:SS` or `D-HH:MM:SS`)",
        );
        let word = |s: &str| !s.is_empty() && !s.chars().any(char::is_whitespace);
        r.partition = text(self, "partition", word, "a partition name");
        r.account = text(self, "account", word, "an account name");
        if let Some((_, n)) = keys.get("extra_args") {
            let n = self.subst(n);
            match &n.value {
                Value::Seq(items) => {
                    for it in items {
                        let it = self.subst(it);
                        match it.as_str() {
                            Some(a) if a.starts_with('-') => r.extra_args.push(a.to_string()),
                            Some(a) => {
                                let d = self.err(
                                    Code::InvalidValue,
                                    it.place(),
                                    format!("`{a}` is not an `sbatch` option"),
                                );
                                d.label = "not an option".into();
                                d.help = Some(
                                    "write each option as `sbatch` takes it, with its dashes: `--exclusive`, `--constraint=a100`".into(),
                                );
                            }
                            None => self.expected(&it, "an `sbatch` option (`--constraint=a100`)"),
                        }
                    }
                }
                _ => self.expected(&n, "a list of `sbatch` options"),
            }
        }
        r
    }

    fn unknown_kind(&mut self, node: &Node, name: &str) {
        let names: Vec<&str> = self.kinds.iter().map(|k| k.name).collect();
        let hint = did_you_mean(name, names.iter().copied());
        let d = self.err(
            Code::UnknownKind,
            node.span,
            format!("unknown stage kind `{name}`"),
        );
        d.label = "not a stage kind".into();
        d.help = Some(match hint {
            Some(h) => format!("{h} (kinds: {})", names.join(", ")),
            None => format!("the stage kinds are: {}", names.join(", ")),
        });
    }

    fn stage(
        &mut self,
        name: &str,
        name_span: Span,
        node: &Node,
        defaults: &BTreeMap<&'static str, Vec<(Node, Node)>>,
    ) -> Option<Draft> {
        let Some(map) = node.as_map() else {
            self.expected(node, "a mapping with `kind` and the kind's parameters");
            return None;
        };
        let kind_node = map
            .iter()
            .find(|(k, _)| k.as_str() == Some("kind"))
            .map(|(_, v)| v);
        let kind = match kind_node {
            None => {
                let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name).collect();
                self.err(
                    Code::MissingKey,
                    name_span,
                    format!("stage `{name}` has no `kind`"),
                )
                .help = Some(format!("add `kind:` with one of: {}", kinds.join(", ")));
                return None;
            }
            Some(k) => match k.as_str() {
                Some(s) => match self.kind(s) {
                    Some(kind) => kind,
                    None => {
                        self.unknown_kind(k, s);
                        return None;
                    }
                },
                None => {
                    self.expected(k, "a stage kind");
                    return None;
                }
            },
        };
        let mut known: Vec<&str> = spec::STAGE_KEYS.iter().map(|(k, _)| *k).collect();
        known.extend(kind.params.iter().map(|p| p.name));
        let before = self.diags.len();
        let keys = self.keys(map, &known, &format!("a `{}` stage", kind.name));
        for d in &mut self.diags[before..] {
            if d.code == Code::UnknownKey {
                d.message = d.message.replace("unknown key", "unknown parameter");
                let params: Vec<&str> = kind.params.iter().map(|p| p.name).collect();
                if !d.help.as_deref().unwrap_or("").starts_with("did you mean") {
                    d.help = Some(format!(
                        "a `{}` stage takes: {}",
                        kind.name,
                        params.join(", ")
                    ));
                }
            }
        }
        let empty = Vec::new();
        let kind_defaults = defaults.get(kind.name).unwrap_or(&empty);
        let mut draft = Draft {
            name: name.to_string(),
            name_span,
            kind,
            params: BTreeMap::new(),
            inputs: BTreeMap::new(),
            cpus: kind.cpus,
            out: None,
            executor: None,
            resources: Resources::default(),
        };
        if let Some((_, c)) = keys.get("cpus") {
            let c = self.subst(c);
            match c.value {
                Value::Int(n) if (0..=4096).contains(&n) => draft.cpus = n as usize,
                _ => self.expected(&c, "a number of cores in 0..=4096"),
            }
        }
        if let Some((_, e)) = keys.get("executor") {
            draft.executor = self.executor(e);
        }
        if let Some((_, r)) = keys.get("resources") {
            draft.resources = self.resources(r);
        }
        if let Some((_, o)) = keys.get("out") {
            let o = self.subst(o);
            match o.as_str() {
                Some(s) if !s.trim().is_empty() => draft.out = Some((o.span, self.dir.join(s))),
                _ => self.expected(&o, "a folder path"),
            }
        }
        for ps in kind.params {
            let given = keys.get(ps.name).map(|(_, v)| (*v).clone());
            let default = kind_defaults
                .iter()
                .find(|(k, _)| k.as_str() == Some(ps.name))
                .map(|(_, v)| v.clone());
            let node = match (given, default) {
                // Rule settings merge: the stage's own values win over the kind's defaults.
                (Some(g), Some(d)) if matches!(ps.ty, Ty::Settings) => merge_maps(&d, &g),
                (Some(g), _) => Some(g),
                (None, d) => d,
            };
            let value = match node {
                Some(n) => {
                    let n = self.subst(&n);
                    self.value(ps, &n, ps.name, &mut draft)
                }
                None if ps.required => {
                    self.err(
                        Code::MissingKey,
                        name_span,
                        format!("stage `{name}` has no `{}`", ps.name),
                    )
                    .help = Some(format!(
                        "a `{}` stage needs `{}`: {}",
                        kind.name,
                        ps.name,
                        spec::describe(ps.ty)
                    ));
                    None
                }
                None => Some(default_value(ps)),
            };
            if let Some(v) = value {
                draft.params.insert(ps.name.to_string(), v);
            }
        }
        self.kind_rules(&mut draft, &keys);
        Some(draft)
    }

    /// Replaces `${params.NAME}` references by the parameter's value (whole-value references
    /// keep the value's type; references inside a longer string are spliced in as text).
    fn subst(&mut self, node: &Node) -> Node {
        match &node.value {
            Value::Str(s) if s.contains("${") => {
                let whole = s.trim();
                if let Some(name) = whole
                    .strip_prefix("${params.")
                    .and_then(|r| r.strip_suffix('}'))
                    .filter(|n| !n.contains('}'))
                {
                    return match self.param_ref(name, node.span) {
                        Some(v) => Node {
                            span: node.span,
                            value: v.value,
                        },
                        None => Node {
                            span: node.span,
                            value: Value::Null,
                        },
                    };
                }
                let mut out = String::new();
                let mut rest = s.as_str();
                while let Some(i) = rest.find("${") {
                    out.push_str(&rest[..i]);
                    let tail = &rest[i + 2..];
                    let Some(j) = tail.find('}') else {
                        self.err(
                            Code::UnknownParamRef,
                            node.span,
                            "unclosed `${` in a string",
                        )
                        .help = Some("write `${params.NAME}`".into());
                        return null_at(node);
                    };
                    let inner = &tail[..j];
                    let Some(name) = inner.strip_prefix("params.") else {
                        self.err(
                            Code::UnknownParamRef,
                            node.span,
                            format!("`${{{inner}}}` is not a parameter reference"),
                        )
                        .help = Some("only `${params.NAME}` is substituted".into());
                        return null_at(node);
                    };
                    match self
                        .param_ref(name, node.span)
                        .and_then(|v| v.scalar_text())
                    {
                        Some(t) => out.push_str(&t),
                        None => return null_at(node),
                    }
                    rest = &tail[j + 1..];
                }
                out.push_str(rest);
                Node {
                    span: node.span,
                    value: Value::Str(out),
                }
            }
            Value::Seq(items) => Node {
                span: node.span,
                value: Value::Seq(items.iter().map(|i| self.subst(i)).collect()),
            },
            Value::Map(entries) => Node {
                span: node.span,
                value: Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), self.subst(v)))
                        .collect(),
                ),
            },
            _ => node.clone(),
        }
    }

    fn param_ref(&mut self, name: &str, span: Span) -> Option<Node> {
        if let Some(v) = self.params.get(name) {
            return Some(v.clone());
        }
        let names: Vec<String> = self.params.keys().cloned().collect();
        let hint = did_you_mean(name, names.iter().map(String::as_str));
        let d = self.err(
            Code::UnknownParamRef,
            span,
            format!("unknown parameter `{name}`"),
        );
        d.label = "referenced here".into();
        d.help = Some(match hint {
            Some(h) => h,
            None if names.is_empty() => "declare it under `params:` at the top of the file".into(),
            None => format!("`params:` declares: {}", names.join(", ")),
        });
        None
    }

    /// Checks and normalises one parameter value; inputs are recorded in `draft`.
    fn value(&mut self, ps: &ParamSpec, n: &Node, place: &str, draft: &mut Draft) -> Option<Json> {
        if n.value == Value::Null && !matches!(ps.ty, Ty::Input(_)) {
            // A failed `${params.x}` was reported already; an explicit null means "default".
            return Some(default_value(ps));
        }
        match ps.ty {
            Ty::Int { min, max } => match n.value {
                Value::Int(i) if (min..=max).contains(&i) => Some(json!(i)),
                Value::Int(i) => {
                    self.err(
                        Code::InvalidValue,
                        n.span,
                        format!("`{}` must be {}, not {i}", ps.name, spec::describe(ps.ty)),
                    );
                    None
                }
                _ => {
                    self.expected(n, &spec::describe(ps.ty));
                    None
                }
            },
            Ty::Float { min, max } => {
                let f = match n.value {
                    Value::Int(i) => i as f64,
                    Value::Float(f) => f,
                    _ => {
                        self.expected(n, &spec::describe(ps.ty));
                        return None;
                    }
                };
                if !(min..=max).contains(&f) {
                    self.err(
                        Code::InvalidValue,
                        n.span,
                        format!("`{}` must be {}, not {f}", ps.name, spec::describe(ps.ty)),
                    );
                    return None;
                }
                Some(json!(f))
            }
            Ty::Bool => match n.value {
                Value::Bool(b) => Some(json!(b)),
                _ => {
                    self.expected(n, "`true` or `false`");
                    None
                }
            },
            Ty::Str => match n.as_str() {
                Some(s) => Some(json!(s)),
                None => {
                    self.expected(n, "a string");
                    None
                }
            },
            Ty::Choice(words) => match n.as_str() {
                Some(s) if words.contains(&s) => Some(json!(s)),
                Some(s) => {
                    self.err(
                        Code::InvalidValue,
                        n.span,
                        format!("`{}` cannot be `{s}`", ps.name),
                    )
                    .help = Some(format!("use {}", spec::describe(ps.ty)));
                    None
                }
                None => {
                    self.expected(n, &spec::describe(ps.ty));
                    None
                }
            },
            Ty::StrList => match &n.value {
                Value::Seq(items) => {
                    let mut out = Vec::new();
                    for i in items {
                        match i.as_str() {
                            Some(s) => out.push(json!(s)),
                            None => self.expected(i, "a string"),
                        }
                    }
                    Some(Json::Array(out))
                }
                _ => {
                    self.expected(n, "a list of strings");
                    None
                }
            },
            Ty::Seeds => self.seeds(n).map(|s| json!(s)),
            Ty::ShareOrSeeds => match n.value {
                Value::Int(_) | Value::Float(_) => {
                    let f = match n.value {
                        Value::Int(i) => i as f64,
                        Value::Float(f) => f,
                        _ => unreachable!("matched numbers"),
                    };
                    if !(0.0..=1.0).contains(&f) {
                        self.err(
                            Code::InvalidValue,
                            n.span,
                            format!("a share must lie in 0..=1, not {f}"),
                        )
                        .help = Some(
                            "give a share such as 0.8, or a list of seeds such as [1, 2, 3]".into(),
                        );
                        return None;
                    }
                    Some(json!({"share": f}))
                }
                _ => self.seeds(n).map(|s| json!({"seeds": s})),
            },
            Ty::Range => {
                let r = match &n.value {
                    Value::Int(i) => Some((Some(*i), Some(*i))),
                    Value::Str(s) => parse_range(s),
                    _ => {
                        self.expected(n, &spec::describe(ps.ty));
                        return None;
                    }
                };
                match r {
                    Some((lo, hi)) if lo.zip(hi).is_none_or(|(a, b)| a <= b) => {
                        Some(json!([lo, hi]))
                    }
                    _ => {
                        self.err(
                            Code::InvalidValue,
                            n.span,
                            format!("`{}` is not a valid range", place),
                        )
                        .help = Some("write N, \"A..=B\", \"A..\" or \"..=B\" with A ≤ B".into());
                        None
                    }
                }
            }
            Ty::Settings => {
                let Some(m) = n.as_map() else {
                    self.expected(n, "a mapping of rule-file parameters to values");
                    return None;
                };
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    let Some(key) = k.as_str() else {
                        self.expected(k, "a parameter name");
                        continue;
                    };
                    match v.scalar_text() {
                        // Null: unset (or a failed `${params.…}`, reported already).
                        None if v.value == Value::Null => {}
                        Some(t) => {
                            out.insert(key.to_string(), json!({"text": t, "at": [k.span.start, k.span.end, v.span.start, v.span.end]}));
                        }
                        None => self.expected(v, "a number, boolean or string"),
                    }
                }
                Some(Json::Object(out))
            }
            Ty::Ref(_) => {
                let Some(r) = n.as_str() else {
                    self.expected(n, "`STAGE.OUTPUT`");
                    return None;
                };
                let input = self.reference(r, n.span)?;
                draft.inputs.insert(place.to_string(), (n.span, input));
                Some(json!({"input": place}))
            }
            Ty::Input(kind) => {
                let (input, span) = self.input(n, kind)?;
                draft.inputs.insert(place.to_string(), (span, input));
                Some(json!({"input": place}))
            }
            Ty::List(fields) => {
                let Value::Seq(items) = &n.value else {
                    self.expected(n, "a list of mappings");
                    return None;
                };
                if items.is_empty() {
                    self.empty(n, ps, "give at least one item".into());
                }
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let whose = format!("an item of `{}`", ps.name);
                    if let Some(obj) =
                        self.mapping(fields, item, &whose, &format!("{place}.{i}"), draft)
                    {
                        out.push(obj);
                    }
                }
                Some(Json::Array(out))
            }
            Ty::Map(fields) => {
                let whose = format!("`{}`", ps.name);
                self.mapping(fields, n, &whose, place, draft)
            }
            Ty::Choices(words) => {
                let Value::Seq(items) = &n.value else {
                    self.expected(n, &spec::describe(ps.ty));
                    return None;
                };
                if items.is_empty() {
                    self.empty(n, ps, format!("give {}", spec::describe(ps.ty)));
                    return None;
                }
                let mut out: Vec<&str> = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(s) if out.contains(&s) => {
                            self.err(
                                Code::InvalidValue,
                                i.span,
                                format!("`{s}` is listed twice in `{}`", ps.name),
                            )
                            .help = Some("list each at most once".into());
                        }
                        Some(s) if words.contains(&s) => out.push(s),
                        Some(s) => {
                            let d = self.err(
                                Code::InvalidValue,
                                i.span,
                                format!("`{}` cannot list `{s}`", ps.name),
                            );
                            d.help = Some(
                                did_you_mean(s, words.iter().copied())
                                    .unwrap_or_else(|| format!("use {}", spec::describe(ps.ty))),
                            );
                        }
                        None => self.expected(i, "a word"),
                    }
                }
                Some(json!(out))
            }
        }
    }

    /// Reports an empty list where `ps` needs items.
    fn empty(&mut self, n: &Node, ps: &ParamSpec, help: String) {
        self.err(
            Code::InvalidValue,
            n.span,
            format!("`{}` is empty", ps.name),
        )
        .help = Some(help);
    }

    /// A mapping with the given fields (`whose` names it in messages, `place` is its
    /// parameter place): each field checked as a parameter, absent ones at their defaults.
    fn mapping(
        &mut self,
        fields: &[ParamSpec],
        n: &Node,
        whose: &str,
        place: &str,
        draft: &mut Draft,
    ) -> Option<Json> {
        let Some(m) = n.as_map() else {
            self.expected(n, "a mapping");
            return None;
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        let keys = self.keys(m, &names, whose);
        let mut obj = serde_json::Map::new();
        for f in fields {
            let sub = format!("{place}.{}", f.name);
            let v = match keys.get(f.name) {
                Some((_, v)) => self.value(f, v, &sub, draft),
                None if f.required => {
                    self.err(
                        Code::MissingKey,
                        n.place(),
                        format!("{whose} has no `{}`", f.name),
                    )
                    .help = Some(format!("add `{}`: {}", f.name, spec::describe(f.ty)));
                    None
                }
                None => Some(default_value(f)),
            };
            if let Some(v) = v {
                obj.insert(f.name.to_string(), v);
            }
        }
        Some(Json::Object(obj))
    }

    fn seeds(&mut self, n: &Node) -> Option<Vec<u64>> {
        let spec = match &n.value {
            Value::Int(i) if *i >= 0 => i.to_string(),
            Value::Seq(items) => {
                let mut parts = Vec::new();
                for i in items {
                    match i.value {
                        Value::Int(x) if x >= 0 => parts.push(x.to_string()),
                        _ => {
                            self.expected(i, "a seed (a whole number ≥ 0)");
                            return None;
                        }
                    }
                }
                if parts.is_empty() {
                    return Some(Vec::new());
                }
                parts.join(",")
            }
            Value::Str(s) => s.clone(),
            _ => {
                self.expected(
                    n,
                    "seeds: an integer, a list of integers or a string like \"1..=10\"",
                );
                return None;
            }
        };
        match crate::universe::params::parse_seeds(&spec) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(Code::InvalidValue, n.span, format!("bad seeds: {e}"))
                    .help = Some("write `N`, `[N, ...]`, or a string like \"1..=10\" (10 included) or \"0..10\" (10 excluded)".into());
                None
            }
        }
    }

    /// An input and the span its diagnostics point at (the reference, for `{from: …}`).
    fn input(&mut self, n: &Node, kind: InputKind) -> Option<(DraftInput, Span)> {
        match &n.value {
            Value::Str(s) => {
                let path = normalize(&self.dir.join(s));
                let digest = self.digest(&path, kind, n)?;
                Some((DraftInput::File(path, digest), n.span))
            }
            Value::Map(m) => {
                let keys = self.keys(m, &["from"], "an input");
                let Some((_, from)) = keys.get("from") else {
                    if !m.is_empty() && keys.is_empty() {
                        return None;
                    }
                    self.err(Code::MissingKey, n.span, "this input has no `from`")
                        .help = Some("write `{from: STAGE.OUTPUT}` or a path".into());
                    return None;
                };
                let Some(r) = from.as_str() else {
                    self.expected(from, "`STAGE.OUTPUT`");
                    return None;
                };
                self.reference(r, from.span).map(|i| (i, from.span))
            }
            _ => {
                self.expected(
                    n,
                    &format!("{}: a path or `{{from: STAGE.OUTPUT}}`", kind.describe()),
                );
                None
            }
        }
    }

    /// `STAGE.OUTPUT` or `STAGE`, checked for shape (existence is checked once all stages
    /// are read).
    fn reference(&mut self, r: &str, span: Span) -> Option<DraftInput> {
        let (stage, output) = match r.split_once('.') {
            Some((s, o)) => (s, Some(o)),
            None => (r, None),
        };
        if !is_ident(stage) || output.is_some_and(|o| !is_ident(o)) {
            self.err(
                Code::BadReference,
                span,
                format!("`{r}` is not a reference to a stage output"),
            )
            .help = Some("write `STAGE.OUTPUT`, e.g. `from: gen_train.dataset`".into());
            return None;
        }
        Some(DraftInput::Stage(
            stage.to_string(),
            output.map(str::to_string),
        ))
    }

    /// The content digest of a file input, or a diagnostic at `n` when it is missing or
    /// unusable. Rule files are checked (and their IR digested); folders are digested over
    /// their files.
    fn digest(&mut self, path: &Path, kind: InputKind, n: &Node) -> Option<String> {
        if !path.exists() {
            self.err(
                Code::MissingFile,
                n.span,
                format!("`{}` does not exist", path.display()),
            )
            .help = Some(format!(
                "paths are relative to the pipeline file's folder (`{}`); expected {}",
                if self.dir.as_os_str().is_empty() {
                    "."
                } else {
                    self.dir.to_str().unwrap_or("?")
                },
                kind.describe()
            ));
            return None;
        }
        if let Some(known) = self.file_digests.get(path) {
            return known.as_ref().map(|(d, _)| d.clone());
        }
        let result = match kind {
            InputKind::Rules => match crate::lang::check_file(path) {
                Ok((_, checked)) => match checked.ir {
                    Some(ir) => Ok((ir.digest(), Some(ir))),
                    None => Err((
                        Code::RulesInvalid,
                        format!(
                            "the rule file `{}` has {} error(s)",
                            path.display(),
                            checked.diagnostics.iter().filter(|d| d.is_error()).count()
                        ),
                        format!("run `synthpipe check {}` to see them", path.display()),
                    )),
                },
                Err(e) => Err((
                    Code::MissingFile,
                    format!("cannot read `{}`: {e}", path.display()),
                    "check the path and its permissions".into(),
                )),
            },
            InputKind::Model
                if !(path.join("config.json").is_file()
                    || (path.is_file() && path.extension().is_some_and(|e| e == "gguf"))) =>
            {
                Err((
                    Code::MissingFile,
                    format!(
                        "`{}` is not a model (neither a folder with config.json nor a .gguf file)",
                        path.display()
                    ),
                    "give a Hugging Face model folder, a .gguf file, or `{from: STAGE.model}`"
                        .into(),
                ))
            }
            InputKind::Dataset if !path.join("questions.jsonl").is_file() => Err((
                Code::MissingFile,
                format!(
                    "`{}` is not a dataset folder (it has no questions.jsonl)",
                    path.display()
                ),
                "give a folder written by `synthpipe generate`, or `{from: STAGE.dataset}`".into(),
            )),
            _ => super::store::digest_path(path)
                .map(|d| (d, None))
                .map_err(|e| {
                    (
                        Code::MissingFile,
                        format!("cannot read `{}`: {e}", path.display()),
                        "check the path and its permissions".into(),
                    )
                }),
        };
        match result {
            Ok(x) => {
                let d = x.0.clone();
                self.file_digests.insert(path.to_path_buf(), Some(x));
                Some(d)
            }
            Err((code, msg, help)) => {
                self.err(code, n.span, msg).help = Some(help);
                self.file_digests.insert(path.to_path_buf(), None);
                None
            }
        }
    }

    /// The checks that span several parameters: rule settings resolved against the stage's
    /// rule file, the kind's own checks, and (a loader bug otherwise) that the parameters
    /// read as the kind's typed `Params`.
    fn kind_rules(&mut self, draft: &mut Draft, keys: &BTreeMap<String, (&Node, &Node)>) {
        if draft
            .kind
            .params
            .iter()
            .any(|p| matches!(p.ty, Ty::Settings))
        {
            self.resolve_settings(draft);
        }
        let given: BTreeSet<String> = keys.keys().cloned().collect();
        let mut check = kinds::Check {
            params: &mut draft.params,
            given: &given,
            kind: draft.kind.name,
            problems: Vec::new(),
        };
        (draft.kind.check)(&mut check);
        let problems = std::mem::take(&mut check.problems);
        for p in problems {
            let span = match &p.at {
                At::Stage => draft.name_span,
                At::Key(k) => keys.get(k).map_or(draft.name_span, |(k, _)| k.span),
                At::Value(k) => keys.get(k).map_or(draft.name_span, |(_, v)| v.span),
                At::Item(k, i) => keys
                    .get(k)
                    .and_then(|(_, v)| match &v.value {
                        Value::Seq(items) => items.get(*i).map(Node::place),
                        _ => None,
                    })
                    .unwrap_or(draft.name_span),
            };
            let code = match p.trouble {
                Trouble::MissingKey => Code::MissingKey,
                Trouble::InvalidValue => Code::InvalidValue,
            };
            self.err(code, span, p.message).help = Some(p.help);
        }
        if self.diags.is_empty() {
            let none = BTreeMap::new();
            let io = kinds::Io {
                params: &draft.params,
                inputs: &none,
                outputs: &none,
                scratch: Path::new(""),
                progress: false,
            };
            if let Err(e) = (draft.kind.typed)(&io) {
                self.err(Code::InvalidValue, draft.name_span, e.0);
            }
        }
    }

    /// Resolves a stage's `set` against the parameters its rule file declares:
    /// unknown names and bad values are reported where they are written; the result has
    /// every declared parameter, so writing a default explicitly does not change the key.
    fn resolve_settings(&mut self, draft: &mut Draft) {
        let Some((_, DraftInput::File(path, _))) = draft.inputs.get("rules") else {
            return;
        };
        let Some(Some((_, Some(ir)))) = self.file_digests.get(path) else {
            return;
        };
        let ir = ir.clone();
        let given = draft.params.get("set").cloned().unwrap_or(json!({}));
        let mut pairs = Vec::new();
        if let Some(m) = given.as_object() {
            for (k, v) in m {
                let text = v["text"].as_str().unwrap_or_default().to_string();
                let at = |i: usize| v["at"][i].as_u64().unwrap_or(0) as usize;
                let (kspan, vspan) = (Span::new(at(0), at(1)), Span::new(at(2), at(3)));
                let one = [(k.clone(), text.clone())];
                if let Err(e) = crate::universe::params::Params::resolve(&ir, &one) {
                    let unknown = ir.param(k).is_none();
                    let msg = e
                        .to_string()
                        .trim_start_matches("bad parameters:")
                        .trim()
                        .to_string();
                    let (code, span) = if unknown {
                        (Code::UnknownRuleParam, kspan)
                    } else {
                        (Code::InvalidValue, vspan)
                    };
                    self.err(code, span, msg).help = Some(format!(
                        "`set` takes the parameters `{}` declares (`param` lines)",
                        path.display()
                    ));
                    continue;
                }
                pairs.push((k.clone(), text));
            }
        }
        match crate::universe::params::Params::resolve(&ir, &pairs) {
            Ok(p) => {
                draft
                    .params
                    .insert("set".into(), crate::universe::dataset::params_json(&p));
            }
            Err(e) => {
                self.err(Code::InvalidValue, draft.name_span, e.to_string());
            }
        }
    }

    /// Resolves references between stages, orders the stages, and reports cycles and
    /// outputs two stages would both write.
    fn link(&mut self, drafts: Vec<Draft>) -> Option<Vec<Stage>> {
        let index: BTreeMap<&str, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        let names: Vec<&str> = drafts.iter().map(|d| d.name.as_str()).collect();
        let mut deps: Vec<Vec<(usize, Span)>> = vec![Vec::new(); drafts.len()];
        let mut resolved: Vec<BTreeMap<String, Input>> = vec![BTreeMap::new(); drafts.len()];
        let mut problems = Vec::new();
        for (i, d) in drafts.iter().enumerate() {
            for (place, (span, input)) in &d.inputs {
                let wanted = input_kind(d.kind, place);
                match input {
                    DraftInput::File(path, digest) => {
                        resolved[i].insert(
                            place.clone(),
                            Input::File {
                                path: path.clone(),
                                digest: digest.clone(),
                            },
                        );
                    }
                    DraftInput::Stage(s, o) => {
                        let Some(&j) = index.get(s.as_str()) else {
                            let hint = did_you_mean(s, names.iter().copied());
                            problems.push(
                                Diagnostic::new(
                                    Code::UnknownStage,
                                    *span,
                                    format!("no stage is named `{s}`"),
                                )
                                .label("unknown stage")
                                .help(hint.unwrap_or_else(|| {
                                    format!("the stages are: {}", names.join(", "))
                                })),
                            );
                            continue;
                        };
                        let up = drafts[j].kind;
                        let output = match o {
                            Some(o) => match up.output(o) {
                                Some(out) => out,
                                None => {
                                    let outs: Vec<&str> =
                                        up.outputs.iter().map(|o| o.name).collect();
                                    problems.push(
                                        Diagnostic::new(
                                            Code::UnknownOutput,
                                            *span,
                                            format!(
                                                "stage `{s}` ({}) has no output `{o}`",
                                                up.name
                                            ),
                                        )
                                        .label("unknown output")
                                        .related(drafts[j].name_span, "defined here")
                                        .help(
                                            did_you_mean(o, outs.iter().copied()).unwrap_or_else(
                                                || format!("its outputs are: {}", outs.join(", ")),
                                            ),
                                        ),
                                    );
                                    continue;
                                }
                            },
                            None if up.outputs.len() == 1 => &up.outputs[0],
                            None => {
                                let outs: Vec<String> = up
                                    .outputs
                                    .iter()
                                    .map(|o| format!("{s}.{}", o.name))
                                    .collect();
                                problems.push(
                                    Diagnostic::new(
                                        Code::BadReference,
                                        *span,
                                        format!("stage `{s}` has several outputs; say which"),
                                    )
                                    .help(format!("write one of: {}", outs.join(", "))),
                                );
                                continue;
                            }
                        };
                        if !wanted.accepts(output.kind) {
                            problems.push(
                                Diagnostic::new(
                                    Code::InputType,
                                    *span,
                                    format!("`{s}.{}` is not {}", output.name, wanted.describe()),
                                )
                                .label("wrong kind of input")
                                .related(drafts[j].name_span, "defined here")
                                .help(format!(
                                    "`{}` needs {}",
                                    place,
                                    wanted.describe()
                                )),
                            );
                            continue;
                        }
                        if j == i {
                            problems.push(
                                Diagnostic::new(
                                    Code::Cycle,
                                    *span,
                                    format!("stage `{s}` reads its own output"),
                                )
                                .help("a stage can only read the outputs of other stages"),
                            );
                            continue;
                        }
                        deps[i].push((j, *span));
                        resolved[i].insert(
                            place.clone(),
                            Input::Stage {
                                stage: s.clone(),
                                output: output.name.to_string(),
                            },
                        );
                    }
                }
            }
        }
        self.diags.extend(problems);
        // Two stages copying their outputs to the same (or a nested) folder would overwrite
        // each other.
        let outs: Vec<(usize, Span, PathBuf)> = drafts
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.out.as_ref().map(|(s, p)| (i, *s, normalize(p))))
            .collect();
        for (a, (i, sa, pa)) in outs.iter().enumerate() {
            for (j, sb, pb) in &outs[a + 1..] {
                if pa.starts_with(pb) || pb.starts_with(pa) {
                    let d = Diagnostic::new(
                        Code::DuplicateOutput,
                        *sb,
                        format!(
                            "stages `{}` and `{}` would both write `{}`",
                            drafts[*i].name,
                            drafts[*j].name,
                            pb.display()
                        ),
                    )
                    .label("second writer")
                    .related(*sa, "first writer")
                    .help("give each stage its own `out` folder");
                    self.diags.push(d);
                }
            }
        }
        let order = self.order(&drafts, &deps)?;
        let position: BTreeMap<usize, usize> =
            order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        let mut drafts: Vec<Option<Draft>> = drafts.into_iter().map(Some).collect();
        let mut stages = Vec::new();
        for &i in &order {
            let d = drafts[i].take().expect("each stage is ordered once");
            let mut ds: Vec<usize> = deps[i].iter().map(|(j, _)| position[j]).collect();
            ds.sort_unstable();
            ds.dedup();
            stages.push(Stage {
                name: d.name,
                kind: d.kind,
                params: d.params,
                inputs: std::mem::take(&mut resolved[i]),
                deps: ds,
                cpus: d.cpus,
                out: d.out.map(|(_, p)| p),
                executor: d.executor,
                resources: d.resources,
            });
        }
        Some(stages)
    }

    /// A dependency order (file order where free), or a diagnostic for each cycle.
    fn order(&mut self, drafts: &[Draft], deps: &[Vec<(usize, Span)>]) -> Option<Vec<usize>> {
        // 0 unvisited, 1 on the stack, 2 done.
        let mut state = vec![0u8; drafts.len()];
        let mut order = Vec::new();
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        let mut ok = true;
        fn visit(
            i: usize,
            deps: &[Vec<(usize, Span)>],
            state: &mut [u8],
            stack: &mut Vec<usize>,
            order: &mut Vec<usize>,
            cycles: &mut Vec<Vec<usize>>,
        ) {
            state[i] = 1;
            stack.push(i);
            for &(j, _) in &deps[i] {
                match state[j] {
                    0 => visit(j, deps, state, stack, order, cycles),
                    1 => {
                        let at = stack.iter().position(|&s| s == j).expect("on the stack");
                        cycles.push(stack[at..].to_vec());
                    }
                    _ => {}
                }
            }
            stack.pop();
            state[i] = 2;
            order.push(i);
        }
        let mut cycles = Vec::new();
        for i in 0..drafts.len() {
            if state[i] == 0 {
                visit(
                    i,
                    deps,
                    &mut state,
                    &mut Vec::new(),
                    &mut order,
                    &mut cycles,
                );
            }
        }
        for cycle in cycles {
            let mut key = cycle.clone();
            key.sort_unstable();
            if !reported.insert(key) {
                continue;
            }
            ok = false;
            // cycle[k] reads cycle[k+1]; show it in reading order, starting at the first.
            let mut names: Vec<&str> = cycle.iter().map(|&i| drafts[i].name.as_str()).collect();
            names.push(names[0]);
            let first = cycle[0];
            let next = cycle.get(1).copied().unwrap_or(first);
            let span = deps[first]
                .iter()
                .find(|(j, _)| *j == next)
                .map_or(drafts[first].name_span, |(_, s)| *s);
            let mut d = Diagnostic::new(
                Code::Cycle,
                span,
                format!("stages read each other in a cycle: {}", names.join(" → ")),
            )
            .label(format!(
                "`{}` reads `{}`",
                drafts[first].name, drafts[next].name
            ))
            .help("remove one of these `from` references: a pipeline must be acyclic");
            for w in cycle.windows(2).skip(1) {
                if let Some((_, s)) = deps[w[0]].iter().find(|(j, _)| *j == w[1]) {
                    d = d.related(
                        *s,
                        format!("`{}` reads `{}`", drafts[w[0]].name, drafts[w[1]].name),
                    );
                }
            }
            if cycle.len() > 1 {
                let last = cycle[cycle.len() - 1];
                if let Some((_, s)) = deps[last].iter().find(|(j, _)| *j == first) {
                    d = d.related(
                        *s,
                        format!("`{}` reads `{}`", drafts[last].name, drafts[first].name),
                    );
                }
            }
            self.diags.push(d);
        }
        ok.then_some(order)
    }
}

/// A null in place of a value whose `${…}` failed (already reported), so it is not reported
/// a second time as a type error.
fn null_at(node: &Node) -> Node {
    Node {
        span: node.span,
        value: Value::Null,
    }
}

/// `a/b/../c` → `a/c`, so messages show the path a user would write.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The input kind a parameter place (`gold`, `sources.0.from`) expects.
fn input_kind(kind: &KindSpec, place: &str) -> InputKind {
    let mut parts = place.split('.');
    let first = parts.next().unwrap_or_default();
    let Some(p) = kind.param(first) else {
        return InputKind::File;
    };
    match p.ty {
        Ty::Input(k) => k,
        Ty::List(fields) => {
            let field = parts.nth(1).unwrap_or_default();
            fields
                .iter()
                .find_map(|f| match f.ty {
                    Ty::Input(k) | Ty::Ref(k) if f.name == field => Some(k),
                    _ => None,
                })
                .unwrap_or(InputKind::File)
        }
        _ => InputKind::File,
    }
}

/// A parameter's value when it is not written.
fn default_value(ps: &ParamSpec) -> Json {
    let Some(d) = ps.default else {
        return if matches!(ps.ty, Ty::Settings) {
            json!({})
        } else {
            Json::Null
        };
    };
    match ps.ty {
        Ty::Seeds => json!(crate::universe::params::parse_seeds(d).unwrap_or_default()),
        Ty::ShareOrSeeds => json!({"share": d.parse::<f64>().unwrap_or(0.0)}),
        _ => serde_json::from_str(d).unwrap_or(json!(d)),
    }
}

/// `lo..=hi`, `lo..hi`, `lo..`, `..=hi` or `N` → inclusive bounds.
fn parse_range(s: &str) -> Option<(Option<i64>, Option<i64>)> {
    let s = s.trim();
    let num = |t: &str| -> Option<Option<i64>> {
        let t = t.trim();
        if t.is_empty() {
            Some(None)
        } else {
            t.parse().ok().map(Some)
        }
    };
    if let Some((a, b)) = s.split_once("..=") {
        let hi = num(b)?;
        hi?;
        return Some((num(a)?, hi));
    }
    if let Some((a, b)) = s.split_once("..") {
        let hi = num(b)?;
        return Some((
            num(a)?,
            match hi {
                Some(h) => Some(h.checked_sub(1)?),
                None => None,
            },
        ));
    }
    let n: i64 = s.parse().ok()?;
    Some((Some(n), Some(n)))
}

/// Merges two YAML mappings, `over`'s keys winning; `None` if either is not a mapping (the
/// type error is then reported on the stage's own value).
fn merge_maps(base: &Node, over: &Node) -> Option<Node> {
    let (Some(b), Some(o)) = (base.as_map(), over.as_map()) else {
        return Some(over.clone());
    };
    let mut entries: Vec<(Node, Node)> = b
        .iter()
        .filter(|(k, _)| !o.iter().any(|(k2, _)| k2.as_str() == k.as_str()))
        .cloned()
        .collect();
    entries.extend(o.iter().cloned());
    Some(Node {
        span: over.span,
        value: Value::Map(entries),
    })
}
