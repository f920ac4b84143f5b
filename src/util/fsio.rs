//! Durable file writes: a sibling file synced and renamed over the target, so a crash never
//! leaves half a file, and the rename itself made durable where the filesystem allows.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes a sibling file, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Makes a rename durable; best effort (not every filesystem lets a folder be synced).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
