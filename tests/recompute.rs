//! Per-layer recomputation (gradient checkpointing) against the plain pass: the same loss,
//! the same gradient for every parameter — full fine-tuning with tied and separate output
//! layers, LoRA with dropout, GRPO groups sharing a prompt and distinct prompts — and the same
//! log-probabilities without autodiff.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;
use common::values;

use synthpipe::model::config::Arch;
use synthpipe::model::load::Model;
use synthpipe::model::lora::{self, LoraSpec, Target};
use synthpipe::model::net::Transformer;
use synthpipe::rl::objective::{LossConfig, Scale, completion_logprobs, policy_loss};
use synthpipe::rl::recompute;

/// Every parameter's gradient, summed over the gradient sets handed over, in parameter order.
struct Collect<'a> {
    grads: &'a Gradients,
    at: usize,
    sums: &'a mut Vec<Option<Vec<f32>>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.sums.len() <= self.at {
            self.sums.push(None);
        }
        if let Some(g) = param.val().grad(self.grads) {
            let g = values(g);
            let slot = &mut self.sums[self.at];
            match slot {
                Some(s) => s.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                None => *slot = Some(g),
            }
        }
        self.at += 1;
    }
}

fn collect(net: &Transformer, grads: &Gradients, sums: &mut Vec<Option<Vec<f32>>>) {
    net.visit(&mut Collect { grads, at: 0, sums });
}

fn model(arch: Arch, tied: bool, device: &Device) -> Model {
    common::tiny_model_of(arch, 3, tied, 5, device)
}

/// Two GRPO groups of three (one prompt each), or six distinct prompts.
fn batch(shared: bool) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let p: Vec<Vec<u32>> = vec![
        vec![5, 17, 40, 9],
        vec![60, 2],
        vec![33, 34, 35],
        vec![7, 8, 9, 10, 11],
        vec![70, 71],
        vec![12],
    ];
    let prompts = if shared {
        vec![
            p[0].clone(),
            p[0].clone(),
            p[0].clone(),
            p[1].clone(),
            p[1].clone(),
            p[1].clone(),
        ]
    } else {
        p
    };
    let completions = vec![
        vec![11, 12, 13],
        vec![100, 3],
        vec![42, 43, 44, 45],
        vec![8],
        vec![20, 21, 22, 23, 24],
        vec![44, 45],
    ];
    (prompts, completions)
}

/// GRPO's loss over the log-probabilities, with advantages of both signs and a masked-out
/// completion.
fn grpo_loss(lp: Tensor<2>, completions: &[Vec<u32>]) -> (Tensor<1>, f64) {
    let adv = [1.0, -0.5, 0.25, -1.0, 0.75, 0.0];
    let mask: Vec<Vec<f32>> = completions
        .iter()
        .enumerate()
        .map(|(r, c)| vec![if r == 3 { 0.0 } else { 1.0 }; c.len()])
        .collect();
    let (loss, stats) = policy_loss(
        lp,
        None,
        None,
        &adv,
        &mask,
        &LossConfig::default(),
        Scale::whole(&mask),
    )
    .unwrap();
    (loss, stats.tokens)
}

fn compare(what: &str, plain: &[Option<Vec<f32>>], recomputed: &[Option<Vec<f32>>]) {
    assert_eq!(plain.len(), recomputed.len(), "{what}: parameter count");
    let mut with_grad = 0;
    for (i, (a, b)) in plain.iter().zip(recomputed).enumerate() {
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                with_grad += 1;
                let scale = a.iter().map(|x| x.abs()).fold(0.0, f32::max);
                let diff = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                assert!(
                    diff <= 1e-4 * scale.max(1e-3),
                    "{what}: parameter {i} differs by {diff} (scale {scale})"
                );
            }
            _ => panic!("{what}: parameter {i} has a gradient in one pass only"),
        }
    }
    assert!(with_grad > 0, "{what}: no gradient at all");
}

