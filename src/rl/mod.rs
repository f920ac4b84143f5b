//! Reinforcement learning on generated questions, one file per responsibility: the job's
//! settings (`params`), rewards (`reward`, burn-free), the GRPO objective and AdamW
//! (`objective`), the training pass with per-layer recomputation (`recompute`), where questions come from (`curriculum`: drawn on the fly; `batching`:
//! a fixed dataset in passes), resumable state (`checkpoint`), the shared set-up and outputs
//! (`job`), and the two loops (`sft`, `grpo`).

pub mod batching;
pub mod checkpoint;
pub mod curriculum;
pub mod grpo;
pub mod job;
pub mod objective;
pub mod params;
pub mod recompute;
pub mod reward;
pub mod sft;
