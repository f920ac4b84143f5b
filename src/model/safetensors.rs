//! The safetensors format: an 8-byte little-endian header length, a JSON header naming each
//! tensor's dtype, shape and byte range, then the data. Reading (F32, F16, BF16 to f32, one
//! tensor at a time; sharded checkpoints through `model.safetensors.index.json`) and writing
//! (f32 or bf16).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use super::error::{LoadCode, LoadError};
use super::quant::{bf16_to_f32, f16_to_f32};

/// Where one tensor lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file: PathBuf,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Absolute byte range in `file`.
    pub start: u64,
    pub end: u64,
}

/// The tensors of one checkpoint, possibly spread over several files.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Entry>,
}

fn bad(file: &Path, code: LoadCode, msg: impl Into<String>) -> LoadError {
    LoadError::new(
        code,
        file,
        msg,
        "the file is damaged or not a safetensors file; download it again",
    )
}

/// Reads the header of one `.safetensors` file.
pub fn read_header(file: &Path) -> Result<BTreeMap<String, Entry>, LoadError> {
    let mut f = File::open(file).map_err(|e| {
        LoadError::new(
            LoadCode::Read,
            file,
            format!("cannot open: {e}"),
            "check the path and its permissions",
        )
    })?;
    let len = f
        .metadata()
        .map_err(|e| {
            LoadError::new(
                LoadCode::Read,
                file,
                format!("cannot read: {e}"),
                "check the path",
            )
        })?
        .len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| {
        bad(
            file,
            LoadCode::Truncated,
            "the file is shorter than a safetensors header",
        )
    })?;
    let n = u64::from_le_bytes(n);
    if n > len.saturating_sub(8) || n > 100 << 20 {
        return Err(bad(
            file,
            LoadCode::Truncated,
            format!("the header announces {n} bytes but the file has {len}"),
        ));
    }
    let mut text = vec![0u8; n as usize];
    f.read_exact(&mut text)
        .map_err(|_| bad(file, LoadCode::Truncated, "the file ends inside its header"))?;
    let header: Json = serde_json::from_slice(&text).map_err(|e| {
        bad(
            file,
            LoadCode::Metadata,
            format!("the header is not JSON: {e}"),
        )
    })?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad(file, LoadCode::Metadata, "the header is not a JSON object"))?;
    let data = 8 + n;
    let mut out = BTreeMap::new();
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t["dtype"].as_str().unwrap_or_default().to_string();
        let shape: Option<Vec<usize>> = t["shape"]
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let offs: Option<Vec<u64>> = t["data_offsets"]
            .as_array()
            .and_then(|a| a.iter().map(Json::as_u64).collect());
        let (Some(shape), Some(offs)) = (shape, offs) else {
            return Err(bad(
                file,
                LoadCode::Metadata,
                format!("tensor `{name}` has no valid shape or data_offsets"),
            ));
        };
        let width = match dtype.as_str() {
            "F32" => 4,
            "F16" | "BF16" => 2,
            other => {
                return Err(LoadError::new(
                    LoadCode::TensorType,
                    file,
                    format!("tensor `{name}` is {other}; synthpipe reads F32, F16 and BF16"),
                    "save the checkpoint in one of these dtypes (e.g. `model.to(torch.bfloat16)`)",
                ));
            }
        };
        let count = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let (start, end) = (
            offs.first().copied().unwrap_or(0),
            offs.get(1).copied().unwrap_or(0),
        );
        let fits = offs.len() == 2
            && count.and_then(|c| c.checked_mul(width)) == Some(end.saturating_sub(start))
            && start <= end
            && data.checked_add(end).is_some_and(|e| e <= len);
        if !fits {
            return Err(bad(
                file,
                if data.saturating_add(end) > len {
                    LoadCode::Truncated
                } else {
                    LoadCode::TensorBounds
                },
                format!(
                    "tensor `{name}` ({dtype} {shape:?}) does not fit bytes {start}..{end} of the data (file: {len} bytes)"
                ),
            ));
        }
        out.insert(
            name.clone(),
            Entry {
                file: file.to_path_buf(),
                dtype,
                shape,
                start: data + start,
                end: data + end,
            },
        );
    }
    Ok(out)
}

impl Checkpoint {
    /// The tensors of a model folder: `model.safetensors`, or the shards that
    /// `model.safetensors.index.json` lists.
    pub fn open(dir: &Path) -> Result<Checkpoint, LoadError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let mut files = Vec::new();
        if index.is_file() {
            let text = std::fs::read(&index).map_err(|e| {
                LoadError::new(
                    LoadCode::Read,
                    &index,
                    format!("cannot read: {e}"),
                    "check the file",
                )
            })?;
            let j: Json = serde_json::from_slice(&text)
                .map_err(|e| bad(&index, LoadCode::Metadata, format!("not JSON: {e}")))?;
            let map = j["weight_map"]
                .as_object()
                .ok_or_else(|| bad(&index, LoadCode::Metadata, "no `weight_map`"))?;
            for f in map.values().filter_map(Json::as_str) {
                let p = dir.join(f);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
        } else if single.is_file() {
            files.push(single);
        } else {
            return Err(LoadError::new(
                LoadCode::Read,
                dir,
                "no model.safetensors or model.safetensors.index.json",
                "give a Hugging Face model folder with safetensors weights, or a .gguf file",
            ));
        }
        let mut ck = Checkpoint::default();
        for f in files {
            ck.tensors.extend(read_header(&f)?);
        }
        Ok(ck)
    }

