//! The content-addressed store under `.synthpipe/`: stage outputs by cache key, run records,
//! locks, scratch space, per-pipeline state for `status`, and run logs.
//!
//! Layout (`KEY` is the key's 64 hex digits):
//! - `outputs/KEY/OUTPUT/…` — a stage's outputs, renamed into place from `tmp/` when complete.
//! - `records/KEY.json` — the run record, written last: an output without one does not exist.
//! - `tmp/KEY-PID-N/` — where a stage writes; leftovers of dead runs are swept under the key lock.
//! - `scratch/KEY/` — resumable state of long stages; never an output.
//! - `locks/KEY.lock` — held (flock) while a key is built, so it is built once.
//! - `store.lock` — held shared by runs, exclusively by `gc` and `clean`.
//! - `state/PIPELINE/STAGE.json` — the key and key inputs of each stage's last run, for `status`.
//! - `logs/TIME-PID.jsonl` — one log per run.

use crate::util::fsio::{sync_dir, write_atomic};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One file of an output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Digest of the file list (paths, sizes, digests): what downstream keys use.
    pub digest: String,
    pub files: Vec<FileEntry>,
}

/// The commit point of a built stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub preimage: Json,
    pub outputs: BTreeMap<String, OutputRecord>,
    pub pipeline: String,
    pub stage: String,
    pub synthpipe_version: String,
    pub seconds: f64,
    pub finished_unix: u64,
}

/// How a stored output differs from its run record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The run record exists but cannot be read.
    BadRecord(String),
    Missing {
        output: String,
        path: String,
    },
    Size {
        output: String,
        path: String,
        recorded: u64,
        found: u64,
    },
    Digest {
        output: String,
        path: String,
    },
    /// A file the record does not list.
    Extra {
        output: String,
        path: String,
    },
}

impl Damage {
    /// The stable diagnostic code.
    pub fn code(&self) -> &'static str {
        match self {
            Damage::BadRecord(_) => "synthpipe::store::bad_record",
            Damage::Missing { .. } => "synthpipe::store::missing_file",
            Damage::Size { .. } => "synthpipe::store::size_mismatch",
            Damage::Digest { .. } => "synthpipe::store::digest_mismatch",
            Damage::Extra { .. } => "synthpipe::store::extra_file",
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::BadRecord(e) => write!(f, "the run record cannot be read: {e}"),
            Damage::Missing { output, path } => write!(f, "`{output}/{path}` is missing"),
            Damage::Size {
                output,
                path,
                recorded,
                found,
            } => write!(
                f,
                "`{output}/{path}` has {found} bytes, its run record {recorded}"
            ),
            Damage::Digest { output, path } => write!(
                f,
                "`{output}/{path}` has its recorded size but other bytes (its blake3 digest differs)"
            ),
            Damage::Extra { output, path } => {
                write!(f, "`{output}/{path}` is not in the run record")
            }
        }
    }
}

/// What `status` compares against: the key and its inputs at a stage's last run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageState {
    pub key: String,
    pub preimage: Json,
}

pub struct Store {
    pub root: PathBuf,
}

