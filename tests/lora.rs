//! LoRA on a tiny transformer: fresh adapters leave the model unchanged, merged weights give
//! the factored model's logits, only adapters get gradients and those match finite
//! differences, and the PEFT layout (names, shapes, config) round-trips.

mod common;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use common::values;

use synthpipe::model::load::Model;
use synthpipe::model::lora::{self, LoraSpec, Target};
use synthpipe::model::net::{Adapter, Cache, Transformer};
use synthpipe::rl::objective::completion_logprobs;

fn spec(targets: &[Target]) -> LoraSpec {
    LoraSpec {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: targets.to_vec(),
    }
}

fn adapters(net: &mut Transformer) -> Vec<&mut Adapter> {
    let mut out = Vec::new();
    for b in &mut net.blocks {
        let (a, m) = (&mut b.attn.lora, &mut b.mlp.lora);
        for slot in [
            &mut a.q,
            &mut a.k,
            &mut a.v,
            &mut a.o,
            &mut m.gate,
            &mut m.up,
            &mut m.down,
        ] {
            if let Some(ad) = slot.as_mut() {
                out.push(ad);
            }
        }
    }
    out
}

/// Fresh adapters have `b = 0`; give every one a seeded random `b` so the update shows.
fn randomise(mut net: Transformer) -> Transformer {
    for (i, ad) in adapters(&mut net).into_iter().enumerate() {
        let b = ad.b.val();
        let dims = b.dims();
        let n = dims[0] * dims[1];
        let v: Vec<f32> = (0..n)
            .map(|j| (((i * 131 + j * 17) % 29) as f32 / 29.0 - 0.5) * 0.6)
            .collect();
        ad.b = Param::from_tensor(Tensor::from_data(TensorData::new(v, dims), &b.device()));
    }
    net
}

