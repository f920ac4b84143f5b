//! The SFT loop: cross-entropy on the rule-derived chains of thought, accumulated over
//! micro-batches, one optimiser step per batch, with metrics and checkpoints.

use std::time::Instant;

use serde_json::json;

use super::batching::micro_ranges;
use super::job::{Job, finish, learning_rate, setup};
use super::objective::{self, completion_mask};

/// Supervised fine-tuning on the rule-derived chains of thought.
pub fn sft(job: &Job) -> Result<(), String> {
    let p = &job.params;
    let mut s = setup(job, true)?;
    let pb = crate::util::progress::steps(job.progress, s.total, "sft");
    pb.set_position(s.start);
    for step in s.start..s.total {
        let started = Instant::now();
        let (batch, universe) = s.batch(job, step, 0)?;
        let prompts: Vec<Vec<u32>> = batch.iter().map(|it| it.enc.prompt.clone()).collect();
        let targets: Vec<Vec<u32>> = batch.iter().map(|it| it.enc.target.clone()).collect();
        let tokens: f64 = targets.iter().map(|t| t.len() as f64).sum();
        let mut loss_sum = 0.0;
        for (k, r) in micro_ranges(batch.len(), p.optim()?.micro_batch)
            .into_iter()
            .enumerate()
        {
            let dropout = s.dropout_seed(job, step, k);
            let mask = completion_mask(&targets[r.clone()], &vec![true; r.len()]);
            let (loss, ()) = s.train_pass(
                job,
                &prompts[r.clone()],
                &targets[r.clone()],
                dropout,
                |lp| Ok((objective::nll_loss(lp, &mask, tokens), ())),
            )?;
            loss_sum += loss;
        }
        let lr = learning_rate(p, step, s.total)?;
        let norm = s.apply(lr, p.optim()?.max_grad_norm)?;
        let secs = started.elapsed().as_secs_f64();
        s.record(step, &json!({
            "step": step + 1,
            "universe_seed": universe,
            "loss": loss_sum,
            "grad_norm": norm,
            "learning_rate": lr,
            "tokens": tokens,
            "tokens_per_second": (tokens + prompts.iter().map(|x| x.len() as f64).sum::<f64>()) / secs,
            "step_seconds": secs,
            "peak_rss_mib": crate::util::peak_rss_mib(),
        }))?;
        pb.inc(1);
        pb.set_message(format!("loss {loss_sum:.3}"));
    }
    pb.finish_and_clear();
    finish(job, &s, "sft", "loss", "loss")
}
