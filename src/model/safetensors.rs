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

/// Makes rows `range` of a tensor's first dimension, row-major.
pub type Rows<'a> = Box<dyn Fn(std::ops::Range<usize>) -> Result<Vec<f32>, String> + 'a>;

/// A tensor to write whose values are made a block of rows at a time, as they are written:
/// a model's weights are read back from the device piece by piece, so saving never holds a
/// second copy of a whole weight, let alone of the model.
pub struct Lazy<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    /// Rows `range` of the first dimension (elements, for a 1-D tensor), row-major.
    pub rows: Rows<'a>,
}

/// Writes tensors (name, shape, values) to one safetensors file, as F32 or BF16, names sorted.
pub fn write(path: &Path, tensors: &[Named], bf16: bool) -> std::io::Result<()> {
    let lazy: Vec<Lazy> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let row: usize = shape.iter().skip(1).product();
            Lazy {
                name: name.clone(),
                shape: shape.clone(),
                rows: Box::new(move |r| Ok(values[r.start * row..r.end * row].to_vec())),
            }
        })
        .collect();
    write_lazy(path, lazy, bf16)
}

/// Values per block of rows asked of a [`Lazy`] tensor (4 MiB of f32).
const BLOCK_VALUES: usize = 1 << 20;

/// [`write`] for tensors made a block of rows at a time as they are written; a block of the
/// wrong size, or one that cannot be made, fails the write (nothing is left at `path`).
pub fn write_lazy(path: &Path, tensors: Vec<Lazy>, bf16: bool) -> std::io::Result<()> {
    write_blocks(path, tensors, bf16, BLOCK_VALUES)
}

/// [`write_lazy`] asking for blocks of about `block_values` values (at least a row).
pub fn write_blocks(
    path: &Path,
    mut tensors: Vec<Lazy>,
    bf16: bool,
    block_values: usize,
) -> std::io::Result<()> {
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
        let mut bytes = Vec::new();
        for t in &tensors {
            let rows = t.shape.first().copied().unwrap_or(1);
            let row: usize = t.shape.iter().skip(1).product();
            let step = (block_values / row.max(1)).max(1);
            for r0 in (0..rows).step_by(step) {
                let r = r0..(r0 + step).min(rows);
                let values = (t.rows)(r.clone()).map_err(std::io::Error::other)?;
                if values.len() != r.len() * row {
                    return Err(std::io::Error::other(format!(
                        "rows {r:?} of tensor `{}` have {} values, not {}",
                        t.name,
                        values.len(),
                        r.len() * row
                    )));
                }
                bytes.clear();
                for v in values {
                    if bf16 {
                        bytes.extend_from_slice(&f32_to_bf16(v).to_le_bytes());
                    } else {
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                }
                f.write_all(&bytes)?;
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
