//! Helpers shared by the integration tests: fixture discovery, running the binary, scratch
//! folders and a deterministic RNG.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `*.rules` files in a directory (relative to the crate root), sorted.
pub fn rule_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    v.sort();
    v
}

pub fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The records of a JSON Lines file `f` in `dir` (a dataset file).
pub fn jsonl(dir: &Path, f: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(f))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.join(f).display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// SplitMix64: tiny, seeded, portable — enough to drive mutation tests reproducibly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A rule file of at least `bytes` bytes: many entity types and relations, all valid.
pub fn large_rules(bytes: usize) -> String {
    let mut s = String::from("pool names = [\"a\", \"b\", \"c\"];\n");
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "entity e{i} count 3 {{\n    name: key pool names;\n    size: int 1..{n} {{\n        say \"size\" / \"sizes\";\n    }}\n}}\n\n\
             relation r{i}(a: e{i}, b: e{i}) symmetric {{\n    generate random_graph(mean_degree: 2.5);\n    say b: \"partner {i}\" / \"partners {i}\";\n    weight 1;\n}}\n\n\
             relation d{i}(a: e{i}, c: e{i})\n    := r{i}(a: a, b: x), r{i}(a: x, b: c), a != c, c.size > a.size\n{{\n    say c: \"second partner {i}\" / \"second partners {i}\";\n    weight 2;\n}}\n\n",
            n = 100 + i
        ));
        i += 1;
    }
    s
}

/// Runs the built `synthpipe` binary in `cwd`.
pub fn synthpipe(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthpipe"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Exit status and both streams, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh, empty scratch folder, unique to this test process.
pub fn tmpdir(suite: &str, name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("synthpipe-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// A scratch folder, removed when dropped — unless its test is failing: then it stays, to be
/// looked at. (Pipeline stores and model copies left behind by every run filled /tmp.)
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The real Qwen2.5-Coder-0.5B-Instruct GGUF that tests/models/fetch.sh downloads: `None`
/// (with a note) when it was not fetched locally; in CI, where .ci/run fetches it, a missing
/// file fails the test instead of skipping it.
pub fn qwen_gguf() -> Option<PathBuf> {
    let dir = std::env::var_os("SYNTHPIPE_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/synthpipe-models"))
        })?;
    needed(
        dir.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        "tests/models/fetch.sh",
    )
}

/// `path` if it is there; else `None` with a note saying how to get it (`how`) — or, in CI,
/// where .ci/run provides it, a failure: a test must not pass there by skipping.
pub fn needed(path: PathBuf, how: &str) -> Option<PathBuf> {
    if path.exists() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is missing: .ci/run provides it ({how})", path.display());
    } else {
        eprintln!("skipping: {} is not here ({how})", path.display());
        None
    }
}

/// Whether a Vulkan driver is installed for wgpu (on a CPU-only machine: mesa's lavapipe,
/// which .ci/run installs). Missing in CI is a failure, not a skip.
pub fn vulkan_available() -> bool {
    let found = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()));
    if !found && std::env::var_os("CI").is_some() {
        panic!("no Vulkan driver: .ci/run installs mesa-vulkan-drivers and libvulkan1");
    }
    if !found {
        eprintln!("skipping: no Vulkan driver (apt install mesa-vulkan-drivers libvulkan1)");
    }
    found
}