fn logits(m: &Model, net: &Transformer) -> Vec<f32> {
    let device = net.embed.val().device();
    let ids: Vec<i64> = vec![5, 17, 40, 9, 60, 2, 33, 34];
    let t = Tensor::<1, Int>::from_data(TensorData::new(ids, [8]), &device).reshape([2, 4]);
    let valid = vec![vec![true; 4]; 2];
    let mut cache = Cache::new(m.cfg.num_layers, 2);
    values(net.forward(&m.cfg, t, &valid, &mut cache))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fresh_adapters_change_nothing_and_merging_equals_the_factored_model() {
    let device = Device::flex();
    let m = common::tiny_model(&device);
    let base = logits(&m, &m.net);
    let net = lora::attach(m.net.clone(), &spec(&Target::ALL), 7);
    assert_eq!(
        lora::spec_of(&net),
        Some(spec(&Target::ALL)),
        "the spec reads back"
    );
    assert!(max_diff(&base, &logits(&m, &net)) < 1e-6, "b = 0 at first");
    let net = randomise(net);
    let factored = logits(&m, &net);
    assert!(max_diff(&base, &factored) > 1e-2, "the update shows");
    let merged = lora::merged(&net);
    assert!(lora::spec_of(&merged).is_none());
    assert!(max_diff(&factored, &logits(&m, &merged)) < 1e-4);
    // The same seed draws the same adapters.
    let again = lora::attach(m.net.clone(), &spec(&Target::ALL), 7);
    let first = lora::attach(m.net.clone(), &spec(&Target::ALL), 7);
    assert_eq!(
        values(again.blocks[1].mlp.lora.up.as_ref().unwrap().a.val()),
        values(first.blocks[1].mlp.lora.up.as_ref().unwrap().a.val())
    );
}

/// A scalar of the completion log-probabilities, as a loss is.
fn loss(m: &Model, net: &Transformer) -> Tensor<1> {
    let prompts = vec![vec![5, 17, 40, 9], vec![60, 2]];
    let completions = vec![vec![11, 12, 13], vec![100, 3]];
    let pad = m.tokenizer.eos_token_ids[0];
    completion_logprobs(net, &m.cfg, pad, &prompts, &completions, None).sum()
}

/// `net` with entry `i` of factor `a` (or `b`) of adapter `k` moved by `delta`.
fn nudge(mut net: Transformer, k: usize, factor_a: bool, i: usize, delta: f32) -> Transformer {
    let ad = adapters(&mut net).into_iter().nth(k).unwrap();
    let p = if factor_a { &mut ad.a } else { &mut ad.b };
    let t = p.val();
    let dims = t.dims();
    let mut v = values(t.clone());
    v[i] += delta;
    *p = Param::from_tensor(Tensor::from_data(TensorData::new(v, dims), &t.device()));
    net
}

#[test]
fn only_adapters_get_gradients_and_they_match_finite_differences() {
    let device = Device::flex().autodiff();
    let m = common::tiny_model(&device);
    let targets = [Target::Q, Target::V, Target::Up, Target::Down];
    let net = randomise(lora::attach(m.net.clone(), &spec(&targets), 3));
    let grads = loss(&m, &net).backward();
    let b0 = &net.blocks[0];
    for (what, g) in [
        ("embed", net.embed.val().grad(&grads).is_some()),
        ("q", b0.attn.q.val().grad(&grads).is_some()),
        ("k", b0.attn.k.val().grad(&grads).is_some()),
        ("down", b0.mlp.down.val().grad(&grads).is_some()),
        ("norm", net.norm.val().grad(&grads).is_some()),
    ] {
        assert!(!g, "the frozen `{what}` got a gradient");
    }
    let mut net = net;
    let all = adapters(&mut net).len();
    assert_eq!(all, 2 * targets.len());
    let net = net;
    let mut checked = 0;
    for k in [0, 3, 5, 7] {
        for factor_a in [true, false] {
            let mut n2 = net.clone();
            let ad = adapters(&mut n2).into_iter().nth(k).unwrap();
            let p = if factor_a { &ad.a } else { &ad.b };
            let g = values(p.val().grad(&grads).expect("adapters get gradients"));
            for i in [0, g.len() / 2, g.len() - 1] {
                let e = 1e-2f32;
                let up = values(loss(&m, &nudge(net.clone(), k, factor_a, i, e)))[0];
                let down = values(loss(&m, &nudge(net.clone(), k, factor_a, i, -e)))[0];
                let fd = (up - down) / (2.0 * e);
                assert!(
                    (g[i] - fd).abs() <= 2e-3 + 2e-2 * g[i].abs(),
                    "adapter {k} {} [{i}]: autodiff {} vs finite differences {fd}",
                    if factor_a { "a" } else { "b" },
                    g[i]
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn the_peft_layout_is_peft_s_and_loads_back_to_the_same_logits() {
    let device = Device::flex();
    let m = common::tiny_model(&device);
    let net = randomise(lora::attach(m.net.clone(), &spec(&Target::ALL), 11));
    let dir = common::tmpdir("lora", "peft");
    lora::save_peft(&dir, &net, "base-model").unwrap();
    let header =
        synthpipe::model::safetensors::read_header(&dir.join("adapter_model.safetensors")).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    let tensors: Vec<String> = header
        .iter()
        .filter(|(n, _)| n.contains("layers.0.") || n.contains("layers.1.self_attn.q"))
        .map(|(n, e)| format!("{n} {:?}", e.shape))
        .collect();
    let layout = serde_json::json!({"config": config, "tensors": tensors, "count": header.len()});
    insta::assert_yaml_snapshot!("peft_layout", layout);
    let loaded = lora::load_peft(&dir, m.net.clone()).unwrap();
    assert_eq!(lora::spec_of(&loaded), Some(spec(&Target::ALL)));
    assert!(max_diff(&logits(&m, &net), &logits(&m, &loaded)) < 1e-6);

    // A damaged adapter is an error that names the file, never a silently plain model.
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "PREFIX_TUNING", "r": 4}"#,
    )
    .unwrap();
    let e = lora::load_peft(&dir, m.net.clone()).unwrap_err();
    assert!(e.contains("peft_type") && e.contains("peft"), "{e}");
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16}"#,
    )
    .unwrap();
    let e = lora::load_peft(&dir, m.net.clone()).unwrap_err();
    assert!(e.contains("shape"), "{e}");
}

/// A LoRA model saves as its merged weights, read back and merged a block of rows at a time
/// (here a row per block, so every projection is transposed in pieces): the file holds what
/// the merged model holds.
#[test]
fn a_lora_model_saves_its_merged_weights_block_by_block() {
    use synthpipe::model::load::export;
    use synthpipe::model::safetensors::{Checkpoint, write_blocks};
    let device = Device::flex();
    let m = common::tiny_model(&device);
    let net = randomise(lora::attach(m.net.clone(), &spec(&Target::ALL), 5));
    let merged = lora::merged(&net);
    let dir = common::tmpdir("lora", "save");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_blocks(&a.join("model.safetensors"), export(&m.cfg, &net), false, 7).unwrap();
    write_blocks(
        &b.join("model.safetensors"),
        export(&m.cfg, &merged),
        false,
        1 << 30,
    )
    .unwrap();
    let (ca, cb) = (Checkpoint::open(&a).unwrap(), Checkpoint::open(&b).unwrap());
    assert_eq!(
        ca.tensors.keys().collect::<Vec<_>>(),
        cb.tensors.keys().collect::<Vec<_>>()
    );
    let q0 = "model.layers.0.self_attn.q_proj.weight";
    let (base_shape, base) = {
        let w = m.net.blocks[0].attn.q.val();
        let [i, o] = w.dims();
        (vec![o, i], values(w))
    };
    for name in ca.tensors.keys() {
        let (sa, va) = ca.read_f32(name).unwrap();
        let (sb, vb) = cb.read_f32(name).unwrap();
        assert_eq!(sa, sb, "{name}");
        assert!(max_diff(&va, &vb) < 1e-6, "{name}");
        if name == q0 {
            assert_eq!(sa, base_shape);
            // Stored transposed ([out, in]) and moved by the adapter.
            let transposed: Vec<f32> = (0..base_shape[0])
                .flat_map(|r| (0..base_shape[1]).map(move |c| (r, c)))
                .map(|(r, c)| base[c * base_shape[0] + r])
                .collect();
            assert!(
                max_diff(&va, &transposed) > 1e-3,
                "the adapter is folded in"
            );
        }
    }
}
