//! Parameters: declarations with their types and defaults, literals checked against them, and `$name` uses.

use super::*;

impl Cx<'_> {
    pub(super) fn params(&mut self, t: &Tables) -> Vec<Param> {
        let mut types = BTreeMap::new();
        let mut out = Vec::new();
        for p in &t.params_in_order {
            let Some(ty) = ParamType::ALL
                .iter()
                .find(|(n, _)| *n == p.ty.text)
                .map(|(_, t)| *t)
            else {
                self.unknown(
                    Code::UnknownParamType,
                    "parameter type",
                    &p.ty,
                    ParamType::ALL.iter().map(|(n, _)| *n),
                    "parameter types are int, float, bool, string, date and bank",
                );
                continue;
            };
            types.insert(p.name.text.clone(), ty);
            let default = self.param_value(t, ty, &p.default, &p.name);
            let range = p.range.as_ref().and_then(|(lo, hi)| {
                if !matches!(ty, ParamType::Int | ParamType::Float | ParamType::Date) {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            lo.span.to(hi.span),
                            format!("{} parameter cannot have a range", a_an(ty.name())),
                        )
                        .label("range not allowed")
                        .help("ranges apply to int, float and date parameters"),
                    );
                    return None;
                }
                let lo_v = self.param_value(t, ty, lo, &p.name)?;
                let hi_v = self.param_value(t, ty, hi, &p.name)?;
                if value_lt(&hi_v, &lo_v) {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            lo.span.to(hi.span),
                            "empty range: the lower bound exceeds the upper bound",
                        )
                        .label("empty range")
                        .help("write the range as `in LO..HI` with LO <= HI"),
                    );
                    return None;
                }
                if let Some(d) = &default
                    && (value_lt(d, &lo_v) || value_lt(&hi_v, d))
                {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            p.default.span,
                            format!("the default of `${}` lies outside its range", p.name.text),
                        )
                        .label("outside the range")
                        .related(lo.span.to(hi.span), "the declared range")
                        .help("change the default or widen the range"),
                    );
                }
                Some((lo_v, hi_v))
            });
            if let Some(default) = default {
                out.push(Param {
                    name: p.name.text.clone(),
                    ty,
                    default,
                    range,
                    doc: p.doc.as_ref().map(|d| d.value.clone()),
                });
            }
        }
        // Later phases type-check `$refs` against these.
        self.param_types = types;
        out
    }

    /// A literal as a value of the parameter's type, or a `param_type` diagnostic.
    pub(super) fn param_value(
        &mut self,
        t: &Tables,
        ty: ParamType,
        lit: &Lit,
        param: &Name,
    ) -> Option<Value> {
        let v = match (&lit.value, ty) {
            (Literal::Int(i), ParamType::Int) => {
                self.int_fits(lit);
                Some(Value::Int(*i))
            }
            (Literal::Int(i), ParamType::Float) => Some(Value::Float(*i as f64)),
            (Literal::Float(f), ParamType::Float) => Some(Value::Float(*f)),
            (Literal::Bool(b), ParamType::Bool) => Some(Value::Bool(*b)),
            (Literal::Str(s), ParamType::String) => Some(Value::Str(s.clone())),
            (Literal::Date(d), ParamType::Date) => {
                self.date(d, lit.span);
                Some(Value::Date(d.clone()))
            }
            (Literal::Ident(b), ParamType::Bank) => {
                if !matches!(t.globals.get(b.as_str()), Some(Global::Bank(_))) {
                    let name = Name {
                        text: b.clone(),
                        span: lit.span,
                    };
                    self.unknown(
                        Code::UnknownBank,
                        "bank",
                        &name,
                        t.banks.iter().map(|b| b.name.text.as_str()),
                        "declare it with `bank NAME = relation, ...;`",
                    );
                }
                Some(Value::Bank(b.clone()))
            }
            _ => None,
        };
        if v.is_none() {
            self.push(
                Diagnostic::new(
                    Code::ParamType,
                    lit.span,
                    format!(
                        "`${}` is declared `{}` but this value is {}",
                        param.text,
                        ty.name(),
                        describe_literal(&lit.value)
                    ),
                )
                .label(format!("not {}", a_an(ty.name())))
                .related(param.span, "parameter declared here")
                .help(format!("write {}", example_of(ty))),
            );
        }
        v
    }

    /// The parser saturates integers that overflow i64; say so instead of using the bound.
    pub(super) fn int_fits(&mut self, lit: &Lit) -> bool {
        let text = self.src.get(lit.span.start..lit.span.end).unwrap_or("");
        if text.parse::<i64>().is_ok() {
            return true;
        }
        self.push(
            Diagnostic::new(Code::InvalidRange, lit.span, "integer out of range")
                .label("does not fit in 64 bits")
                .help(format!(
                    "integers lie between {} and {}",
                    i64::MIN,
                    i64::MAX
                )),
        );
        false
    }

    /// An integer setting that must be at least `min` when written literally.
    pub(super) fn int_at_least(&mut self, lit: &Lit, t: &Tables, min: i64, what: &str) -> Num {
        let n = self.int_num(lit, t);
        if let Num::Int(v) = n
            && v < min
        {
            self.push(
                Diagnostic::new(
                    Code::InvalidRange,
                    lit.span,
                    format!("{what} must be at least {min}, found {v}"),
                )
                .label("too small")
                .help(format!("write a number of at least {min}")),
            );
        }
        n
    }

    pub(super) fn date(&mut self, d: &str, span: Span) -> bool {
        if valid_date(d) {
            return true;
        }
        self.push(
            Diagnostic::new(
                Code::InvalidDate,
                span,
                format!("`{d}` is not a calendar date"),
            )
            .label("no such day")
            .help("dates are written YYYY-MM-DD with a real month and day"),
        );
        false
    }

    /// Checks a `$param` use against the types a place accepts.
    pub(super) fn param_use(
        &mut self,
        name: &str,
        span: Span,
        accepts: &[ParamType],
        t: &Tables,
    ) -> bool {
        let Some(ty) = self.param_types.get(name).copied() else {
            if t.params.contains_key(name) {
                return false; // its declaration already has an error
            }
            let n = Name {
                text: format!("${name}"),
                span,
            };
            let cands: Vec<String> = t.params.keys().map(|k| format!("${k}")).collect();
            self.unknown(
                Code::UnknownParam,
                "parameter",
                &n,
                cands.iter().map(String::as_str),
                "declare it with `param NAME: TYPE = DEFAULT;`",
            );
            return false;
        };
        if accepts.contains(&ty) {
            return true;
        }
        let want: Vec<&str> = accepts.iter().map(|t| t.name()).collect();
        let decl = t.params.get(name).map(|p| p.name.span);
        let mut d = Diagnostic::new(
            Code::ParamType,
            span,
            format!(
                "`${name}` is a {} parameter, but {} is needed here",
                ty.name(),
                want.join(" or ")
            ),
        )
        .label(a_an(ty.name()))
        .help(format!(
            "use {} parameter or a literal",
            a_an(&want.join(" or "))
        ));
        if let Some(s) = decl {
            d = d.related(s, "declared here");
        }
        self.push(d);
        false
    }

    /// An integer setting (counts, bounds, depths), literal or `$param`.
    pub(super) fn int_num(&mut self, lit: &Lit, t: &Tables) -> Num {
        match &lit.value {
            Literal::Int(i) => {
                self.int_fits(lit);
                Num::Int(*i)
            }
            Literal::Param(p) => {
                self.param_use(p, lit.span, &[ParamType::Int], t);
                Num::Param(p.clone())
            }
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        lit.span,
                        format!("expected an integer, found {}", describe_literal(other)),
                    )
                    .label("not an integer")
                    .help("write a whole number or an int `$parameter`"),
                );
                Num::Int(0)
            }
        }
    }

    // ------------------------------------------------------------------ pools

    /// A share in `0.0..=1.0`: a float or integer literal, or a float `$param`.
    pub(super) fn share(&mut self, lit: &Lit, t: &Tables) -> Num {
        let v = match &lit.value {
            Literal::Float(f) => *f,
            Literal::Int(i) => *i as f64,
            Literal::Param(p) => {
                self.param_use(p, lit.span, &[ParamType::Float], t);
                return Num::Param(p.clone());
            }
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        lit.span,
                        format!(
                            "expected a share between 0 and 1, found {}",
                            describe_literal(other)
                        ),
                    )
                    .label("not a number")
                    .help("write a number like `0.1` or a float `$parameter`"),
                );
                return Num::Float(0.0);
            }
        };
        if !(0.0..=1.0).contains(&v) {
            self.push(
                Diagnostic::new(
                    Code::InvalidRange,
                    lit.span,
                    format!("a share must lie between 0 and 1, found {v}"),
                )
                .label("out of range")
                .help("`unanswerable 0.1;` asks one question in ten with an empty answer"),
            );
        }
        Num::Float(v)
    }
}