/// The hex part of a `b3:` key, used in file names.
pub fn hex(key: &str) -> &str {
    key.strip_prefix("b3:").unwrap_or(key)
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> io::Result<Store> {
        for sub in [
            "outputs", "records", "tmp", "scratch", "locks", "state", "logs",
        ] {
            fs::create_dir_all(root.join(sub))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn output_dir(&self, key: &str) -> PathBuf {
        self.root.join("outputs").join(hex(key))
    }
    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("records").join(format!("{}.json", hex(key)))
    }
    pub fn scratch_dir(&self, key: &str) -> PathBuf {
        self.root.join("scratch").join(hex(key))
    }
    fn state_path(&self, pipeline: &str, stage: &str) -> PathBuf {
        self.root
            .join("state")
            .join(pipeline)
            .join(format!("{stage}.json"))
    }

    /// The record of `key` if the key is built: the record parses and every file it lists is
    /// there with its size.
    pub fn record(&self, key: &str) -> Option<Record> {
        let rec = self.read_record(key).ok()??;
        let dir = self.output_dir(key);
        let intact = rec.outputs.iter().all(|(name, o)| {
            o.files.iter().all(|f| {
                fs::metadata(dir.join(name).join(&f.path)).is_ok_and(|m| m.len() == f.size)
            })
        });
        intact.then_some(rec)
    }

    /// Rehashes every file of a built key against its run record: `None` when the key has
    /// no record (not built, nothing to verify), else the record if it reads and the damage.
    pub fn verify(&self, key: &str) -> Option<(Option<Record>, Vec<Damage>)> {
        let rec = match self.read_record(key) {
            Ok(None) => return None,
            Ok(Some(r)) => r,
            Err(d) => return Some((None, vec![d])),
        };
        let mut damage = Vec::new();
        for name in rec.outputs.keys() {
            damage.extend(self.verify_output(&rec, name));
        }
        Some((Some(rec), damage))
    }

    /// The run record of `key` as written, without looking at the outputs.
    pub fn read_record(&self, key: &str) -> Result<Option<Record>, Damage> {
        let text = match fs::read(self.record_path(key)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Damage::BadRecord(e.to_string())),
        };
        let rec: Record =
            serde_json::from_slice(&text).map_err(|e| Damage::BadRecord(e.to_string()))?;
        if rec.key != key {
            return Err(Damage::BadRecord(format!(
                "it is the record of {}",
                rec.key
            )));
        }
        Ok(Some(rec))
    }

    /// Rehashes one output of a record: missing, resized, changed and extra files.
    pub fn verify_output(&self, rec: &Record, output: &str) -> Vec<Damage> {
        let Some(o) = rec.outputs.get(output) else {
            return vec![Damage::Missing {
                output: output.into(),
                path: String::new(),
            }];
        };
        let dir = self.output_dir(&rec.key).join(output);
        let mut damage = Vec::new();
        for f in &o.files {
            let p = dir.join(&f.path);
            let (output, path) = (output.to_string(), f.path.clone());
            match fs::metadata(&p) {
                Err(_) => damage.push(Damage::Missing { output, path }),
                Ok(m) if m.len() != f.size => damage.push(Damage::Size {
                    output,
                    path,
                    recorded: f.size,
                    found: m.len(),
                }),
                Ok(_) => match digest_file(&p) {
                    Ok(d) if d == f.digest => {}
                    Ok(_) => damage.push(Damage::Digest { output, path }),
                    Err(_) => damage.push(Damage::Missing { output, path }),
                },
            }
        }
        let listed: std::collections::BTreeSet<&str> =
            o.files.iter().map(|f| f.path.as_str()).collect();
        for (rel, _) in list_files(&dir).unwrap_or_default() {
            if !listed.contains(rel.as_str()) {
                damage.push(Damage::Extra {
                    output: output.into(),
                    path: rel,
                });
            }
        }
        damage
    }

    /// Every key with a run record, sorted.
    pub fn recorded_keys(&self) -> io::Result<Vec<String>> {
        let mut keys = self.keys()?;
        keys.retain(|k| self.record_path(k).is_file());
        Ok(keys)
    }

    /// Takes the build lock of `key`, calling `waiting` with the holder's note if another
    /// process (or stage) holds it. Released when the guard drops, or when the process dies.
    pub fn lock_key(
        &self,
        key: &str,
        note: &str,
        waiting: impl FnOnce(&str),
    ) -> io::Result<KeyLock> {
        let path = self.root.join("locks").join(format!("{}.lock", hex(key)));
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                waiting(holder.trim());
                file.lock()?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        file.set_len(0)?;
        let _ = file.write_all(note.as_bytes());
        Ok(KeyLock { _file: file })
    }

    /// Removes what killed builds left in `tmp/`: a folder whose key nobody is building (its
    /// lock is free) is dead. Called at the start of every run.
    pub fn sweep(&self) -> io::Result<()> {
        for e in fs::read_dir(self.root.join("tmp"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            let Some((h, _)) = name.split_once('-') else {
                continue;
            };
            let lock = self.root.join("locks").join(format!("{h}.lock"));
            let free = match fs::OpenOptions::new().write(true).open(&lock) {
                Ok(f) => f.try_lock().is_ok(),
                // No lock file: nobody ever locked it.
                Err(_) => true,
            };
            if free {
                fs::remove_dir_all(e.path())?;
            }
        }
        Ok(())
    }

    /// Held shared by every run; `gc` and `clean` take it exclusively so they never delete
    /// what a run is building or reading.
    pub fn lock_store(&self, exclusive: bool) -> io::Result<Option<KeyLock>> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("store.lock"))?;
        let got = if exclusive {
            file.try_lock()
        } else {
            file.lock_shared().map_err(fs::TryLockError::Error)
        };
        match got {
            Ok(()) => Ok(Some(KeyLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// A fresh temporary folder for building `key`, after removing what dead builds of the
    /// same key left behind (the caller holds the key's lock, so they are dead).
    pub fn tmp_dir(&self, key: &str) -> io::Result<PathBuf> {
        let tmp = self.root.join("tmp");
        let prefix = format!("{}-", hex(key));
        for e in fs::read_dir(&tmp)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                fs::remove_dir_all(e.path())?;
            }
        }
        let dir = tmp.join(format!("{}-{}", hex(key), std::process::id()));
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Moves a finished build into place and writes its record last. The caller holds the
    /// key's lock.
    pub fn commit(&self, tmp: &Path, rec: &Record) -> io::Result<()> {
        for name in rec.outputs.keys() {
            sync_tree(&tmp.join(name))?;
        }
        let dest = self.output_dir(&rec.key);
        // A previous build of the key without a record (a crash, or a forced rebuild):
        // unlink the record first so a half-replaced output is never seen as complete.
        let _ = fs::remove_file(self.record_path(&rec.key));
        if dest.exists() {
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(tmp, &dest)?;
        sync_dir(&self.root.join("outputs"));
        let text = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        write_atomic(&self.record_path(&rec.key), &text)
    }

    pub fn state(&self, pipeline: &str, stage: &str) -> Option<StageState> {
        let text = fs::read(self.state_path(pipeline, stage)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn set_state(&self, pipeline: &str, stage: &str, st: &StageState) -> io::Result<()> {
        let path = self.state_path(pipeline, stage);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(st).map_err(io::Error::other)?,
        )
    }

    /// Every built or half-built key in the store.
    pub fn keys(&self) -> io::Result<Vec<String>> {
        let mut keys = std::collections::BTreeSet::new();
        for (sub, ext) in [("records", ".json"), ("outputs", ""), ("scratch", "")] {
            for e in fs::read_dir(self.root.join(sub))? {
                let name = e?.file_name().to_string_lossy().to_string();
                if let Some(h) = name.strip_suffix(ext)
                    && h.len() == 64
                    && h.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    keys.insert(format!("b3:{h}"));
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Bytes a key occupies (outputs and scratch).
    pub fn size_of(&self, key: &str) -> u64 {
        tree_size(&self.output_dir(key)) + tree_size(&self.scratch_dir(key))
    }

    /// Removes a key: record first, so nothing half-removed ever counts as built.
    pub fn remove(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.record_path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for dir in [self.output_dir(key), self.scratch_dir(key)] {
            if dir.exists() {
                fs::remove_dir_all(dir)?;
            }
        }
        let _ = fs::remove_file(self.root.join("locks").join(format!("{}.lock", hex(key))));
        Ok(())
    }
}

/// A held lock; released on drop.
pub struct KeyLock {
    _file: File,
}

fn tree_size(dir: &Path) -> u64 {
    list_files(dir)
        .map(|fs| {
            fs.iter()
                .map(|(_, p)| fs::metadata(p).map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Files under `dir` as (relative path with `/`, full path), sorted by relative path.
fn list_files(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let ty = e.file_type()?;
            let p = e.path();
            if ty.is_dir() {
                todo.push(p);
            } else if ty.is_file() {
                let rel = p
                    .strip_prefix(dir)
                    .map_err(io::Error::other)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `b3:` digest of a file's bytes.
pub fn digest_file(path: &Path) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("b3:{}", h.finalize().to_hex()))
}

/// Every file of a folder with its size and digest.
pub fn tree(dir: &Path) -> io::Result<Vec<FileEntry>> {
    list_files(dir)?
        .into_iter()
        .map(|(rel, p)| {
            Ok(FileEntry {
                size: fs::metadata(&p)?.len(),
                digest: digest_file(&p)?,
                path: rel,
            })
        })
        .collect()
}

/// The digest of a file list: paths, sizes and digests, one line each, in order.
pub fn tree_digest(files: &[FileEntry]) -> String {
    let mut h = blake3::Hasher::new();
    for f in files {
        h.update(format!("{}\t{}\t{}\n", f.path, f.size, f.digest).as_bytes());
    }
    format!("b3:{}", h.finalize().to_hex())
}

/// Digest of a file (its bytes) or a folder (its file list).
pub fn digest_path(path: &Path) -> io::Result<String> {
    if path.is_dir() {
        Ok(tree_digest(&tree(path)?))
    } else {
        digest_file(path)
    }
}

fn sync_tree(dir: &Path) -> io::Result<()> {
    for (_, p) in list_files(dir)? {
        File::open(&p)?.sync_all()?;
    }
    sync_dir(dir);
    Ok(())
}

/// Copies a folder's files to `dest` (replacing it), for a stage's `out`.
pub fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    for (rel, p) in list_files(src)? {
        let to = dest.join(&rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&p, &to)?;
    }
    fs::create_dir_all(dest)
}
