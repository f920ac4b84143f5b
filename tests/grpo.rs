//! The GRPO objective against hand-computed values: loss and gradient per loss type on
//! given log-probabilities and on a tiny transformer (gradients by finite differences of
//! the hand-computed loss), the μ = 1 ratio, and AdamW's first step.

mod common;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use common::values;

use synthpipe::model::load::Model;
use synthpipe::rl::objective::{
    AdamW, LossConfig, LossType, Scale, completion_logprobs, policy_loss,
};

const TYPES: [LossType; 4] = [
    LossType::Bnpo,
    LossType::Grpo,
    LossType::DrGrpo,
    LossType::Dapo,
];

/// The loss as TRL 0.21 writes it, in f64, from per-token log-probabilities.
fn hand_loss(
    lp: &[Vec<f64>],
    old: &[Vec<f64>],
    reference: &[Vec<f64>],
    adv: &[f64],
    lens: &[usize],
    cfg: &LossConfig,
    (micro, batch_tokens): (usize, f64),
) -> f64 {
    let per = |r: usize, t: usize| {
        let ratio = (lp[r][t] - old[r][t]).exp();
        let clipped = ratio.clamp(1.0 - cfg.epsilon, 1.0 + cfg.epsilon_high);
        let mut l = -(ratio * adv[r]).min(clipped * adv[r]);
        if cfg.beta != 0.0 {
            let d = reference[r][t] - lp[r][t];
            l += cfg.beta * (d.exp() - d - 1.0);
        }
        l
    };
    let tokens: usize = lens.iter().sum();
    let sum: f64 = (0..lp.len())
        .flat_map(|r| (0..lens[r]).map(move |t| (r, t)))
        .map(|(r, t)| per(r, t))
        .sum();
    let m = micro as f64;
    match cfg.loss_type {
        LossType::Bnpo => sum / tokens as f64 / m,
        LossType::Grpo => {
            (0..lp.len())
                .map(|r| (0..lens[r]).map(|t| per(r, t)).sum::<f64>() / lens[r].max(1) as f64)
                .sum::<f64>()
                / lp.len() as f64
                / m
        }
        LossType::DrGrpo => sum / (lp.len() * cfg.max_completion_tokens) as f64 / m,
        LossType::Dapo => sum / batch_tokens,
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn loss_and_gradient_match_hand_computation_on_given_logprobs() {
    let device = Device::flex().autodiff();
    // Two completions of 3 and 2 tokens; the old policy's log-probabilities put ratios
    // inside, below and above the clip range, with positive and negative advantages.
    let lp = [[-1.0, -0.5, -2.0], [-0.3, -1.2, 0.0]];
    let old = [[-1.1, -0.1, -2.5], [-0.3, -1.6, 0.0]];
    let reference = [[-0.9, -0.7, -2.2], [-0.5, -1.0, 0.0]];
    let adv = [0.8f32, -1.3];
    let lens = [3usize, 2];
    let mask: Vec<Vec<f32>> = lens.iter().map(|&n| vec![1.0; n]).collect();
    let to64 = |m: &[[f64; 3]; 2]| -> Vec<Vec<f64>> { m.iter().map(|r| r.to_vec()).collect() };
    let t = |m: &[[f64; 3]; 2]| {
        let flat: Vec<f32> = m.iter().flatten().map(|&x| x as f32).collect();
        Tensor::<1>::from_data(TensorData::new(flat, [6]), &device).reshape([2, 3])
    };
    for loss_type in TYPES {
        for beta in [0.0, 0.04] {
            for (micro, batch_tokens) in [(1usize, 5.0f64), (3, 12.0)] {
                let cfg = LossConfig {
                    loss_type,
                    epsilon: 0.2,
                    epsilon_high: 0.28,
                    beta,
                    max_completion_tokens: 4,
                };
                let leaf = t(&lp).require_grad();
                let (loss, stats) = policy_loss(
                    leaf.clone(),
                    Some(t(&old)),
                    Some(t(&reference)),
                    &adv,
                    &mask,
                    &cfg,
                    Scale {
                        micro_batches: micro,
                        batch_tokens,
                    },
                )
                .unwrap();
                let adv64: Vec<f64> = adv.iter().map(|&a| f64::from(a)).collect();
                let f = |lpv: &[Vec<f64>]| {
                    hand_loss(
                        lpv,
                        &to64(&old),
                        &to64(&reference),
                        &adv64,
                        &lens,
                        &cfg,
                        (micro, batch_tokens),
                    )
                };
                let want = f(&to64(&lp));
                let got = f64::from(loss.clone().inner().into_scalar::<f32>());
                assert!(
                    close(got, want, 1e-5),
                    "{loss_type:?} β={beta}: {got} vs {want}"
                );
                // Gradient: central differences of the hand-computed loss (no ratio sits on a
                // clip boundary, so the loss is smooth around these values).
                let grads = loss.backward();
                let g = values(leaf.grad(&grads).unwrap());
                for r in 0..2 {
                    for k in 0..3 {
                        let h = 1e-6;
                        let mut up = to64(&lp);
                        up[r][k] += h;
                        let mut down = to64(&lp);
                        down[r][k] -= h;
                        let want = (f(&up) - f(&down)) / (2.0 * h);
                        let got = f64::from(g[r * 3 + k]);
                        assert!(
                            close(got, want, 1e-4),
                            "{loss_type:?} β={beta} d/dlp[{r}][{k}]: {got} vs {want}"
                        );
                    }
                }
                // Token 1 of row 0: ratio e^-0.4 = 0.67 < 0.8 with A > 0 → unclipped, no
                // clip count (clipping only bites with A < 0 there); token 2: e^0.5 = 1.65
                // > 1.28 with A > 0 → clipped high; row 1 token 1: e^0.4 = 1.49 with A < 0
                // → unclipped. One of five tokens is clipped.
                assert!(close(stats.clip_high, 0.2, 1e-9), "{stats:?}");
                assert_eq!(stats.clip_low, 0.0);
                assert!(close(stats.clip_region, 0.2, 1e-9));
                assert_eq!(stats.tokens, 5.0);
            }
        }
    }
}

#[test]
fn on_policy_ratio_is_exactly_one_and_clipping_changes_nothing() {
    let device = Device::flex().autodiff();
    let lp: Vec<f32> = vec![-1.0, -0.5, -2.0, -0.3, -1.2, -7.0];
    let adv = [0.8f32, -1.3];
    let mask = vec![vec![1.0f32; 3], vec![1.0; 2]];
    for loss_type in TYPES {
        let cfg = LossConfig {
            loss_type,
            ..LossConfig::default()
        };
        let leaf = Tensor::<1>::from_data(TensorData::new(lp.clone(), [6]), &device)
            .reshape([2, 3])
            .require_grad();
        // μ = 1: no old log-probabilities, the ratio is exp(lp − lp) = 1 exactly.
        let ratio = values((leaf.clone() - leaf.clone().detach()).exp());
        assert!(ratio.iter().all(|&r| r == 1.0), "{ratio:?}");
        let (clipped, stats) = policy_loss(
            leaf.clone(),
            None,
            None,
            &adv,
            &mask,
            &cfg,
            Scale::whole(&mask),
        )
        .unwrap();
        assert_eq!(stats.clip_region, 0.0);
        let g_clipped = values(leaf.grad(&clipped.backward()).unwrap());
        // The unclipped objective −Σ ratio·A, normalised the same way.
        let leaf2 = Tensor::<1>::from_data(TensorData::new(lp.clone(), [6]), &device)
            .reshape([2, 3])
            .require_grad();
        let wide = LossConfig {
            epsilon: 1e9,
            epsilon_high: 1e9,
            ..cfg.clone()
        };
        let (unclipped, _) = policy_loss(
            leaf2.clone(),
            None,
            None,
            &adv,
            &mask,
            &wide,
            Scale::whole(&mask),
        )
        .unwrap();
        let g_unclipped = values(leaf2.grad(&unclipped.backward()).unwrap());
        assert_eq!(
            clipped.inner().into_scalar::<f32>(),
            unclipped.inner().into_scalar::<f32>()
        );
        assert_eq!(g_clipped, g_unclipped, "{loss_type:?}");
        // And the gradient is −A / normaliser on each real token, 0 on padding.
        let norm = match loss_type {
            LossType::Bnpo | LossType::Dapo => [5.0, 5.0],
            LossType::Grpo => [6.0, 4.0],
            LossType::DrGrpo => [2.0 * 4096.0, 2.0 * 4096.0],
        };
        for (i, &g) in g_clipped.iter().enumerate() {
            let (r, t) = (i / 3, i % 3);
            let want = if t < mask[r].len() {
                -f64::from(adv[r]) / norm[r]
            } else {
                0.0
            };
            assert!(
                close(f64::from(g), want, 1e-6),
                "{loss_type:?} [{r}][{t}] {g} vs {want}"
            );
        }
    }
}

fn tiny(device: &Device) -> Model {
    common::tiny_model(device)
}

fn seqs() -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let prompts = vec![vec![5, 17, 40, 9], vec![60, 2], vec![33, 34, 35], vec![7]];
    let completions = vec![
        vec![11, 12, 13],
        vec![100, 3],
        vec![42, 43, 44, 45],
        vec![8],
    ];
    (prompts, completions)
}

#[test]
fn completion_logprobs_match_the_models_scoring() {
    let device = Device::flex().autodiff();
    let m = tiny(&device);
    let (prompts, completions) = seqs();
    let pad = m.tokenizer.eos_token_ids[0];
    let lp = values(completion_logprobs(
        &m.net,
        &m.cfg,
        pad,
        &prompts,
        &completions,
        None,
    ));
    let valid = m.valid();
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = prompts.into_iter().zip(completions).collect();
    let want = valid.logprobs(&pairs).unwrap();
    for (r, row) in want.iter().enumerate() {
        for (t, &w) in row.iter().enumerate() {
            let g = lp[r * 4 + t];
            assert!((g - w).abs() < 1e-4, "[{r}][{t}] {g} vs {w}");
        }
    }
}

#[test]
fn model_gradient_matches_finite_differences_for_every_loss_type() {
    let device = Device::flex().autodiff();
    let m = tiny(&device);
    let (prompts, completions) = seqs();
    let pad = m.tokenizer.eos_token_ids[0];
    let lens: Vec<usize> = completions.iter().map(Vec::len).collect();
    let mask: Vec<Vec<f32>> = lens.iter().map(|&n| vec![1.0; n]).collect();
    let adv64 = [1.2, -0.4, 0.7, -1.5];
    let adv: Vec<f32> = adv64.iter().map(|&a| a as f32).collect();
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        prompts.iter().cloned().zip(completions.clone()).collect();
    let frozen = |norm: Option<Vec<f32>>| {
        let mut net = m.net.valid();
        if let Some(v) = norm {
            let n = v.len();
            net.norm = Param::from_tensor(Tensor::from_data(
                TensorData::new(v, [n]),
                &device.clone().inner(),
            ));
        }
        Model {
            cfg: m.cfg.clone(),
            net,
            tokenizer: m.tokenizer.clone(),
            source: m.source.clone(),
        }
    };
    let base: Vec<Vec<f64>> = frozen(None)
        .logprobs(&pairs)
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect();
    // An "old" policy a little away from the current one, so some ratios are clipped.
    let old: Vec<Vec<f64>> = base
        .iter()
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(|(t, &x)| x + if (r + t) % 3 == 0 { 0.35 } else { -0.1 })
                .collect()
        })
        .collect();
    let c = 4;
    let old_t = {
        let rows: Vec<Vec<f32>> = old
            .iter()
            .map(|r| r.iter().map(|&x| x as f32).collect())
            .collect();
        synthpipe::rl::objective::matrix(&rows, c, &device)
    };
    let norm0: Vec<f32> = values(m.net.norm.val());
    for loss_type in TYPES {
        let cfg = LossConfig {
            loss_type,
            max_completion_tokens: 8,
            ..LossConfig::default()
        };
        let hand = |lp: &[Vec<f64>]| hand_loss(lp, &old, &old, &adv64, &lens, &cfg, (1, 10.0));
        let lp_t = completion_logprobs(&m.net, &m.cfg, pad, &prompts, &completions, None);
        let (loss, stats) = policy_loss(
            lp_t,
            Some(old_t.clone()),
            None,
            &adv,
            &mask,
            &cfg,
            Scale::whole(&mask),
        )
        .unwrap();
        assert!(
            stats.clip_region > 0.0,
            "the test should exercise clipping: {stats:?}"
        );
        let got = f64::from(loss.clone().inner().into_scalar::<f32>());
        let want = hand(&base);
        assert!(close(got, want, 1e-4), "{loss_type:?}: {got} vs {want}");
        let grads = loss.backward();
        let g: Vec<f32> = values(m.net.norm.val().grad(&grads).unwrap());
        for i in [0, 5, 17, 31] {
            let h = 1e-2f32;
            let at = |d: f32| {
                let mut v = norm0.clone();
                v[i] += d;
                let lp: Vec<Vec<f64>> = frozen(Some(v))
                    .logprobs(&pairs)
                    .unwrap()
                    .into_iter()
                    .map(|r| r.into_iter().map(f64::from).collect())
                    .collect();
                hand(&lp)
            };
            let want = (at(h) - at(-h)) / (2.0 * f64::from(h));
            let got = f64::from(g[i]);
            assert!(
                (got - want).abs() <= 2e-3 + 2e-2 * want.abs(),
                "{loss_type:?} d/dnorm[{i}]: {got} vs {want}"
            );
        }
    }
}

