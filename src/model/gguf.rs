//! Reading GGUF files (v2 and v3): the metadata (architecture hyper-parameters, tokenizer,
//! chat template) and the tensor directory, and each tensor dequantised to f32 on request so
//! that a model loads one tensor at a time rather than the whole file at once.
//!
//! Layout: magic `GGUF`, version, tensor count, metadata count; the metadata key/value pairs;
//! the tensor infos (name, dimensions fastest-first, GGML type, offset); padding to the
//! alignment (`general.alignment`, default 32); the tensor data. All integers little-endian.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::{LoadCode, LoadError};
use super::quant::{self, Encoding};

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Meta {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Meta>),
}

impl Meta {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Meta::U8(v) => Some(v.into()),
            Meta::U16(v) => Some(v.into()),
            Meta::U32(v) => Some(v.into()),
            Meta::U64(v) => Some(v),
            Meta::I8(v) => u64::try_from(v).ok(),
            Meta::I16(v) => u64::try_from(v).ok(),
            Meta::I32(v) => u64::try_from(v).ok(),
            Meta::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Meta::F32(v) => Some(v.into()),
            Meta::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Meta::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Meta::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Meta]> {
        match self {
            Meta::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF lists them: fastest-varying first (`[columns, rows]` for a matrix).
    pub dims: Vec<u64>,
    /// The GGML type number (see `quant::Encoding`).
    pub ggml_type: u32,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn len(&self) -> u64 {
        self.dims.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row-major shape (slowest first), as a burn tensor or safetensors file has it.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An opened GGUF file: metadata and tensor directory in memory, data read on demand.
#[derive(Debug)]
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Meta>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute byte offset of the data section.
    pub data_start: u64,
    pub file_len: u64,
}

/// A reader that knows how much of the file is left, so that no announced length can make it
/// allocate more than the file holds.
struct Src {
    r: BufReader<File>,
    pos: u64,
    len: u64,
    path: PathBuf,
}

impl Src {
    fn truncated(&self, what: &str) -> LoadError {
        LoadError::new(
            LoadCode::Truncated,
            &self.path,
            format!("the file ends at byte {} inside {what}", self.len),
            "the download is incomplete or the file is damaged; fetch it again",
        )
    }
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, LoadError> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(self.truncated(what));
        }
        let mut b = vec![0u8; n as usize];
        self.r
            .read_exact(&mut b)
            .map_err(|_| self.truncated(what))?;
        self.pos += n;
        Ok(b)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], LoadError> {
        let mut b = [0u8; N];
        if N as u64 > self.len.saturating_sub(self.pos) {
            return Err(self.truncated(what));
        }
        self.r
            .read_exact(&mut b)
            .map_err(|_| self.truncated(what))?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self, what: &str) -> Result<u32, LoadError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, what: &str) -> Result<u64, LoadError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }
    fn string(&mut self, what: &str) -> Result<String, LoadError> {
        let n = self.u64(what)?;
        let b = self.bytes(n, what)?;
        // Token strings of some tokenizers are not valid UTF-8 on their own; keep them lossy
        // rather than refuse the file.
        Ok(String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Meta, LoadError> {
        let what = &format!("the metadata value of `{key}`");
        Ok(match ty {
            0 => Meta::U8(self.array::<1>(what)?[0]),
            1 => Meta::I8(self.array::<1>(what)?[0] as i8),
            2 => Meta::U16(u16::from_le_bytes(self.array::<2>(what)?)),
            3 => Meta::I16(i16::from_le_bytes(self.array::<2>(what)?)),
            4 => Meta::U32(self.u32(what)?),
            5 => Meta::I32(self.u32(what)? as i32),
            6 => Meta::F32(f32::from_le_bytes(self.array::<4>(what)?)),
            7 => Meta::Bool(self.array::<1>(what)?[0] != 0),
            8 => Meta::Str(self.string(what)?),
            9 if depth == 0 => {
                let inner = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: a count beyond what is left is a lie.
                if n > self.len.saturating_sub(self.pos) {
                    return Err(self.truncated(what));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(inner, key, depth + 1)?);
                }
                Meta::Array(items)
            }
            10 => Meta::U64(self.u64(what)?),
            11 => Meta::I64(self.u64(what)? as i64),
            12 => Meta::F64(f64::from_le_bytes(self.array::<8>(what)?)),
            other => {
                return Err(LoadError::new(
                    LoadCode::Metadata,
                    &self.path,
                    format!(
                        "metadata `{key}` has value type {other}, which GGUF does not define{}",
                        if other == 9 { " (nested arrays)" } else { "" }
                    ),
                    "the file is damaged or from a newer GGUF version",
                ));
            }
        })
    }
}

