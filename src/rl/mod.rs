//! Reinforcement learning on generated questions: rewards (burn-free, pure functions); GRPO
//! and SFT build on them.

pub mod grpo;
pub mod prompt;
pub mod reward;
pub mod train;
