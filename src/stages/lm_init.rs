//! The `lm_init` stage: a new model with seeded random weights (as `synthpipe lm init`).

use serde::Deserialize;

use super::spec::*;
use super::{Io, StageError};
use crate::model::config::Arch;

pub const KIND: KindSpec = KindSpec {
    name: "lm_init",
    version: 1,
    doc: "A new model with seeded random weights (as `synthpipe lm init`): a byte-level BPE tokenizer trained on a dataset's text, or another model's tokenizer.",
    params: &[
        p(
            "dataset",
            Ty::Input(InputKind::Dataset),
            None,
            "train the tokenizer on this dataset's articles, questions and answers",
        ),
        p(
            "tokenizer",
            Ty::Input(InputKind::Model),
            None,
            "or take this model's tokenizer",
        ),
        int(
            "vocab",
            259,
            "4096",
            "vocabulary size of a trained tokenizer (at most)",
        ),
        p(
            "arch",
            Ty::Choice(&["qwen3", "qwen2", "llama"]),
            Some("\"qwen3\""),
            "architecture",
        ),
        int("layers", 1, "4", "decoder blocks"),
        int("hidden", 1, "256", "hidden size"),
        int("heads", 1, "4", "attention heads"),
        int(
            "kv_heads",
            1,
            "2",
            "key/value heads (grouped-query attention)",
        ),
        int("intermediate", 0, "0", "MLP size (0: 3 × hidden)"),
        int("context", 1, "4096", "maximum positions"),
        float("rope_theta", "1000000.0", "RoPE base"),
        p(
            "tie_embeddings",
            Ty::Bool,
            Some("true"),
            "share the input embedding with the output layer",
        ),
        float(
            "init_std",
            "0.02",
            "standard deviation of the random weights",
        ),
        SEED,
    ],
    outputs: &[OutputSpec {
        name: "model",
        kind: OutputKind::Model,
        doc: "the new model, a Hugging Face folder",
    }],
    cpus: 0,
    exclusive: false,
    check: super::no_check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub vocab: usize,
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// 0: 3 × hidden.
    pub intermediate: usize,
    pub context: usize,
    pub rope_theta: f64,
    pub tie_embeddings: bool,
    pub init_std: f64,
    pub seed: u64,
}

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    use crate::model::init::{Shape, tokenizer_of};
    use crate::model::load::Model;
    use crate::model::tokenizer::Tokenizer;
    use crate::prompt::tokenizer_texts;
    let tokenizer = match (io.opt_input("tokenizer"), io.opt_input("dataset")) {
        (Some(t), _) => tokenizer_of(t).map_err(|e| e.to_string())?,
        (None, Some(d)) => {
            let texts = tokenizer_texts(d)?;
            Tokenizer::train(texts.into_iter(), p.vocab)?
        }
        (None, None) => {
            return Err("give `dataset` (to train a tokenizer) or `tokenizer` (a model)".into());
        }
    };
    let shape = Shape {
        arch: p.arch,
        layers: p.layers,
        hidden: p.hidden,
        heads: p.heads,
        kv_heads: p.kv_heads,
        head_dim: None,
        intermediate: Some(p.intermediate).filter(|&i| i > 0),
        context: p.context,
        rope_theta: p.rope_theta,
        rms_norm_eps: 1e-6,
        tie_embeddings: p.tie_embeddings,
    };
    let cfg = shape
        .config(tokenizer.vocab_size(), tokenizer.eos_token_ids.clone())
        .map_err(|e| e.to_string())?;
    let m = Model::init(
        cfg,
        tokenizer,
        p.seed,
        p.init_std,
        &crate::model::device::cpu(),
    )
    .map_err(|e| e.to_string())?;
    Ok(m.save_hf(io.output("model")?, false)?)
}
