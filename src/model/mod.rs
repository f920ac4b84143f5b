//! Language models: reading checkpoints (GGUF with its quantised encodings; later Hugging
//! Face folders) into f32 tensors, with coded errors for every way a file can be wrong.

pub mod config;
pub mod error;
pub mod gguf;
pub mod quant;
pub mod safetensors;