#[test]
fn adamw_first_step_moves_each_weight_by_the_learning_rate() {
    let device = Device::flex().autodiff();
    let m = tiny(&device);
    let (prompts, completions) = seqs();
    let pad = m.tokenizer.eos_token_ids[0];
    let mask: Vec<Vec<f32>> = completions.iter().map(|c| vec![1.0; c.len()]).collect();
    let lp = completion_logprobs(&m.net, &m.cfg, pad, &prompts, &completions, None);
    let (loss, _) = policy_loss(
        lp,
        None,
        None,
        &[1.0, -1.0, 0.5, -0.5],
        &mask,
        &LossConfig::default(),
        Scale::whole(&mask),
    )
    .unwrap();
    let grads = loss.backward();
    let before: Vec<f32> = values(m.net.norm.val());
    let g: Vec<f32> = values(m.net.norm.val().grad(&grads).unwrap());
    let mut opt = AdamW::new(0.9, 0.999, 1e-8, 0.0);
    opt.accumulate(&m.net, &grads);
    let norm = opt.grad_norm().unwrap();
    assert!(norm > 0.0);
    let lr = 1e-3;
    // No clipping (max norm far above): the first Adam step is lr · g / (|g| + ε).
    let (net, reported) = opt.step(m.net, lr, 1e9).unwrap();
    assert_eq!(reported, norm);
    let after: Vec<f32> = values(net.norm.val());
    for i in 0..before.len() {
        let gi = f64::from(g[i]);
        let want = f64::from(before[i]) - lr * gi / (gi.abs() + 1e-8);
        assert!(
            (f64::from(after[i]) - want).abs() < 1e-6,
            "[{i}] {} vs {want}",
            after[i]
        );
    }
    // The updated model still trains: its parameters are in the graph again.
    let lp = completion_logprobs(&net, &m.cfg, pad, &prompts, &completions, None);
    let grads = lp.sum().backward();
    assert!(net.norm.val().grad(&grads).is_some());
}