/// Writes a GGUF v3 file: `meta` in order, then F32 tensors given row-major (`shape` as
/// Hugging Face writes it; GGUF lists dimensions fastest-varying first).
pub fn write_gguf(
    path: &Path,
    meta: &[(String, synthpipe::model::gguf::Meta)],
    tensors: &[(String, Vec<usize>, Vec<f32>)],
) {
    use synthpipe::model::gguf::Meta;
    fn s(b: &mut Vec<u8>, t: &str) {
        b.extend((t.len() as u64).to_le_bytes());
        b.extend(t.as_bytes());
    }
    fn type_of(m: &Meta) -> u32 {
        match m {
            Meta::U8(_) => 0,
            Meta::I8(_) => 1,
            Meta::U16(_) => 2,
            Meta::I16(_) => 3,
            Meta::U32(_) => 4,
            Meta::I32(_) => 5,
            Meta::F32(_) => 6,
            Meta::Bool(_) => 7,
            Meta::Str(_) => 8,
            Meta::Array(_) => 9,
            Meta::U64(_) => 10,
            Meta::I64(_) => 11,
            Meta::F64(_) => 12,
        }
    }
    fn value(b: &mut Vec<u8>, m: &Meta) {
        match m {
            Meta::U8(v) => b.push(*v),
            Meta::I8(v) => b.extend(v.to_le_bytes()),
            Meta::U16(v) => b.extend(v.to_le_bytes()),
            Meta::I16(v) => b.extend(v.to_le_bytes()),
            Meta::U32(v) => b.extend(v.to_le_bytes()),
            Meta::I32(v) => b.extend(v.to_le_bytes()),
            Meta::U64(v) => b.extend(v.to_le_bytes()),
            Meta::I64(v) => b.extend(v.to_le_bytes()),
            Meta::F32(v) => b.extend(v.to_le_bytes()),
            Meta::F64(v) => b.extend(v.to_le_bytes()),
            Meta::Bool(v) => b.push(u8::from(*v)),
            Meta::Str(v) => s(b, v),
            Meta::Array(items) => {
                b.extend(items.first().map_or(8, type_of).to_le_bytes());
                b.extend((items.len() as u64).to_le_bytes());
                for i in items {
                    value(b, i);
                }
            }
        }
    }
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((meta.len() as u64).to_le_bytes());
    for (k, m) in meta {
        s(&mut b, k);
        b.extend(type_of(m).to_le_bytes());
        value(&mut b, m);
    }
    let mut offset = 0u64;
    for (name, shape, values) in tensors {
        s(&mut b, name);
        b.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            b.extend((*d as u64).to_le_bytes());
        }
        b.extend(0u32.to_le_bytes());
        b.extend(offset.to_le_bytes());
        offset += (values.len() as u64 * 4).next_multiple_of(32);
    }
    b.resize(b.len().next_multiple_of(32), 0);
    for (_, _, values) in tensors {
        let start = b.len();
        for v in values {
            b.extend(v.to_le_bytes());
        }
        b.resize(start + (values.len() * 4).next_multiple_of(32), 0);
    }
    std::fs::write(path, b).unwrap();
}

/// A tiny Qwen3 with a BPE tokenizer trained on a few sentences; weights larger than the
/// usual init so that log-probabilities differ between tokens.
pub fn tiny_model(device: &burn::prelude::Device) -> synthpipe::model::load::Model {
    tiny_model_of(synthpipe::model::config::Arch::Qwen3, 2, true, 3, device)
}

/// [`tiny_model`] of another architecture, depth, output layer (tied to the embeddings or
/// its own) and weight seed.
pub fn tiny_model_of(
    arch: synthpipe::model::config::Arch,
    layers: usize,
    tie_embeddings: bool,
    seed: u64,
    device: &burn::prelude::Device,
) -> synthpipe::model::load::Model {
    let texts: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "The mother of person {i} is person {}. Who is it?",
                i * 7 % 13
            )
        })
        .collect();
    let tok = synthpipe::model::tokenizer::Tokenizer::train(texts.into_iter(), 300).unwrap();
    let shape = synthpipe::model::init::Shape {
        arch,
        layers,
        hidden: 32,
        heads: 4,
        kv_heads: 2,
        head_dim: None,
        intermediate: Some(64),
        context: 256,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-6,
        tie_embeddings,
    };
    let cfg = shape
        .config(tok.vocab_size(), tok.eos_token_ids.clone())
        .unwrap();
    synthpipe::model::load::Model::init(cfg, tok, seed, 0.3, device).unwrap()
}

/// A tensor's values as f32, in order.
pub fn values<const D: usize>(t: burn::prelude::Tensor<D>) -> Vec<f32> {
    t.inner()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}
