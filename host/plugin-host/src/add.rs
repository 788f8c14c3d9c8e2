//! `cgcloud plugin add FILE`: check a plugin, copy it into the data directory (unless it
//! already lives in a configured plugin directory) and record it in the lock file.

use crate::error::PluginError;
use crate::loader::{inspect, load};
use crate::lock::{write_atomic, Lock, LockEntry};
use crate::sources::{Candidate, Origin, PluginSources};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `add_plugin` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AddReport {
    pub name: String,
    pub version: String,
    pub abi: u32,
    pub sha256: String,
    /// Where the trusted file lives now.
    pub file: PathBuf,
    /// Whether it was copied into the data directory.
    pub copied: bool,
    pub lock: PathBuf,
    /// Lock entries this one replaced (same plugin name or same file).
    pub replaced: Vec<LockEntry>,
}

/// Checks `file` fully (it is loaded once to read its manifest), copies it into the data
/// directory's `plugins/` unless it is inside a `[plugins] paths` directory, and records its
/// name, version, ABI and sha256 in the lock file.
pub fn add_plugin(file: &Path, sources: &PluginSources) -> Result<AddReport, PluginError> {
    if !file.exists() {
        return Err(PluginError::Missing(file.to_path_buf()));
    }
    let path = file
        .canonicalize()
        .map_err(|e| PluginError::Io(file.to_path_buf(), e))?;
    let candidate = Candidate {
        path: path.clone(),
        origin: Origin::Cli,
    };
    let inspected = inspect(&candidate, None, &sources.pins, true)?;
    let sha256 = inspected.sha256.clone().unwrap_or_default();
    let loaded = load(inspected)?;
    let in_config_dir = sources.config.iter().any(|dir| {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        path.parent() == Some(dir.as_path()) || path == dir
    });
    let (dest, copied) = if in_config_dir {
        (path.clone(), false)
    } else {
        let name = path
            .file_name()
            .ok_or_else(|| PluginError::NotALibrary(path.clone()))?;
        let dest = sources.plugins_dir().join(name);
        let bytes = std::fs::read(&path).map_err(|e| PluginError::Io(path.clone(), e))?;
        write_atomic(&dest, &bytes, 0o644)?;
        let dest = dest.canonicalize().unwrap_or(dest);
        (dest, true)
    };
    let lock_path = sources.lock_path();
    let mut lock = Lock::read(&lock_path)?;
    let name = loaded.manifest.name.clone();
    let (replaced, kept): (Vec<LockEntry>, Vec<LockEntry>) = lock
        .plugins
        .into_iter()
        .partition(|e| e.name == name || e.file == dest);
    lock.plugins = kept;
    let entry = LockEntry {
        name: name.clone(),
        version: loaded.manifest.version.clone(),
        abi: loaded.manifest.abi,
        file: dest.clone(),
        sha256: sha256.clone(),
    };
    lock.plugins.push(entry);
    lock.write(&lock_path)?;
    Ok(AddReport {
        name,
        version: loaded.manifest.version,
        abi: loaded.manifest.abi,
        sha256,
        file: dest,
        copied,
        lock: lock_path,
        replaced,
    })
}
