//! Parameter values for one run: the rule file's declared defaults with `--set NAME=VALUE`
//! overrides, each parsed by its declared type and checked against its declared range.

use std::collections::BTreeMap;

use serde::Serialize;

use super::GenError;
use crate::lang::diag::did_you_mean;
use crate::lang::ir::{Ir, Num, ParamType, Value};

/// Resolved parameter values, by name.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Params {
    pub values: BTreeMap<String, Value>,
}

impl Params {
    /// Applies `overrides` (`NAME=VALUE` pairs, later ones win) to the declared defaults.
    pub fn resolve(ir: &Ir, overrides: &[(String, String)]) -> Result<Params, GenError> {
        let mut values: BTreeMap<String, Value> = ir
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default.clone()))
            .collect();
        let mut problems = Vec::new();
        for (name, raw) in overrides {
            let Some(p) = ir.param(name) else {
                let names: Vec<&str> = ir.params.iter().map(|p| p.name.as_str()).collect();
                let hint = did_you_mean(name, names.iter().copied())
                    .map(|s| format!("{s} "))
                    .unwrap_or_default();
                problems.push(format!(
                    "unknown parameter `{name}`; {hint}the rule file declares: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
                continue;
            };
            let parsed = parse_value(p.ty, raw.trim(), ir);
            let Some(v) = parsed else {
                problems.push(format!(
                    "parameter `{name}` is {} but `{raw}` is not{}",
                    a_type(p.ty),
                    match p.ty {
                        ParamType::Bank => format!(
                            " a declared bank (banks: {})",
                            ir.banks
                                .iter()
                                .map(|b| b.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => String::new(),
                    }
                ));
                continue;
            };
            if let Some((lo, hi)) = &p.range
                && !(le(lo, &v) && le(&v, hi))
            {
                problems.push(format!(
                    "parameter `{name}` = {} is outside its declared range {}..{}",
                    show(&v),
                    show(lo),
                    show(hi)
                ));
                continue;
            }
            values.insert(name.clone(), v);
        }
        if problems.is_empty() {
            Ok(Params { values })
        } else {
            Err(GenError::Params(problems))
        }
    }

    pub fn int(&self, n: &Num) -> i64 {
        match n {
            Num::Int(i) => *i,
            Num::Float(f) => *f as i64,
            Num::Param(p) => match self.values.get(p) {
                Some(Value::Int(i)) => *i,
                Some(Value::Float(f)) => *f as i64,
                _ => 0,
            },
        }
    }

    pub fn float(&self, n: &Num) -> f64 {
        match n {
            Num::Int(i) => *i as f64,
            Num::Float(f) => *f,
            Num::Param(p) => match self.values.get(p) {
                Some(Value::Int(i)) => *i as f64,
                Some(Value::Float(f)) => *f,
                _ => 0.0,
            },
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

fn a_type(t: ParamType) -> &'static str {
    match t {
        ParamType::Int => "an int",
        ParamType::Float => "a float",
        ParamType::Bool => "a bool (`true` or `false`)",
        ParamType::String => "a string",
        ParamType::Date => "a date (YYYY-MM-DD)",
        ParamType::Bank => "a bank",
    }
}

fn parse_value(t: ParamType, raw: &str, ir: &Ir) -> Option<Value> {
    match t {
        ParamType::Int => raw.parse().ok().map(Value::Int),
        ParamType::Float => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float),
        ParamType::Bool => match raw {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ParamType::String => Some(Value::Str(raw.to_string())),
        ParamType::Date => super::world::parse_date(raw).map(|_| Value::Date(raw.to_string())),
        ParamType::Bank => ir.bank(raw).map(|b| Value::Bank(b.name.clone())),
    }
}

fn le(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x <= y,
        (Value::Float(x), Value::Float(y)) => x <= y,
        (Value::Int(x), Value::Float(y)) => (*x as f64) <= *y,
        (Value::Float(x), Value::Int(y)) => *x <= *y as f64,
        (Value::Date(x), Value::Date(y)) => x <= y,
        _ => true,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) | Value::Date(s) | Value::Bank(s) => s.clone(),
    }
}

/// The most universes one dataset may hold; a typo like `1..10000000000` gets a clear error
/// instead of an endless run.
pub const MAX_SEEDS: usize = 100_000;

/// Parses a seed list: comma-separated items, each a seed `N`, a range `A..B` (B excluded) or
/// `A..=B` (B included). Seeds keep the written order; a repeated seed is an error (it would
/// repeat a universe).
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>, String> {
    let mut seeds = Vec::new();
    let num = |s: &str| -> Result<u64, String> {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{}` is not a seed (a whole number ≥ 0)", s.trim()))
    };
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err("empty item in the seed list".into());
        }
        let (lo, hi) = if let Some((a, b)) = item.split_once("..=") {
            (
                num(a)?,
                num(b)?.checked_add(1).ok_or("seed range too large")?,
            )
        } else if let Some((a, b)) = item.split_once("..") {
            (num(a)?, num(b)?)
        } else {
            let n = num(item)?;
            (n, n + 1)
        };
        if lo >= hi {
            return Err(format!("the range `{item}` is empty"));
        }
        if hi - lo > MAX_SEEDS as u64 || seeds.len() + (hi - lo) as usize > MAX_SEEDS {
            return Err(format!("more than {MAX_SEEDS} seeds"));
        }
        seeds.extend(lo..hi);
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("seed {} appears twice", w[0]));
    }
    Ok(seeds)
}

#[cfg(test)]
mod seed_tests {
    use super::parse_seeds;

    #[test]
    fn seed_lists() {
        assert_eq!(parse_seeds("3"), Ok(vec![3]));
        assert_eq!(parse_seeds("1..=3, 7"), Ok(vec![1, 2, 3, 7]));
        assert_eq!(parse_seeds("1..3"), Ok(vec![1, 2]));
        assert!(parse_seeds("3..3").is_err());
        assert!(parse_seeds("1..=3,2").unwrap_err().contains("twice"));
        assert!(parse_seeds("x").is_err());
        assert!(parse_seeds("0..=18446744073709551615").is_err());
        assert!(parse_seeds("0..1000000000").is_err());
        assert!(parse_seeds("1,,2").is_err());
    }
}
