//! The GRPO loop: rollouts of G completions per prompt, set-F1 rewards, group-normalised
//! advantages, the clipped objective over μ iterations, AdamW with the schedule, metrics
//! and checkpoints.

use std::time::Instant;

use burn::prelude::*;
use serde_json::json;

use super::batching::micro_ranges;
use super::curriculum::advance;
use super::job::{Job, finish, learning_rate, mean, pad_id, setup, std_dev};
use super::objective::{self, LossConfig, LossStats, Scale, completion_logprobs, completion_mask};
use super::params::TrainParams;
use super::recompute;
use super::reward::{self, Rewards};
use crate::model::generate::Finish;
use crate::model::load::Model;
use crate::prompt::Item;
use crate::util::rng::Rng;

/// One step's rollouts: per completion its tokens (with the EOS when it stopped), whether
/// it was cut by the budget, and its rewards.
struct Rollouts {
    /// Each prompt repeated once per completion of its group.
    prompts: Vec<Vec<u32>>,
    completions: Vec<Vec<u32>>,
    truncated: Vec<bool>,
    rewards: Vec<Rewards>,
    /// The first completion's text, for a look at what the policy writes.
    sample: String,
    new_tokens: usize,
    seconds: f64,
}

fn rollouts(
    model: &Model,
    items: &[&Item],
    p: &TrainParams,
    seed: u64,
) -> Result<Rollouts, String> {
    let started = Instant::now();
    let policy = model.valid();
    let g = p.grpo()?.group_size.max(1);
    let prompts: Vec<Vec<u32>> = items
        .iter()
        .flat_map(|it| std::iter::repeat_n(it.enc.prompt.clone(), g))
        .collect();
    let opts = p.gen_options(seed)?;
    let (gens, timing) = policy.generate(&prompts, &opts)?;
    let eos = pad_id(model);
    let weights = p.weights()?;
    let mut out = Rollouts {
        prompts,
        completions: Vec::with_capacity(gens.len()),
        truncated: Vec::with_capacity(gens.len()),
        rewards: Vec::with_capacity(gens.len()),
        sample: gens.first().map(|g| g.text.clone()).unwrap_or_default(),
        new_tokens: timing.new_tokens,
        seconds: 0.0,
    };
    for (k, out_k) in gens.into_iter().enumerate() {
        let q = &items[k / g].q;
        out.rewards
            .push(reward::reward(&out_k.text, &q.answers, &weights));
        let mut toks = out_k.tokens;
        // The EOS the model chose is part of what it is trained on (TRL's mask includes it).
        if out_k.finish == Finish::Eos {
            toks.push(eos);
        }
        out.truncated.push(out_k.finish == Finish::Length);
        out.completions.push(toks);
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Group relative policy optimisation with verifiable rewards.
pub fn grpo(job: &Job) -> Result<(), String> {
    let p = &job.params;
    let gp = p.grpo()?;
    let mu = gp.iterations.max(1) as u64;
    let mut s = setup(job, false)?;
    let cfg = LossConfig {
        loss_type: gp.loss_type,
        epsilon: gp.epsilon,
        epsilon_high: gp.epsilon_high.unwrap_or(gp.epsilon),
        beta: gp.beta,
        max_completion_tokens: p.max_completion_tokens,
    };
    // The frozen reference (only with a KL term): the starting model, without autodiff.
    let reference = if gp.beta != 0.0 {
        Some(crate::model::lora::load_adapted(
            job.model,
            job.adapter,
            &p.device()?,
        )?)
    } else {
        None
    };
    let pb = crate::util::progress::steps(job.progress, s.total, "grpo");
    pb.set_position(s.start);
    // The adaptive difficulty's state is a function of the metrics so far: replayed, it is
    // the same after a resume.
    let (mut level, mut recent) = (0i64, Vec::new());
    if let Some(draw) = &job.draw {
        for m in s.ckpt.read_metrics()? {
            level = m["level"].as_i64().unwrap_or(0);
            advance(
                draw,
                &mut level,
                &mut recent,
                m["reward_mean"].as_f64().unwrap_or(0.0),
            );
        }
    }
    for step in s.start..s.total {
        let started = Instant::now();
        let (batch, universe) = s.batch(job, step, level)?;
        let items: Vec<&Item> = batch.iter().collect();
        let seed = Rng::stream(p.seed, &format!("rollouts/{step}")).next_u64();
        let ro = rollouts(&s.model, &items, p, seed)?;
        let g = p.grpo()?.group_size.max(1);
        let totals: Vec<f64> = ro.rewards.iter().map(|r| r.total).collect();
        let adv: Vec<f32> = objective::advantages(&totals, g, gp.scale_rewards)
            .into_iter()
            .map(|a| a as f32)
            .collect();
        let prompts = &ro.prompts;
        let keep: Vec<bool> = ro
            .truncated
            .iter()
            .map(|&t| !(t && gp.mask_truncated_completions))
            .collect();
        let mask = completion_mask(&ro.completions, &keep);
        let ranges = micro_ranges(prompts.len(), p.optim()?.micro_batch);
        let scale = Scale {
            micro_batches: ranges.len(),
            batch_tokens: Scale::whole(&mask).batch_tokens,
        };
        let pad = pad_id(&s.model);
        // Log-probabilities of the sampling policy (needed when μ > 1 moves the policy
        // away from it) and of the reference, without gradients.
        let checkpointing = p.optim()?.gradient_checkpointing;
        let frozen = |m: &Model| -> Result<Vec<Tensor<2>>, String> {
            ranges
                .iter()
                .map(|r| {
                    let (pr, co) = (&prompts[r.clone()], &ro.completions[r.clone()]);
                    if checkpointing {
                        // Computed as the training pass computes them: the ratio starts at 1.
                        recompute::logprobs(&m.net, &m.cfg, pad, pr, co)
                    } else {
                        Ok(completion_logprobs(&m.net, &m.cfg, pad, pr, co, None).inner())
                    }
                })
                .collect()
        };
        let old = if mu > 1 {
            Some(frozen(&s.model.valid())?)
        } else {
            None
        };
        let refs = match &reference {
            Some(m) => Some(frozen(m)?),
            None => None,
        };
        // Nothing to learn when every advantage is 0 and there is no KL term: the
        // gradient is exactly 0, so the passes are skipped (AdamW still steps).
        let idle = gp.skip_idle && cfg.beta == 0.0 && adv.iter().all(|&a| a == 0.0);
        let mut stats = Vec::new();
        let mut loss_sum = 0.0;
        let mut norm = 0.0;
        let mut lr = 0.0;
        for it in 0..mu {
            if !idle {
                for (k, r) in ranges.iter().enumerate() {
                    let dropout = s.dropout_seed(job, step, it as usize * ranges.len() + k);
                    let (loss, st) = s.train_pass(
                        job,
                        &prompts[r.clone()],
                        &ro.completions[r.clone()],
                        dropout,
                        |lp| {
                            let dev = lp.device();
                            objective::policy_loss(
                                lp,
                                old.as_ref()
                                    .map(|o| o[k].clone().autodiff().to_device(&dev)),
                                refs.as_ref()
                                    .map(|o| o[k].clone().autodiff().to_device(&dev)),
                                &adv[r.clone()],
                                &mask[r.clone()],
                                &cfg,
                                scale,
                            )
                        },
                    )?;
                    loss_sum += loss;
                    stats.push(st);
                }
            }
            let opt_step = step * mu + it;
            lr = learning_rate(p, opt_step, s.total * mu)?;
            norm = s.apply(lr, p.optim()?.max_grad_norm)?;
        }
        let secs = started.elapsed().as_secs_f64();
        let tokens: f64 = stats.iter().map(|x| x.tokens).sum();
        let weighted = |f: fn(&LossStats) -> f64| {
            if tokens > 0.0 {
                stats.iter().map(|x| f(x) * x.tokens).sum::<f64>() / tokens
            } else {
                0.0
            }
        };
        let reward_mean = mean(totals.iter().copied());
        let lens: Vec<f64> = ro.completions.iter().map(|c| c.len() as f64).collect();
        s.record(
            step,
            &json!({
                "step": step + 1,
                "reward_mean": reward_mean,
                "reward_std": std_dev(&totals),
                "f1": mean(ro.rewards.iter().map(|r| r.f1)),
                "em": mean(ro.rewards.iter().map(|r| r.em)),
                "format_rate": mean(ro.rewards.iter().map(|r| r.format)),
                "loss": loss_sum / mu as f64,
                "kl": weighted(|x| x.kl),
                "clip_low": weighted(|x| x.clip_low),
                "clip_high": weighted(|x| x.clip_high),
                "clip_region": weighted(|x| x.clip_region),
                "grad_norm": norm,
                "learning_rate": lr,
                "completion_length": mean(lens.iter().copied()),
                "prompt_length": mean(items.iter().map(|it| it.enc.prompt.len() as f64)),
                "truncated_rate": mean(ro.truncated.iter().map(|&t| f64::from(u8::from(t)))),
                "tokens_per_second": ro.new_tokens as f64 / ro.seconds.max(1e-9),
                "rollout_seconds": ro.seconds,
                "step_seconds": secs,
                "peak_rss_mib": crate::util::peak_rss_mib(),
                "universe_seed": universe,
                "level": level,
                "sample": ro.sample,
            }),
        )?;
        if let Some(draw) = &job.draw {
            advance(draw, &mut level, &mut recent, reward_mean);
        }
        pb.inc(1);
        pb.set_message(format!("reward {reward_mean:.3}"));
    }
    pb.finish_and_clear();
    finish(job, &s, "grpo", "reward_mean", "reward")
}
