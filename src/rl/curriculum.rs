//! What a training run draws its questions from when it generates them on the fly: a new
//! universe every step (never a held-out seed), and the adaptive difficulty that moves the
//! question depth and then the relation bank to keep the mean reward in a band.

use std::path::PathBuf;

use super::job::Job;
use crate::dataset::{Dataset, Question};
use crate::model::load::Model;
use crate::prompt::{Item, encode_all};
use crate::util::rng::Rng;

/// Questions drawn on the fly from the generator: a new universe every step (never one of
/// the held-out seeds), optionally with an adaptive difficulty that keeps the mean reward
/// in a band by moving the question depth and then the relation bank.
#[derive(Clone, Debug)]
pub struct Draw {
    pub rules: PathBuf,
    /// Values for the rule file's parameters.
    pub set: Vec<(String, String)>,
    pub first_seed: u64,
    pub holdout: std::collections::BTreeSet<u64>,
    /// `Some((low, high))`: adapt the difficulty to keep the reward in this band.
    pub band: Option<(f64, f64)>,
    /// Steps at one level before the reward is judged.
    pub window: usize,
    pub depth_param: String,
    pub depth_min: i64,
    pub depth_max: i64,
    pub bank_param: String,
    /// Relation banks from easiest to hardest (empty: the depth alone moves).
    pub banks: Vec<String>,
}

impl Draw {
    /// Drawing without an adaptive difficulty: every universe at the rule file's settings.
    pub fn fixed(
        rules: PathBuf,
        set: Vec<(String, String)>,
        first_seed: u64,
        holdout: std::collections::BTreeSet<u64>,
    ) -> Draw {
        Draw {
            rules,
            set,
            first_seed,
            holdout,
            band: None,
            window: 1,
            depth_param: String::new(),
            depth_min: 0,
            depth_max: 0,
            bank_param: String::new(),
            banks: Vec::new(),
        }
    }

    /// The universe seed of step `step`: the `step`-th seed from `first_seed` on that is
    /// not held out.
    pub(crate) fn seed(&self, step: u64) -> u64 {
        let mut seed = self.first_seed;
        let mut left = step;
        loop {
            if !self.holdout.contains(&seed) {
                if left == 0 {
                    return seed;
                }
                left -= 1;
            }
            seed += 1;
        }
    }

    pub(crate) fn levels(&self) -> i64 {
        (self.depth_max - self.depth_min + 1).max(1) * self.banks.len().max(1) as i64
    }

    /// The rule-parameter values of difficulty `level` (none without a band).
    pub(crate) fn level_settings(&self, level: i64) -> Vec<(String, String)> {
        if self.band.is_none() {
            return Vec::new();
        }
        let span = (self.depth_max - self.depth_min + 1).max(1);
        let level = level.clamp(0, self.levels() - 1);
        let mut out = vec![(
            self.depth_param.clone(),
            (self.depth_min + level % span).to_string(),
        )];
        if let Some(bank) = self.banks.get((level / span) as usize) {
            out.push((self.bank_param.clone(), bank.clone()));
        }
        out
    }

    /// The next level after steps at `level` whose mean rewards are `recent`.
    pub(crate) fn adapt(&self, level: i64, recent: &[f64]) -> i64 {
        let Some((low, high)) = self.band else {
            return level;
        };
        if recent.len() < self.window.max(1) {
            return level;
        }
        let m = recent.iter().sum::<f64>() / recent.len() as f64;
        if m > high {
            (level + 1).min(self.levels() - 1)
        } else if m < low {
            (level - 1).max(0)
        } else {
            level
        }
    }
}