fn check(what: &str, m: &Model, net: &Transformer, shared: bool, dropout: Option<u64>) {
    let (prompts, completions) = batch(shared);
    let pad = m.tokenizer.eos_token_ids[0];

    let lp = completion_logprobs(net, &m.cfg, pad, &prompts, &completions, dropout);
    let (loss, tokens) = grpo_loss(lp, &completions);
    let plain_value = values(loss.clone())[0];
    let mut plain = Vec::new();
    collect(net, &loss.backward(), &mut plain);

    let mut recomputed = Vec::new();
    let mut sets = 0;
    let (value, seen) = recompute::backward(
        net,
        &m.cfg,
        pad,
        &prompts,
        &completions,
        dropout,
        |lp| {
            let (loss, tokens) = grpo_loss(lp, &completions);
            Ok((loss, tokens))
        },
        |g| {
            sets += 1;
            collect(net, g, &mut recomputed)
        },
    )
    .unwrap();
    assert_eq!(seen, tokens, "{what}: the loss saw the same tokens");
    assert!(
        (value as f32 - plain_value).abs() <= 1e-5 * plain_value.abs().max(1.0),
        "{what}: loss {value} vs {plain_value}"
    );
    assert!(
        sets > m.cfg.num_layers,
        "{what}: one gradient set per layer at least"
    );
    compare(what, &plain, &recomputed);
}

#[test]
fn recomputed_layers_give_the_plain_pass_s_loss_and_gradients() {
    let device = Device::flex().autodiff();
    for (arch, tied) in [(Arch::Qwen3, true), (Arch::Qwen2, false)] {
        let m = model(arch, tied, &device);
        for shared in [false, true] {
            let what = format!("{arch:?}, tied {tied}, shared {shared}, full");
            check(&what, &m, &m.net, shared, None);
        }
    }
}

#[test]
fn recomputed_layers_draw_the_same_lora_dropout_masks() {
    let device = Device::flex().autodiff();
    let m = model(Arch::Qwen2, false, &device);
    let spec = LoraSpec {
        rank: 4,
        alpha: 8.0,
        dropout: 0.3,
        targets: Target::ALL.to_vec(),
    };
    let net = lora::attach(m.net.clone(), &spec, 3);
    // Fresh adapters have b = 0, so a's gradient would be 0: one plain step first moves b.
    let (prompts, completions) = batch(false);
    let pad = m.tokenizer.eos_token_ids[0];
    let lp = completion_logprobs(&net, &m.cfg, pad, &prompts, &completions, None);
    let mut opt = synthpipe::rl::objective::AdamW::new(0.9, 0.999, 1e-8, 0.0);
    opt.accumulate(&net, &grpo_loss(lp, &completions).0.backward());
    let (net, _) = opt.step(net, 1e-2, 0.0).unwrap();
    for shared in [false, true] {
        check(
            &format!("LoRA, dropout, shared {shared}"),
            &m,
            &net,
            shared,
            Some(42),
        );
        check(&format!("LoRA, shared {shared}"), &m, &net, shared, None);
    }
    // Dropout masks change the gradient: the comparison above is not vacuous.
    let (prompts, completions) = batch(true);
    let lp = |seed| {
        values(completion_logprobs(
            &net,
            &m.cfg,
            pad,
            &prompts,
            &completions,
            seed,
        ))
    };
    assert_ne!(lp(Some(42)), lp(None));
}

#[test]
fn log_probabilities_without_autodiff_equal_the_plain_pass() {
    let device = Device::flex();
    let m = model(Arch::Qwen3, true, &device);
    let pad = m.tokenizer.eos_token_ids[0];
    for shared in [false, true] {
        let (prompts, completions) = batch(shared);
        let plain = values(completion_logprobs(
            &m.net,
            &m.cfg,
            pad,
            &prompts,
            &completions,
            None,
        ));
        let fast =
            values(recompute::logprobs(&m.net, &m.cfg, pad, &prompts, &completions).unwrap());
        let width = plain.len() / prompts.len();
        assert_eq!(fast.len(), plain.len());
        for (r, c) in completions.iter().enumerate() {
            for t in 0..c.len() {
                let (a, b) = (plain[r * width + t], fast[r * width + t]);
                assert!(
                    (a - b).abs() < 1e-5,
                    "shared {shared}, row {r}, token {t}: {a} vs {b}"
                );
            }
        }
    }
}
