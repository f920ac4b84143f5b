//! Language models: reading checkpoints (GGUF with its quantised encodings, Hugging Face
//! safetensors folders) into f32 tensors, architecture configs, tokenizers and chat templates,
//! with coded errors for every way a file can be wrong; LoRA adapters (`lora`); the CPU's
//! products of a few rows with a weight matrix (`skinny`), and with a GGUF's weights kept in
//! their quantised blocks (`packed`); the MLP's gate in one pass (`swiglu`); the instruction
//! set those kernels run on (`simd`).

pub mod attend;
pub mod chat;
pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod init;
pub mod load;
pub mod lora;
pub mod machine;
pub mod net;
pub mod packed;
pub mod quant;
pub mod safetensors;
pub mod simd;
pub mod skinny;
pub mod swiglu;
pub mod tokenizer;