/// Generates the universe of step `step` at difficulty `level` into the scratch folder and
/// returns `batch` of its questions (in a seeded order, repeated if it has fewer).
pub(crate) fn draw_items(
    job: &Job,
    draw: &Draw,
    ir: &crate::lang::ir::Ir,
    pool: &[Question],
    model: &Model,
    (step, level): (u64, i64),
    with_target: bool,
) -> Result<(Vec<Item>, u64), String> {
    use crate::universe::{dataset, params::Params};
    let p = &job.params;
    let mut set = draw.set.clone();
    for (k, v) in draw.level_settings(level) {
        set.retain(|(n, _)| n != &k);
        set.push((k, v));
    }
    let params = Params::resolve(ir, &set).map_err(|e| e.to_string())?;
    let seed = draw.seed(step);
    let dir = job.scratch.join("drawn");
    let _ = std::fs::remove_dir_all(&dir);
    dataset::generate(ir, &params, &[seed], &dir, &dataset::Options::default())
        .map_err(|e| format!("cannot generate universe {seed}: {e}"))?;
    let data = Dataset::load(&dir)?;
    let prompter = p.prompter(&model.tokenizer);
    let (mut items, _) = encode_all(&prompter, data, pool, p.overflow, with_target)?;
    if items.is_empty() {
        return Err(format!(
            "universe {seed} has no question that fits the token budgets; lower the difficulty or raise the budgets"
        ));
    }
    let mut rng = Rng::stream(p.seed, &format!("draw/{step}"));
    rng.shuffle(&mut items);
    let n = items.len();
    Ok(((0..p.batch).map(|k| items[k % n].clone()).collect(), seed))
}

/// Records a step's mean reward at `level` and moves the level when the window is full.
pub(crate) fn advance(draw: &Draw, level: &mut i64, recent: &mut Vec<f64>, reward: f64) {
    recent.push(reward);
    let next = draw.adapt(*level, recent);
    if next != *level || recent.len() >= draw.window.max(1) {
        recent.clear();
    }
    *level = next;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(band: Option<(f64, f64)>, banks: &[&str]) -> Draw {
        Draw {
            rules: PathBuf::new(),
            set: Vec::new(),
            first_seed: 10,
            holdout: [11, 12, 14].into_iter().collect(),
            band,
            window: 2,
            depth_param: "question_depth".into(),
            depth_min: 3,
            depth_max: 5,
            bank_param: "relations".into(),
            banks: banks.iter().map(|b| b.to_string()).collect(),
        }
    }

    #[test]
    fn drawn_universes_skip_held_out_seeds() {
        let d = draw(None, &[]);
        let seeds: Vec<u64> = (0..4).map(|k| d.seed(k)).collect();
        assert_eq!(seeds, vec![10, 13, 15, 16]);
    }

    #[test]
    fn difficulty_moves_depth_then_bank_within_the_band() {
        let d = draw(Some((0.2, 0.6)), &["easy", "all"]);
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(d.levels(), 6);
        assert_eq!(
            d.level_settings(0),
            vec![pair("question_depth", "3"), pair("relations", "easy")]
        );
        assert_eq!(
            d.level_settings(4),
            vec![pair("question_depth", "4"), pair("relations", "all")]
        );
        // Judged only once the window is full; up above the band, down below, capped.
        assert_eq!(d.adapt(1, &[0.9]), 1);
        assert_eq!(d.adapt(1, &[0.9, 0.7]), 2);
        assert_eq!(d.adapt(1, &[0.1, 0.1]), 0);
        assert_eq!(d.adapt(0, &[0.1, 0.1]), 0);
        assert_eq!(d.adapt(5, &[1.0, 1.0]), 5);
        assert_eq!(d.adapt(3, &[0.4, 0.4]), 3);
        // Replaying the rewards gives the same levels (what a resume does).
        let (mut level, mut recent) = (0, Vec::new());
        let mut path = Vec::new();
        for r in [0.9, 0.9, 0.9, 0.7, 0.1, 0.0, 0.5, 0.5] {
            advance(&d, &mut level, &mut recent, r);
            path.push(level);
        }
        assert_eq!(path, vec![0, 1, 1, 2, 2, 1, 1, 1]);
        // Without a band nothing is overridden.
        assert!(draw(None, &["easy"]).level_settings(3).is_empty());
    }
}
