//! Which questions a training step sees: the fixed dataset encoded once, passes over it in
//! a seeded or curriculum order laid end to end, and micro-batches for gradient
//! accumulation.

use super::job::Job;
use super::params::{Order, TrainParams};
use crate::dataset::{Dataset, Question};
use crate::model::load::Model;
use crate::prompt::{Item, encode_all};
use crate::util::rng::Rng;

/// The worked-example pool: `examples_from`, else the questions themselves.
pub(crate) fn example_pool(job: &Job, own: &[Question]) -> Result<Vec<Question>, String> {
    match job.examples {
        Some(path) => Ok(Dataset::load(path)?.questions),
        None => Ok(own.to_vec()),
    }
}

/// Encodes every question of the job's fixed dataset.
pub(crate) fn prepare(
    job: &Job,
    model: &Model,
    with_target: bool,
) -> Result<(Vec<Item>, usize), String> {
    let path = job
        .dataset
        .ok_or("the stage needs `dataset` (or `rules` to draw questions on the fly)")?;
    let data = Dataset::load(path)?;
    let pool = example_pool(job, &data.questions)?;
    let prompter = job.params.prompter(&model.tokenizer);
    let (items, skipped) = encode_all(&prompter, data, &pool, job.params.overflow, with_target)?;
    if items.is_empty() {
        return Err(format!(
            "no question of `{}` fits the token budgets ({skipped} skipped)",
            path.display()
        ));
    }
    Ok((items, skipped))
}

/// The item indices of pass `epoch`.
pub(crate) fn pass_order(items: &[Item], order: Order, seed: u64, epoch: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    match order {
        Order::Ascending => idx.sort_by_key(|&i| (items[i].q.difficulty, i)),
        Order::Descending => idx.sort_by_key(|&i| (std::cmp::Reverse(items[i].q.difficulty), i)),
        Order::Shuffle => Rng::stream(seed, &format!("order/{epoch}")).shuffle(&mut idx),
    }
    idx
}

/// The items of step `step`: consecutive slices of the passes laid end to end.
pub(crate) fn step_items(items: &[Item], p: &TrainParams, order: Order, step: u64) -> Vec<usize> {
    let n = items.len() as u64;
    (0..p.batch as u64)
        .map(|k| {
            let at = step * p.batch as u64 + k;
            let epoch = at / n;
            pass_order(items, order, p.seed, epoch)[(at % n) as usize]
        })
        .collect()
}

pub(crate) fn micro_ranges(n: usize, micro: usize) -> Vec<std::ops::Range<usize>> {
    let m = if micro == 0 { n.max(1) } else { micro };
    (0..n).step_by(m).map(|s| s..(s + m).min(n)).collect()
}