impl Gguf {
    /// Reads the header, metadata and tensor directory of `path`.
    pub fn open(path: &Path) -> Result<Gguf, LoadError> {
        let file = File::open(path).map_err(|e| {
            LoadError::new(
                LoadCode::Read,
                path,
                format!("cannot open: {e}"),
                "check the path and its permissions",
            )
        })?;
        let len = file
            .metadata()
            .map_err(|e| {
                LoadError::new(
                    LoadCode::Read,
                    path,
                    format!("cannot read: {e}"),
                    "check the path and its permissions",
                )
            })?
            .len();
        let mut s = Src {
            r: BufReader::with_capacity(1 << 20, file),
            pos: 0,
            len,
            path: path.to_path_buf(),
        };
        let magic = s
            .array::<4>("the magic number")
            .map_err(|_| not_gguf(path))?;
        if &magic != b"GGUF" {
            return Err(not_gguf(path));
        }
        let version = s.u32("the header")?;
        if !(2..=3).contains(&version) {
            return Err(LoadError::new(
                LoadCode::GgufVersion,
                path,
                format!("GGUF version {version}; synthpipe reads versions 2 and 3"),
                "convert the model with a current llama.cpp (`convert_hf_to_gguf.py`)",
            ));
        }
        let n_tensors = s.u64("the header")?;
        let n_meta = s.u64("the header")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_meta {
            let key = s.string("a metadata key")?;
            let ty = s.u32("a metadata type")?;
            let v = s.value(ty, &key, 0)?;
            metadata.insert(key, v);
        }
        // A tensor info takes at least 24 bytes.
        if n_tensors > len.saturating_sub(s.pos) / 24 {
            return Err(s.truncated("the tensor directory"));
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = s.string("a tensor name")?;
            let n_dims = s.u32("a tensor's dimensions")?;
            if n_dims > 8 {
                return Err(LoadError::new(
                    LoadCode::TensorBounds,
                    path,
                    format!("tensor `{name}` has {n_dims} dimensions"),
                    "the file is damaged",
                ));
            }
            let mut dims = Vec::new();
            for _ in 0..n_dims {
                dims.push(s.u64("a tensor's dimensions")?);
            }
            let ggml_type = s.u32("a tensor's type")?;
            let offset = s.u64("a tensor's offset")?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let align = metadata
            .get("general.alignment")
            .and_then(Meta::as_u64)
            .filter(|&a| a > 0 && a <= 1 << 20)
            .unwrap_or(32);
        let data_start = s.pos.div_ceil(align) * align;
        let g = Gguf {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_start,
            file_len: len,
        };
        for t in &g.tensors {
            g.extent(t)?;
        }
        Ok(g)
    }

    pub fn meta(&self, key: &str) -> Option<&Meta> {
        self.metadata.get(key)
    }

    /// A required metadata key, or a `metadata` error naming it.
    pub fn require(&self, key: &str) -> Result<&Meta, LoadError> {
        self.meta(key).ok_or_else(|| {
            LoadError::new(
                LoadCode::Metadata,
                &self.path,
                format!("metadata key `{key}` is missing"),
                "the file lacks hyper-parameters this architecture needs; convert it with a current llama.cpp",
            )
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The encoding and absolute byte range of a tensor, checked against the file.
    fn extent(&self, t: &TensorInfo) -> Result<(Encoding, u64, u64), LoadError> {
        let enc = Encoding::from_ggml(t.ggml_type).ok_or_else(|| {
            LoadError::new(
                LoadCode::TensorType,
                &self.path,
                format!("tensor `{}` is stored as {}, which synthpipe cannot dequantise", t.name, Encoding::ggml_name(t.ggml_type)),
                "synthpipe reads F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K; requantise with llama.cpp's `llama-quantize` (e.g. to Q8_0)",
            )
        })?;
        let n = t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let bytes = n.and_then(|n| enc.bytes_for(n));
        let start = self.data_start.checked_add(t.offset);
        match (bytes, start) {
            (Some(b), Some(s)) if s.checked_add(b).is_some_and(|e| e <= self.file_len) => {
                Ok((enc, s, b))
            }
            (None, _) => Err(LoadError::new(
                LoadCode::TensorBounds,
                &self.path,
                format!(
                    "tensor `{}` has {} values, not a whole number of {} blocks",
                    t.name,
                    n.map_or("too many".into(), |n| n.to_string()),
                    enc.name()
                ),
                "the file is damaged",
            )),
            _ => Err(LoadError::new(
                LoadCode::Truncated,
                &self.path,
                format!(
                    "tensor `{}` lies beyond the end of the file ({} bytes)",
                    t.name, self.file_len
                ),
                "the download is incomplete or the file is damaged; fetch it again",
            )),
        }
    }

    /// A tensor dequantised to f32, with its row-major shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        let (shape, enc, raw) = self.read_raw(name)?;
        let values = Gguf::decode(&shape, enc, &raw);
        Ok((shape, values))
    }

    /// The f32 values of a tensor's bytes as [`Gguf::read_raw`] returns them.
    pub fn decode(shape: &[usize], enc: Encoding, raw: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; shape.iter().product()];
        quant::dequantize(enc, raw, &mut out);
        out
    }

    /// A tensor's bytes as the file stores them, with its row-major shape and encoding.
    pub fn read_raw(&self, name: &str) -> Result<(Vec<usize>, Encoding, Vec<u8>), LoadError> {
        let t = self.tensor(name).ok_or_else(|| {
            LoadError::new(
                LoadCode::MissingTensor,
                &self.path,
                format!("tensor `{name}` is missing"),
                "the file does not hold a complete model of its architecture",
            )
        })?;
        let (enc, start, len) = self.extent(t)?;
        let mut f = File::open(&self.path).map_err(|e| {
            LoadError::new(
                LoadCode::Read,
                &self.path,
                format!("cannot open: {e}"),
                "check the path and its permissions",
            )
        })?;
        f.seek(SeekFrom::Start(start)).map_err(|e| {
            LoadError::new(
                LoadCode::Read,
                &self.path,
                format!("cannot seek: {e}"),
                "check the file",
            )
        })?;
        let mut raw = vec![0u8; len as usize];
        f.read_exact(&mut raw).map_err(|_| {
            LoadError::new(
                LoadCode::Truncated,
                &self.path,
                format!("the file ends inside tensor `{name}`"),
                "the download is incomplete or the file is damaged; fetch it again",
            )
        })?;
        Ok((t.shape(), enc, raw))
    }
}

fn not_gguf(path: &Path) -> LoadError {
    LoadError::new(
        LoadCode::NotGguf,
        path,
        "not a GGUF file (it does not start with `GGUF`)",
        "give a `.gguf` file, or a Hugging Face model folder",
    )
}