/// A GRPO group's prompt runs once for all its completions: log-probabilities and the
/// gradients of a loss over them equal those of running every (prompt, completion) apart.
#[test]
fn shared_prompt_groups_equal_the_separate_computation() {
    let device = Device::flex().autodiff();
    let m = tiny(&device);
    let pad = m.tokenizer.eos_token_ids[0];
    let (p, c) = seqs();
    // Two groups of three completions, the prompts of different lengths.
    let prompts = vec![
        p[0].clone(),
        p[0].clone(),
        p[0].clone(),
        p[1].clone(),
        p[1].clone(),
        p[1].clone(),
    ];
    let completions = vec![
        c[0].clone(),
        c[1].clone(),
        c[3].clone(),
        c[2].clone(),
        c[0].clone(),
        vec![44],
    ];
    let weight = |r: usize, t: usize| (r * 7 + t * 3) as f32 % 5.0 - 2.0;
    let shared = completion_logprobs(&m.net, &m.cfg, pad, &prompts, &completions, None);
    let width = shared.dims()[1];
    let w: Vec<Vec<f32>> = (0..6)
        .map(|r| {
            (0..width)
                .map(|t| {
                    if t < completions[r].len() {
                        weight(r, t)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let loss_shared = (shared.clone() * synthpipe::rl::objective::matrix(&w, width, &device)).sum();
    let g_shared = loss_shared.backward();
    let shared = values(shared);
    let mut loss_apart: Option<Tensor<1>> = None;
    for r in 0..6 {
        let lp = completion_logprobs(
            &m.net,
            &m.cfg,
            pad,
            &prompts[r..=r],
            &completions[r..=r],
            None,
        );
        let n = completions[r].len();
        let got = values(lp.clone());
        for t in 0..n {
            assert!(
                (got[t] - shared[r * width + t]).abs() < 1e-4,
                "row {r} token {t}: apart {} vs shared {}",
                got[t],
                shared[r * width + t]
            );
        }
        let wr: Vec<Vec<f32>> = vec![(0..n).map(|t| weight(r, t)).collect()];
        let l = (lp * synthpipe::rl::objective::matrix(&wr, n, &device)).sum();
        loss_apart = Some(match loss_apart {
            Some(a) => a + l,
            None => l,
        });
    }
    let g_apart = loss_apart.unwrap().backward();
    let b0 = &m.net.blocks[0];
    for (what, t) in [
        ("embed", m.net.embed.val()),
        ("q", b0.attn.q.val()),
        ("k", b0.attn.k.val()),
        ("down", b0.mlp.down.val()),
    ] {
        let (a, s) = (
            values(t.grad(&g_apart).unwrap()),
            values(t.grad(&g_shared).unwrap()),
        );
        let scale = a.iter().map(|x| x.abs()).fold(0.0, f32::max);
        let diff = a
            .iter()
            .zip(&s)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{what}: gradients differ by {diff} (scale {scale})"
        );
    }
}

/// Rollouts prefill a group's prompt once and decode its rows from copies of that cache:
/// greedy continuations are those of each prompt alone.
#[test]
fn grouped_generation_equals_generating_each_prompt_alone() {
    use synthpipe::model::generate::GenOptions;
    let device = Device::flex();
    let m = tiny(&device);
    let (p, _) = seqs();
    let prompts = vec![
        p[0].clone(),
        p[0].clone(),
        p[2].clone(),
        p[2].clone(),
        p[2].clone(),
    ];
    let opts = GenOptions {
        max_new_tokens: 12,
        ignore_eos: true,
        ..GenOptions::default()
    };
    let (together, timing) = m.generate(&prompts, &opts).unwrap();
    assert_eq!(
        timing.prompt_tokens,
        p[0].len() + p[2].len(),
        "each prompt prefilled once"
    );
    for (r, pr) in prompts.iter().enumerate() {
        let (alone, _) = m.generate(std::slice::from_ref(pr), &opts).unwrap();
        assert_eq!(together[r].tokens, alone[0].tokens, "row {r}");
    }
}

/// Prompts that share a prefix (an evaluation batch's instruction and worked examples) have
/// it prefilled once: greedy continuations are those of prefilling each prompt alone.
#[test]
fn a_shared_prefix_is_prefilled_once_with_the_same_greedy_outputs() {
    use synthpipe::model::generate::GenOptions;
    let device = Device::flex();
    let m = tiny(&device);
    let prefix = vec![5, 17, 40, 9, 60, 2, 33];
    let prompts: Vec<Vec<u32>> = [vec![34, 35], vec![7], vec![34, 8, 11, 12], vec![100]]
        .into_iter()
        .map(|rest| [prefix.clone(), rest].concat())
        .collect();
    let opts = GenOptions {
        max_new_tokens: 10,
        ignore_eos: true,
        ..GenOptions::default()
    };
    let (together, timing) = m.generate(&prompts, &opts).unwrap();
    assert_eq!(
        timing.prompt_tokens,
        prefix.len() + 2 + 1 + 4 + 1,
        "the prefix counted once"
    );
    for (r, pr) in prompts.iter().enumerate() {
        let (alone, _) = m.generate(std::slice::from_ref(pr), &opts).unwrap();
        assert_eq!(together[r].tokens, alone[0].tokens, "row {r}");
    }
}

/// An evaluation keeps its batches' shared prefix (instruction, worked examples) between
/// `generate` calls: later batches prefill only what follows it, and greedy outputs are those
/// of prefilling every prompt alone — batches of one, of several, with a shorter shared part.
#[test]
fn a_prefix_kept_between_batches_gives_the_same_greedy_outputs() {
    use synthpipe::model::generate::GenOptions;
    let device = Device::flex();
    let m = tiny(&device);
    let prefix = vec![5, 17, 40, 9, 60, 2, 33, 34, 35, 36];
    let rest = [
        vec![34, 35],
        vec![7],
        vec![34, 8, 11, 12],
        vec![100],
        vec![41, 42, 43],
    ];
    let mut prompts: Vec<Vec<u32>> = rest
        .iter()
        .map(|r| [prefix.clone(), r.clone()].concat())
        .collect();
    // A last prompt that leaves the prefix early: only its first part is reused.
    prompts.push(vec![5, 17, 40, 9, 99, 98]);
    let opts = GenOptions {
        max_new_tokens: 8,
        ignore_eos: true,
        ..GenOptions::default()
    };
    let mut kept = None;
    let mut prefilled = Vec::new();
    let mut outputs = Vec::new();
    for batch in [
        &prompts[0..1],
        &prompts[1..3],
        &prompts[3..4],
        &prompts[4..6],
    ] {
        let (gens, timing) = m.generate_reusing(batch, &opts, Some(&mut kept)).unwrap();
        prefilled.push(timing.prompt_tokens);
        outputs.extend(gens);
    }
    // The first batch prefills its prompt; the second the rest after the kept prompt's
    // common part; the third only its own tokens after the prefix; the fourth diverges.
    assert_eq!(prefilled[0], prompts[0].len());
    assert_eq!(prefilled[1], 1 + 4);
    assert_eq!(prefilled[2], 1);
    assert_eq!(prefilled[3], 9 + 2, "{prefilled:?}");
    for (r, pr) in prompts.iter().enumerate() {
        let (alone, _) = m.generate(std::slice::from_ref(pr), &opts).unwrap();
        assert_eq!(outputs[r].tokens, alone[0].tokens, "prompt {r}");
    }
}
