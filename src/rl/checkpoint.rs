//! Resumable training state in a stage's scratch folder: the model after a step (only its
//! adapters when LoRA trains, the frozen base being the job's input), the optimiser's
//! moments and the metrics lines so far, from which a killed run resumes to the same
//! weights bit for bit on the CPU.

use std::io::Write;
use std::path::PathBuf;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::objective::AdamW;
use crate::model::load::Model;
use crate::model::lora;

/// Resumable state in the scratch folder: the model after `step` steps, the optimiser's
/// moments, and the metrics lines so far.
pub(crate) struct Checkpoints {
    pub(crate) dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    step: u64,
    optimiser_steps: u64,
}

impl Checkpoints {
    pub(crate) fn current(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    pub(crate) fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// Loads the last checkpoint, if a complete one exists: the model (LoRA: `base` with
    /// the saved adapters), and the optimiser's state restored into `opt`; returns the model
    /// and the steps it covers.
    pub(crate) fn load(
        &self,
        device: &Device,
        opt: &mut AdamW,
        base: &std::path::Path,
    ) -> Result<Option<(Model, u64)>, String> {
        let dir = self.current();
        let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else {
            return Ok(None);
        };
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| format!("a damaged checkpoint: {e}"))?;
        let adapter = dir.join("adapter");
        let model = if lora::is_peft(&adapter) {
            lora::load_adapted(base, Some(&adapter), device)?
        } else {
            Model::load(&dir.join("model"), device).map_err(|e| e.to_string())?
        };
        let tensors = crate::model::safetensors::Checkpoint::open(&dir.join("optimiser"))
            .and_then(|c| {
                c.tensors
                    .keys()
                    .map(|name| c.read_f32(name).map(|(shape, v)| (name.clone(), shape, v)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| format!("cannot read the optimiser state: {e}"))?;
        opt.restore(state.optimiser_steps, tensors, device);
        Ok(Some((model, state.step)))
    }

    /// Writes a checkpoint next to the current one, then swaps it in, so a kill at any
    /// moment leaves one complete checkpoint.
    pub(crate) fn save(&self, model: &Model, opt: &AdamW, step: u64) -> Result<(), String> {
        let tmp = self.dir.join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        if lora::spec_of(&model.net).is_some() {
            lora::save_peft(&tmp.join("adapter"), &model.net, "(the job's input model)")?;
        } else {
            model.save_hf(&tmp.join("model"), false)?;
        }
        std::fs::create_dir_all(tmp.join("optimiser")).map_err(|e| e.to_string())?;
        crate::model::safetensors::write(
            &tmp.join("optimiser").join("model.safetensors"),
            &opt.state()?,
            false,
        )
        .map_err(|e| format!("cannot write the optimiser state: {e}"))?;
        let state = CheckpointState {
            step,
            optimiser_steps: opt.steps,
        };
        std::fs::write(
            tmp.join("state.json"),
            serde_json::to_string(&state).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("cannot write a checkpoint: {e}"))?;
        let cur = self.current();
        let old = self.dir.join("checkpoint.old");
        let _ = std::fs::remove_dir_all(&old);
        if cur.exists() {
            std::fs::rename(&cur, &old).map_err(|e| format!("cannot swap checkpoints: {e}"))?;
        }
        std::fs::rename(&tmp, &cur).map_err(|e| format!("cannot swap checkpoints: {e}"))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Keeps the first `steps` metrics lines (those the checkpoint covers).
    pub(crate) fn truncate_metrics(&self, steps: u64) -> Result<(), String> {
        let text = std::fs::read_to_string(self.metrics()).unwrap_or_default();
        let kept: String = text
            .lines()
            .take(steps as usize)
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(self.metrics(), kept).map_err(|e| format!("cannot write metrics: {e}"))
    }

    pub(crate) fn read_metrics(&self) -> Result<Vec<serde_json::Value>, String> {
        let text = std::fs::read_to_string(self.metrics())
            .map_err(|e| format!("cannot read metrics: {e}"))?;
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("damaged metrics: {e}")))
            .collect()
    }

    pub(crate) fn append_metrics(&self, line: &serde_json::Value) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.metrics())
            .map_err(|e| format!("cannot write metrics: {e}"))?;
        writeln!(f, "{line}").map_err(|e| format!("cannot write metrics: {e}"))
    }
}
