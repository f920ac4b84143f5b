//! The `split` stage: a dataset into train / dev / test by universe (`dataset::derive`).

use serde::Deserialize;

use super::spec::*;
use super::{At, Check, Io, StageError, Trouble};
use crate::dataset::derive::{self, Part};

pub const KIND: KindSpec = KindSpec {
    name: "split",
    version: 1,
    doc: "Split a dataset into train / dev / test by universe (never by question): shares of its universes drawn with `seed`, or explicit seed lists.",
    params: &[
        req(
            "dataset",
            Ty::Input(InputKind::Dataset),
            "the dataset to split",
        ),
        p(
            "train",
            Ty::ShareOrSeeds,
            Some("0.8"),
            "share of universes, or their seeds",
        ),
        p(
            "dev",
            Ty::ShareOrSeeds,
            Some("0.1"),
            "share of universes, or their seeds",
        ),
        p(
            "test",
            Ty::ShareOrSeeds,
            Some("0.1"),
            "share of universes, or their seeds",
        ),
        SEED,
    ],
    outputs: &[
        OutputSpec {
            name: "train",
            kind: OutputKind::Dataset,
            doc: "the training universes",
        },
        OutputSpec {
            name: "dev",
            kind: OutputKind::Dataset,
            doc: "the development universes",
        },
        OutputSpec {
            name: "test",
            kind: OutputKind::Dataset,
            doc: "the test universes",
        },
    ],
    cpus: 1,
    exclusive: false,
    check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub train: Part,
    pub dev: Part,
    pub test: Part,
    pub seed: u64,
}

const PARTS: [&str; 3] = ["train", "dev", "test"];

/// Parts are all shares (adding up to 1) or all seed lists (disjoint); unset parts follow
/// the ones given.
fn check(c: &mut Check) {
    let explicit_seeds = PARTS
        .iter()
        .any(|p| c.param(p).is_some_and(|v| v.get("seeds").is_some()));
    if explicit_seeds {
        for p in PARTS {
            let share = c.param(p).is_some_and(|v| v.get("share").is_some());
            if share && c.given(p) {
                c.report(
                    At::Value(p.into()),
                    Trouble::InvalidValue,
                    "mixes a share with seed lists",
                    "give every part as seeds, or every part as a share",
                );
            } else if share {
                c.params.insert(p.into(), serde_json::json!({"seeds": []}));
            }
        }
        let mut seen: std::collections::BTreeMap<u64, &str> = Default::default();
        for p in PARTS {
            let seeds: Vec<u64> = c
                .param(p)
                .and_then(|v| v.get("seeds"))
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            for s in seeds {
                if let Some(other) = seen.insert(s, p) {
                    c.report(
                        At::Value(p.into()),
                        Trouble::InvalidValue,
                        format!("seed {s} is in both `{other}` and `{p}`"),
                        "a universe goes to one part only",
                    );
                    break;
                }
            }
        }
    } else {
        let sum: f64 = PARTS
            .iter()
            .filter_map(|p| c.param(p)?.get("share")?.as_f64())
            .sum();
        if (sum - 1.0).abs() > 1e-9 {
            let at = PARTS
                .iter()
                .find(|p| c.given(p))
                .map_or(At::Stage, |p| At::Key(p.to_string()));
            c.report(
                at,
                Trouble::InvalidValue,
                format!("the shares of train, dev and test add up to {sum}, not 1"),
                "make them add up to 1 (unset ones default to 0.8, 0.1 and 0.1)",
            );
        }
    }
}

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    let outs = [io.output("train")?, io.output("dev")?, io.output("test")?];
    Ok(derive::split(
        io.input("dataset")?,
        [&p.train, &p.dev, &p.test],
        p.seed,
        outs,
    )?)
}