    /// A tensor as f32, with its shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        let e = self.tensors.get(name).ok_or_else(|| {
            LoadError::new(
                LoadCode::MissingTensor,
                Path::new(name),
                format!("tensor `{name}` is missing from the checkpoint"),
                "the checkpoint does not match its config.json",
            )
        })?;
        let mut f = File::open(&e.file).map_err(|x| {
            LoadError::new(
                LoadCode::Read,
                &e.file,
                format!("cannot open: {x}"),
                "check the file",
            )
        })?;
        f.seek(SeekFrom::Start(e.start)).map_err(|x| {
            LoadError::new(
                LoadCode::Read,
                &e.file,
                format!("cannot seek: {x}"),
                "check the file",
            )
        })?;
        let mut raw = vec![0u8; (e.end - e.start) as usize];
        f.read_exact(&mut raw).map_err(|_| {
            bad(
                &e.file,
                LoadCode::Truncated,
                format!("the file ends inside tensor `{name}`"),
            )
        })?;
        let values = match e.dtype.as_str() {
            "F32" => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            "F16" => raw
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => raw
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        };
        Ok((e.shape.clone(), values))
    }
}

/// A named tensor: name, row-major shape, values.
pub type Named = (String, Vec<usize>, Vec<f32>);

/// f32 → bf16 with round-to-nearest-even (NaN stays NaN).
pub fn f32_to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        return ((b >> 16) as u16) | 0x40;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// A tensor to write whose values are made only when it is written: a model's weights are
/// read back from the device one at a time, so saving never holds a second copy of them all.
pub struct Lazy<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    /// The values, row-major in `shape`, or with `transposed` in `shape` reversed (a 2-D
    /// tensor then written transposed, without a transposed copy).
    pub values: Box<dyn Fn() -> Result<Vec<f32>, String> + 'a>,
    pub transposed: bool,
}

/// Writes tensors (name, shape, values) to one safetensors file, as F32 or BF16, names sorted.
pub fn write(path: &Path, tensors: &[Named], bf16: bool) -> std::io::Result<()> {
    let lazy: Vec<Lazy> = tensors
        .iter()
        .map(|(name, shape, values)| Lazy {
            name: name.clone(),
            shape: shape.clone(),
            values: Box::new(move || Ok(values.clone())),
            transposed: false,
        })
        .collect();
    write_lazy(path, lazy, bf16)
}

/// [`write`] for tensors made one at a time as they are written; a tensor whose values do not
/// match its shape, or that cannot be made, fails the write (nothing is left at `path`).
pub fn write_lazy(path: &Path, mut tensors: Vec<Lazy>, bf16: bool) -> std::io::Result<()> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let width = if bf16 { 2 } else { 4 };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0usize;
    for t in &tensors {
        let n = t.shape.iter().product::<usize>() * width;
        header.insert(
            t.name.clone(),
            json!({"dtype": if bf16 { "BF16" } else { "F32" }, "shape": t.shape, "data_offsets": [off, off + n]}),
        );
        off += n;
    }
    let mut text = serde_json::to_vec(&Json::Object(header)).map_err(std::io::Error::other)?;
    // Align the data to 8 bytes, as the reference writer does.
    while !(text.len() + 8).is_multiple_of(8) {
        text.push(b' ');
    }
    let tmp = path.with_extension("safetensors.tmp");
    let written = (|| {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        f.write_all(&(text.len() as u64).to_le_bytes())?;
        f.write_all(&text)?;
        for t in &tensors {
            let values = (t.values)().map_err(std::io::Error::other)?;
            if values.len() != t.shape.iter().product::<usize>() {
                return Err(std::io::Error::other(format!(
                    "tensor `{}` has {} values for shape {:?}",
                    t.name,
                    values.len(),
                    t.shape
                )));
            }
            let mut put = |v: f32| {
                if bf16 {
                    f.write_all(&f32_to_bf16(v).to_le_bytes())
                } else {
                    f.write_all(&v.to_le_bytes())
                }
            };
            match (t.transposed, t.shape.as_slice()) {
                (true, &[rows, cols]) => {
                    // `values` is `[cols, rows]`: gathered a block of output rows at a time, so
                    // the reads stay in cache.
                    const BLOCK: usize = 64;
                    let mut block = Vec::with_capacity(BLOCK * cols);
                    for r0 in (0..rows).step_by(BLOCK) {
                        let n = BLOCK.min(rows - r0);
                        block.clear();
                        block.resize(n * cols, 0.0);
                        for c in 0..cols {
                            for (i, &v) in
                                values[c * rows + r0..c * rows + r0 + n].iter().enumerate()
                            {
                                block[i * cols + c] = v;
                            }
                        }
                        for &v in &block {
                            put(v)?;
                        }
                    }
                }
                _ => {
                    for &v in &values {
                        put(v)?;
                    }
                }
            }
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(tmp, path)
}
