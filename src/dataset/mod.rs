//! Datasets as files: the folders `generate` writes (docs/dataset.md) and the datasets
//! derived from them (`derive`: split and mix).

pub mod derive;
